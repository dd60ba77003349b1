internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import PlatformProtos
internal import SwiftProtobuf
internal import Synchronization

/// The platform's six services: where each listens and which database it keeps.
enum ServiceName: String, CaseIterable, ExpressibleByArgument, Sendable {
  case agent
  case persona
  case codeSandbox = "code-sandbox"
  case textToSQL = "text-to-sql"
  case knowledge
  case workflow

  var defaultPort: Int {
    switch self {
    case .agent: 50051
    case .persona: 50052
    case .codeSandbox: 50053
    case .textToSQL: 50054
    case .knowledge: 50055
    case .workflow: 50056
    }
  }

  /// agent → AGENT, code-sandbox → CODE_SANDBOX: the prefix of its environment variables, as
  /// `scripts/platform.sh` names them.
  var environmentPrefix: String { self.rawValue.replacingOccurrences(of: "-", with: "_").uppercased() }

  /// `<SERVICE>_ADDR`, else 127.0.0.1 and the service's default port.
  var address: String {
    ProcessInfo.processInfo.environment["\(self.environmentPrefix)_ADDR"] ?? "127.0.0.1:\(self.defaultPort)"
  }

  /// The service's database on the local PostgreSQL (`scripts/local-services.sh`).
  var databaseName: String {
    switch self {
    case .agent: "agent_db"
    case .persona: "persona_db"
    case .codeSandbox: "code_db"
    case .textToSQL: "sql_db"
    case .knowledge: "knowledge_db"
    case .workflow: "workflow_db"
    }
  }
}

/// The tokens `platform login` keeps between commands.
struct StoredCredentials: Codable, Sendable {
  var email: String
  var accessToken: String
  var accessTokenExpiry: Date
  var refreshToken: String

  /// The tokens of a Login or RefreshToken response; the expiry from `expire_time`, else from
  /// `expires_in_seconds`.
  init(email: String, tokens: Platform_Agent_V1_AuthTokens) {
    self.email = email
    self.accessToken = tokens.accessToken
    self.accessTokenExpiry =
      tokens.hasExpireTime ? tokens.expireTime.date : Date(timeIntervalSinceNow: TimeInterval(tokens.expiresInSeconds))
    self.refreshToken = tokens.refreshToken
  }

  /// Whether the access token is good for a while yet (`Session.expiryMargin`).
  var isFresh: Bool { self.accessTokenExpiry.timeIntervalSinceNow > Session.expiryMargin }
}

/// Where the credentials live: `$XDG_CONFIG_HOME/platform/credentials.json`, else
/// `~/.config/platform/credentials.json`; the directory 0700, the file 0600.
enum CredentialStore {
  static var directory: URL {
    let environment = ProcessInfo.processInfo.environment
    if let base = environment["XDG_CONFIG_HOME"], base.hasPrefix("/") {
      return URL(fileURLWithPath: base).appendingPathComponent("platform")
    }
    return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".config/platform")
  }

  static var file: URL { self.directory.appendingPathComponent("credentials.json") }

  /// The stored credentials, or nil when there are none (no file).
  ///
  /// - Throws: `CommandFailure` when the file cannot be read or is not credentials.
  static func load() throws -> StoredCredentials? {
    let data: Data
    do {
      data = try Data(contentsOf: self.file)
    } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
      return nil
    } catch {
      throw CommandFailure("cannot read \(self.file.path): \((error as NSError).localizedDescription)")
    }
    do {
      return try JSONDecoder.credentials.decode(StoredCredentials.self, from: data)
    } catch {
      throw CommandFailure("\(self.file.path) is not readable credentials; run `platform logout` and log in again")
    }
  }

  /// Writes the credentials through a new 0600 file renamed over the old one, so they are never
  /// readable by others, not even for a moment, and never half written.
  static func save(_ credentials: StoredCredentials) throws {
    let directory = try self.makeDirectory()
    let data = try JSONEncoder.credentials.encode(credentials)
    let temporary = directory + "/.credentials.\(getpid()).tmp"
    // O_EXCL: a leftover of a crashed run (with whatever mode it has) is never reused.
    unlink(temporary)
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw CommandFailure("cannot write \(temporary): \(String(cString: strerror(errno)))") }
    let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    let synced = fsync(descriptor)
    close(descriptor)
    guard written == data.count, synced == 0, rename(temporary, self.file.path) == 0 else {
      unlink(temporary)
      throw CommandFailure("cannot write \(self.file.path): \(String(cString: strerror(errno)))")
    }
  }

  static func remove() {
    unlink(self.file.path)
  }

  /// Runs `body` holding an exclusive flock(2) on `credentials.lock` in the credentials
  /// directory, so that of several `platform` processes only one refreshes at a time: refresh
  /// tokens are single-use, and the reuse of one revokes the whole session.
  static func withLock<Result>(_ body: () async throws -> Result) async throws -> Result {
    let path = try self.makeDirectory() + "/credentials.lock"
    let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw CommandFailure("cannot open \(path): \(String(cString: strerror(errno)))") }
    // Closing the descriptor releases the lock.
    defer { close(descriptor) }
    while flock(descriptor, LOCK_EX) != 0 {
      guard errno == EINTR else { throw CommandFailure("cannot lock \(path): \(String(cString: strerror(errno)))") }
    }
    return try await body()
  }

  /// Creates the directory (0700) if needed; returns its path.
  private static func makeDirectory() throws -> String {
    let directory = self.directory.path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    chmod(directory, 0o700)
    return directory
  }
}

