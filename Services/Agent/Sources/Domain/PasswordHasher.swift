internal import Crypto
internal import CryptoExtras
internal import Foundation
internal import NIOPosix
internal import Synchronization

/// Hashes and checks passwords with scrypt (RFC 7914), in the PHC string format
/// `$scrypt$ln=15,r=8,p=3$<salt>$<hash>` (base64 without padding), so parameters can grow later
/// and older hashes still verify.
///
/// The parameters follow OWASP's password storage guidance: N = 2^15, r = 8, p = 3 is one of its
/// equivalent minimums (N = 2^17, r = 8, p = 1 and the others cost the same work); it takes
/// 32 MiB of memory per hash. Hashing runs on a small thread pool of its own, never on an event
/// loop, and at most `maxPending` hashes wait at once: more are refused (`IdentityError.busy`)
/// rather than queued without bound.
public final class PasswordHasher: Sendable {
  public struct Parameters: Sendable, Equatable {
    /// log2 of scrypt's N (CPU/memory cost).
    public var logN: Int
    /// Block size r.
    public var blockSize: Int
    /// Parallelism p.
    public var parallelism: Int

    public static let owasp = Parameters(logN: 15, blockSize: 8, parallelism: 3)

    public init(logN: Int, blockSize: Int, parallelism: Int) {
      self.logN = logN
      self.blockSize = blockSize
      self.parallelism = parallelism
    }

    /// Bounds on stored parameters: a hash row cannot make a check cost minutes or gigabytes.
    func isAcceptable() -> Bool {
      (10...20).contains(self.logN) && (1...16).contains(self.blockSize) && (1...16).contains(self.parallelism)
        && 128 * self.blockSize << self.logN <= 256 << 20
    }
  }

  public let parameters: Parameters
  public let maxPending: Int
  private let pending = Mutex(0)
  /// A hash of a random password: an unknown email is checked against it, so that the answer
  /// takes as long as for a known one.
  private let dummy: String

  static let pool: NIOThreadPool = {
    let pool = NIOThreadPool(numberOfThreads: 2)
    pool.start()
    return pool
  }()

  static let saltBytes = 16
  static let hashBytes = 32

  public init(parameters: Parameters = .owasp, maxPending: Int = 32) throws {
    self.parameters = parameters
    self.maxPending = maxPending
    var random = SystemRandomNumberGenerator()
    let password = (0..<32).map { _ in Character(UnicodeScalar(UInt8.random(in: 97...122, using: &random))) }
    self.dummy = try Self.compute(String(password), salt: Self.randomSalt(), parameters: parameters)
  }

  /// The PHC string of `password` with a new random salt.
  /// - Throws: `IdentityError.busy` when too many hashes are waiting.
  public func hash(_ password: String) async throws -> String {
    let parameters = self.parameters
    return try await self.offload { try Self.compute(password, salt: Self.randomSalt(), parameters: parameters) }
  }

  /// Whether `password` matches `stored`, compared in constant time. A nil `stored` (no such
  /// user) is checked against the dummy hash, taking the same time, and is false.
  public func verify(_ password: String, against stored: String?) async throws -> Bool {
    let phc = stored ?? self.dummy
    let matches = try await self.offload { () throws -> Bool in
      guard let parsed = Self.parse(phc) else { return false }
      let computed = try Self.derive(password, salt: parsed.salt, parameters: parsed.parameters)
      return Self.constantTimeEqual(computed, parsed.hash)
    }
    return matches && stored != nil
  }

  private func offload<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
    let admitted = self.pending.withLock { count in
      guard count < self.maxPending else { return false }
      count += 1
      return true
    }
    guard admitted else { throw IdentityError.busy }
    defer { self.pending.withLock { $0 -= 1 } }
    return try await Self.pool.runIfActive(work)
  }

  static func compute(_ password: String, salt: [UInt8], parameters: Parameters) throws -> String {
    let hash = try Self.derive(password, salt: salt, parameters: parameters)
    return "$scrypt$ln=\(parameters.logN),r=\(parameters.blockSize),p=\(parameters.parallelism)$"
      + Self.base64(salt) + "$" + Self.base64(hash)
  }

  static func derive(_ password: String, salt: [UInt8], parameters: Parameters) throws -> [UInt8] {
    let key = try KDF.Scrypt.deriveKey(
      from: Array(password.utf8), salt: salt, outputByteCount: Self.hashBytes, rounds: 1 << parameters.logN,
      blockSize: parameters.blockSize, parallelism: parameters.parallelism,
      maxMemory: 128 * parameters.blockSize * (1 << parameters.logN) * 2)
    return key.withUnsafeBytes { Array($0) }
  }

  /// The parameters, salt and hash of a PHC string this hasher wrote; nil for anything else.
  static func parse(_ phc: String) -> (parameters: Parameters, salt: [UInt8], hash: [UInt8])? {
    let fields = phc.split(separator: "$", omittingEmptySubsequences: false)
    guard fields.count == 5, fields[0].isEmpty, fields[1] == "scrypt" else { return nil }
    var values: [String: Int] = [:]
    for pair in fields[2].split(separator: ",") {
      let parts = pair.split(separator: "=")
      guard parts.count == 2, let value = Int(parts[1]) else { return nil }
      values[String(parts[0])] = value
    }
    guard let logN = values["ln"], let r = values["r"], let p = values["p"],
      let salt = Self.unbase64(fields[3]), let hash = Self.unbase64(fields[4]), hash.count == Self.hashBytes
    else { return nil }
    let parameters = Parameters(logN: logN, blockSize: r, parallelism: p)
    guard parameters.isAcceptable() else { return nil }
    return (parameters, salt, hash)
  }

  static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
  }

  static func randomSalt() -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<Self.saltBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
  }

  static func base64(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: "")
  }

  static func unbase64(_ text: Substring) -> [UInt8]? {
    var padded = String(text)
    while padded.utf8.count % 4 != 0 { padded += "=" }
    return Data(base64Encoded: padded).map(Array.init)
  }
}
