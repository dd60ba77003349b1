internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// A `redis-server` child process of the test on a free loopback port, which a test may kill
/// and start again on the same port (Debian's redis-server, installed by
/// scripts/local-services.sh).
public final class RedisTestServer: @unchecked Sendable {
  /// The port it listens on (the same after `restart()`).
  public let port: Int
  /// The TLS port when started with `tls:`.
  public let tlsPort: Int?
  private let arguments: [String]
  private let lock = NSLock()
  private var process: Process?

  /// `redis://127.0.0.1:<port>`.
  public var url: String { "redis://127.0.0.1:\(self.port)" }

  /// Starts a server.
  /// - Parameters:
  ///   - configuration: extra `redis.conf` lines (`requirepass …`, `user …`); written to a file.
  ///   - tls: certificate, key and CA files; the server then also listens with TLS on `tlsPort`.
  public init(configuration: [String] = [], tls: (certificate: String, key: String, ca: String)? = nil) async throws {
    self.port = try Self.freePort()
    self.tlsPort = try tls.map { _ in try Self.freePort() }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    var lines = [
      "bind 127.0.0.1", "port \(self.port)", "save \"\"", "appendonly no", "dir \(directory.path)",
      "enable-debug-command local",
    ]
    if let tls, let tlsPort = self.tlsPort {
      lines += [
        "tls-port \(tlsPort)", "tls-cert-file \(tls.certificate)", "tls-key-file \(tls.key)",
        "tls-ca-cert-file \(tls.ca)", "tls-auth-clients no",
      ]
    }
    lines += configuration
    let file = directory.appendingPathComponent("redis.conf")
    try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
    self.arguments = [file.path]
    try await self.start()
  }

  deinit {
    self.kill()
  }

  /// Starts the server (again) and waits until it accepts connections (sleeping, not blocking a
  /// thread of the cooperative pool the other tests run on).
  public func start() async throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Self.executable)
    process.arguments = self.arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    self.lock.withLock { self.process = process }
    for _ in 0..<250 {
      if Self.accepts(port: self.port) { return }
      try await Task.sleep(for: .milliseconds(20))
    }
    throw RedisTestServerError(message: "redis-server did not open port \(self.port)")
  }

  /// Kills the server (SIGKILL: no clean shutdown) and waits for it to exit.
  public func kill() {
    guard let process = self.lock.withLock({ () -> Process? in
      defer { self.process = nil }
      return self.process
    }) else { return }
    Glibc.kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
  }

  /// Kills the server and starts it again on the same port.
  public func restart() async throws {
    self.kill()
    try await self.start()
  }

  private static var executable: String {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
      let path = "\(directory)/redis-server"
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return "/usr/bin/redis-server"
  }

  private static func freePort() throws -> Int { try freeLoopbackPort() }

  private static func accepts(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    return withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
      }
    }
  }
}

public struct RedisTestServerError: Error, CustomStringConvertible {
  public var message: String
  public var description: String { self.message }
}
