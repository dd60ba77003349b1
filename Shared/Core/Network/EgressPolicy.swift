public import Foundation
public import NIOCore
internal import NIOPosix
#if canImport(Glibc)
internal import Glibc
#endif

/// Where a service may connect on a user's behalf (registered databases, model providers,
/// callbacks, workflow http nodes): not to loopback, link-local, private, shared (CGNAT),
/// multicast or reserved addresses, nor to the platform's own database server, unless the
/// operator allows them (`<SERVICE>_ALLOWED_HOSTS`: host names and CIDRs, comma-separated).
///
/// The check is on the resolved addresses, and the caller connects to the address returned, never
/// to the name again: a name that resolves to a public address when checked and to 127.0.0.1 a
/// moment later (DNS rebinding) still reaches only the checked address. A name that resolves to
/// several addresses is refused if any of them is refused.
public struct EgressPolicy: Sendable {
  /// One allowance: a host name (exact, case-insensitive) or an address range.
  public enum Rule: Sendable, Equatable, CustomStringConvertible {
    case host(String)
    case network(IPNetwork)

    public var description: String {
      switch self {
      case .host(let name): name
      case .network(let network): network.description
      }
    }
  }

  public let rules: [Rule]
  /// The platform's own database server (its resolved addresses and port): refused like a
  /// private address, whatever its address is, unless a rule allows it.
  public let protectedEndpoints: [SocketAddress]
  /// The variable the rules came from, named in refusals.
  public let variable: String

  public init(rules: [Rule], protectedEndpoints: [SocketAddress] = [], variable: String) {
    self.rules = rules
    self.protectedEndpoints = protectedEndpoints
    self.variable = variable
  }

  /// Only the host of `url`, whatever its address: for a service the operator names in
  /// `variable` (a model provider, a search engine), often on the same machine or network.
  public static func operatorChosen(_ url: URL, variable: String) -> EgressPolicy {
    EgressPolicy(rules: [.host(url.host?.lowercased() ?? "")], variable: variable)
  }

  /// Parses `text` ("127.0.0.0/8, ::1, db.internal").
  /// - Throws: `Environment.InvalidValue` naming `variable` for an entry that is neither.
  public init(parsing text: String, protectedEndpoints: [SocketAddress] = [], variable: String) throws {
    var rules: [Rule] = []
    for entry in text.split(separator: ",").map({ $0.trimmingWhitespace() }) where !entry.isEmpty {
      if let network = IPNetwork(entry) {
        rules.append(.network(network))
      } else if entry.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" }), entry.utf8.count <= 253 {
        rules.append(.host(entry.lowercased()))
      } else {
        throw Environment.InvalidValue(variable: variable, value: String(entry), expected: "host names and CIDRs, comma-separated")
      }
    }
    self.init(rules: rules, protectedEndpoints: protectedEndpoints, variable: variable)
  }

  public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// The name did not resolve.
    case unresolved(String)
    /// An address of the target is not allowed; `kind` says which range ("loopback", …).
    case refused(kind: String, variable: String)

    public var description: String {
      switch self {
      // Without the name: messages about a user's target never carry its host.
      case .unresolved: "The host name does not resolve"
      case .refused(let kind, let variable):
        "The target resolves to a \(kind) address, which this service does not connect to unless \(variable) allows it"
      }
    }
  }

  /// The address to connect to for `host:port`, checked.
  /// - Throws: `Refusal`.
  public func resolve(host: String, port: Int) async throws(Refusal) -> SocketAddress {
    let addresses: [SocketAddress]
    let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    if let literal = try? SocketAddress(ipAddress: bare, port: port) {
      addresses = [literal]
    } else {
      do {
        addresses = try await Self.lookUp(host: host, port: port)
      } catch {
        throw .unresolved(host)
      }
    }
    guard let first = addresses.first else { throw .unresolved(host) }
    if self.rules.contains(.host(host.lowercased())) { return first }
    for address in addresses {
      if let kind = self.refusal(for: address) { throw .refused(kind: kind, variable: self.variable) }
    }
    return first
  }

  /// Why `address` is refused, or nil.
  public func refusal(for address: SocketAddress) -> String? {
    guard let ip = IPAddress(address) else { return "non-IP" }
    if self.rules.contains(where: { if case .network(let network) = $0 { network.contains(ip) } else { false } }) { return nil }
    if self.protectedEndpoints.contains(where: { IPAddress($0) == ip && $0.port == address.port }) {
      return "platform database server's"
    }
    return ip.specialUse
  }

  /// The addresses `host` stands for: itself when it is an IP address, else what it resolves to.
  public static func lookUpAll(host: String, port: Int) async throws -> [SocketAddress] {
    if let literal = try? SocketAddress(ipAddress: host, port: port) { return [literal] }
    return try await Self.lookUp(host: host, port: port)
  }

  /// getaddrinfo on NIO's blocking pool (it blocks), TCP addresses only.
  static func lookUp(host: String, port: Int) async throws -> [SocketAddress] {
    try await NIOThreadPool.singleton.runIfActive {
      var hints = addrinfo()
      hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
      hints.ai_family = AF_UNSPEC
      var result: UnsafeMutablePointer<addrinfo>?
      guard getaddrinfo(host, String(port), &hints, &result) == 0, let list = result else { throw Refusal.unresolved(host) }
      defer { freeaddrinfo(list) }
      var addresses: [SocketAddress] = []
      var cursor: UnsafeMutablePointer<addrinfo>? = list
      while let entry = cursor, addresses.count < 32 {
        if let raw = entry.pointee.ai_addr {
          switch entry.pointee.ai_family {
          case AF_INET:
            raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { addresses.append(SocketAddress($0.pointee, host: host)) }
          case AF_INET6:
            raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { addresses.append(SocketAddress($0.pointee, host: host)) }
          default: break
          }
        }
        cursor = entry.pointee.ai_next
      }
      return addresses
    }
  }
}