extension JSONEncoder {
  static var credentials: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return encoder
  }
}

extension JSONDecoder {
  static var credentials: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    return decoder
  }
}

/// One command's connections and credentials.
///
/// Clients are made on first use, one per service, and closed by `withSession`. Calls made
/// through `call(_:)` carry the credential: `PLATFORM_API_KEY` as `x-api-key` when set, else the
/// stored access token, refreshed first when it has expired and once more when a call is
/// refused as UNAUTHENTICATED.
final class Session: Sendable {
  let global: GlobalOptions
  private let clients = Mutex<[String: RPCClient]>([:])
  private let credentials = Mutex<StoredCredentials?>(nil)

  /// Refresh this long before the access token's expiry, so a call does not arrive just after.
  static let expiryMargin: TimeInterval = 30

  private init(global: GlobalOptions) {
    self.global = global
  }

  /// Runs `body` with a session, closing its connections afterwards.
  static func with<Result>(_ global: GlobalOptions, _ body: (Session) async throws -> Result) async throws -> Result {
    let session = Session(global: global)
    do {
      let result = try await body(session)
      await session.close()
      return result
    } catch {
      await session.close()
      throw error
    }
  }

  /// A client channel to `address` (made once per address).
  func channel(_ address: String, configure: (inout RPCClientConfiguration) -> Void = { _ in }) throws -> RPCClient {
    try self.clients.withLock { clients in
      if let client = clients[address] { return client }
      let configuration = RPCClientConfiguration.defaults(targets: [address]) {
        $0.connectTimeout = .seconds(5)
        $0.maxConnectionsPerAddress = 1
        configure(&$0)
      }
      let client = try RPCClient(configuration: configuration)
      clients[address] = client
      return client
    }
  }

  func channel(_ service: ServiceName) throws -> RPCClient {
    try self.channel(service.address)
  }

  private func close() async {
    let clients = self.clients.withLock { clients in
      defer { clients = [:] }
      return Array(clients.values)
    }
    for client in clients { await client.close() }
  }

  // MARK: Calls with credentials

  /// Call options without credentials (Register, Login, health), for a unary call: --timeout,
  /// else `GlobalOptions.defaultUnaryTimeout`.
  var anonymousOptions: CallOptions {
    CallOptions(timeout: self.global.callTimeout ?? GlobalOptions.defaultUnaryTimeout)
  }

  /// The stored credentials this session uses, once a call has loaded them.
  var storedCredentials: StoredCredentials? {
    self.credentials.withLock { $0 }
  }

  /// Runs `body` with options carrying the caller's credential; when a stored token is refused
  /// as UNAUTHENTICATED, refreshes it once and runs `body` again.
  ///
  /// - Parameters:
  ///   - long: The call lasts as long as what it follows (a stream, a watch, a synchronous run):
  ///     no deadline unless --timeout is given. Default false: a unary call, 30 s by default.
  func call<Result>(long: Bool = false, _ body: (CallOptions) async throws -> Result) async throws -> Result {
    var options = self.anonymousOptions
    if long { options.timeout = self.global.callTimeout }
    if let key = Self.apiKey {
      options.metadata.addString(key, forKey: "x-api-key")
      return try await body(options)
    }
    let token = try await self.accessToken()
    do {
      return try await body(Self.options(options, bearer: token))
    } catch let error as RPCError where error.code == .unauthenticated {
      let refreshed = try await self.accessToken(replacing: token)
      return try await body(Self.options(options, bearer: refreshed))
    }
  }

  static var apiKey: String? {
    guard let key = ProcessInfo.processInfo.environment["PLATFORM_API_KEY"], !key.isEmpty else { return nil }
    return key
  }

  private static func options(_ options: CallOptions, bearer token: String) -> CallOptions {
    var options = options
    options.metadata.addString("Bearer \(token)", forKey: "authorization")
    return options
  }

  /// The stored access token; refreshed through AuthService.RefreshToken when it has expired or
  /// is `refused`.
  ///
  /// The refresh holds the credentials lock from reading the file to saving the new tokens.
  /// Another `platform` may have refreshed while this one waited for the lock: its token, when
  /// it is not the refused one and has not expired, is used as it is.
  private func accessToken(replacing refused: String? = nil) async throws -> String {
    if refused == nil, let cached = self.storedCredentials, cached.isFresh {
      return cached.accessToken
    }
    return try await CredentialStore.withLock {
      guard let stored = try CredentialStore.load() else {
        throw RPCError(.unauthenticated, "Not logged in: run `platform login` (or set PLATFORM_API_KEY)")
      }
      if stored.accessToken != refused, stored.isFresh {
        self.credentials.withLock { $0 = stored }
        return stored.accessToken
      }
      let auth = Platform_Agent_V1_AuthServiceClient(channel: try self.channel(.agent))
      let response: Platform_Agent_V1_RefreshTokenResponse
      do {
        response = try await auth.refreshToken(.with { $0.refreshToken = stored.refreshToken }, options: self.anonymousOptions)
      } catch let error as RPCError where error.code == .unauthenticated {
        throw RPCError(.unauthenticated, "The session has ended (\(error.message)): run `platform login`")
      }
      let renewed = StoredCredentials(email: stored.email, tokens: response.tokens)
      try CredentialStore.save(renewed)
      self.credentials.withLock { $0 = renewed }
      return renewed.accessToken
    }
  }
}