/// An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into ::ffff:0:0/96).
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
  public let bytes: [UInt8]

  public init?(_ address: SocketAddress) {
    guard let text = address.ipAddress else { return nil }
    self.init(text)
  }

  /// Parses a dotted IPv4 or an IPv6 address.
  public init?(_ text: String) {
    var v4 = [UInt8](repeating: 0, count: 4)
    var v6 = [UInt8](repeating: 0, count: 16)
    if inet_pton(AF_INET, text, &v4) == 1 {
      self.bytes = Array(repeating: 0, count: 10) + [0xFF, 0xFF] + v4
    } else if inet_pton(AF_INET6, text, &v6) == 1 {
      self.bytes = v6
    } else {
      return nil
    }
  }

  init(bytes: [UInt8]) {
    self.bytes = bytes
  }

  /// The IPv4 address when this is one (mapped).
  var v4: [UInt8]? {
    self.bytes.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] ? Array(self.bytes.suffix(4)) : nil
  }

  public var description: String {
    if let v4 { return v4.map(String.init).joined(separator: ".") }
    return stride(from: 0, to: 16, by: 2).map { String(UInt16(self.bytes[$0]) << 8 | UInt16(self.bytes[$0 + 1]), radix: 16) }
      .joined(separator: ":")
  }

  /// The special-use range this address lies in (RFC 6890 and successors), or nil for a public
  /// address.
  var specialUse: String? {
    for (network, kind) in Self.specialUse where network.contains(self) { return kind }
    return nil
  }

  private static let specialUse: [(IPNetwork, String)] = [
    ("0.0.0.0/8", "unspecified"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol"), ("192.0.2.0/24", "documentation"), ("192.88.99.0/24", "relay"),
    ("192.168.0.0/16", "private"), ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("64:ff9b::/96", "NAT64"), ("64:ff9b:1::/48", "NAT64"),
    ("100::/64", "discard"), ("2001::/23", "IETF protocol"), ("2001:db8::/32", "documentation"), ("2002::/16", "6to4"),
    ("fc00::/7", "private (unique local)"), ("fe80::/10", "link-local"), ("fec0::/10", "site-local"), ("ff00::/8", "multicast"),
    // IPv4-compatible (deprecated) addresses embed an IPv4 address the rules above do not see.
    ("::/96", "IPv4-compatible"),
  ].map { (IPNetwork($0.0)!, $0.1) }
}

/// An address range in CIDR notation ("10.0.0.0/8", "fd00::/8"); a bare address is /32 or /128.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
  public let address: IPAddress
  /// Prefix length over the 16-byte form (an IPv4 /8 is /104).
  public let prefix: Int
  public let description: String

  public init?(_ text: some StringProtocol) {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard (1...2).contains(parts.count), let address = IPAddress(String(parts[0])) else { return nil }
    let isV4 = address.v4 != nil && parts[0].contains(".")
    let width = isV4 ? 32 : 128
    var length = width
    if parts.count == 2 {
      guard let given = Int(parts[1]), (0...width).contains(given) else { return nil }
      length = given
    }
    self.address = address
    self.prefix = length + (128 - width)
    self.description = String(text)
  }

  public func contains(_ ip: IPAddress) -> Bool {
    var remaining = self.prefix
    for index in 0..<16 where remaining > 0 {
      let bits = min(8, remaining)
      let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
      if ip.bytes[index] & mask != self.address.bytes[index] & mask { return false }
      remaining -= bits
    }
    return true
  }
}

extension Substring {
  fileprivate func trimmingWhitespace() -> Substring {
    var text = self
    while text.first?.isWhitespace == true { text.removeFirst() }
    while text.last?.isWhitespace == true { text.removeLast() }
    return text
  }
}
