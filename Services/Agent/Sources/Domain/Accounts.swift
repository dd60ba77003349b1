public import Foundation
public import Logging
internal import NIOCore
public import PlatformCore
public import PlatformRedis

/// How accounts behave (`AGENT_*` settings).
public struct AccountsConfiguration: Sendable {
  /// Whether anyone may Register (`AGENT_REGISTRATION=open|closed`, default open).
  public var registrationOpen = true
  /// Access tokens (`AGENT_ACCESS_TOKEN_MINUTES`, default 15).
  public var accessTokenLifetime: Duration = .seconds(15 * 60)
  /// Refresh tokens (`AGENT_REFRESH_TOKEN_DAYS`, default 30).
  public var refreshTokenLifetime: Duration = .seconds(30 * 24 * 3600)
  /// Login attempts per email per 5 minutes (`AGENT_LOGIN_ATTEMPTS_PER_EMAIL`, default 10).
  public var loginAttemptsPerEmail = 10
  /// Login attempts per client address per minute (`AGENT_LOGIN_ATTEMPTS_PER_PEER`, default 60).
  public var loginAttemptsPerPeer = 60
  /// The password hashing cost.
  public var passwordParameters = PasswordHasher.Parameters.owasp

  public init() {}

  public init(environment: Environment) throws {
    self.init()
    self.registrationOpen = try environment.choice("AGENT_REGISTRATION", default: Registration.open) == .open
    self.accessTokenLifetime = .seconds(60 * (try environment.int("AGENT_ACCESS_TOKEN_MINUTES", default: 15, range: 1...1440)))
    self.refreshTokenLifetime = .seconds(86400 * (try environment.int("AGENT_REFRESH_TOKEN_DAYS", default: 30, range: 1...365)))
    self.loginAttemptsPerEmail = try environment.int("AGENT_LOGIN_ATTEMPTS_PER_EMAIL", default: 10, range: 1...10_000)
    self.loginAttemptsPerPeer = try environment.int("AGENT_LOGIN_ATTEMPTS_PER_PEER", default: 60, range: 1...1_000_000)
  }

  enum Registration: String, CaseIterable {
    case open, closed
  }
}

/// Sign-up, sign-in, token refresh and sign-out: the agent service's account logic.
///
/// - Login answers a wrong password, an unknown email and an inactive user alike, with the same
///   message and the same work (an unknown email is checked against a dummy hash).
/// - Login attempts are limited per email and per client address (RESOURCE_EXHAUSTED), and after
///   three failures in a row for an email each further attempt waits longer (up to 4 s).
/// - Refresh tokens rotate: each is used once, and presenting one again revokes its whole family.
/// - A login starts a session (`session:{user_id}` in Redis) whose id the access token carries;
///   logout ends it and revokes its refresh tokens.
public struct Accounts: Sendable {
  let store: IdentityStore
  let hasher: PasswordHasher
  let issuer: TokenIssuer
  let sessions: SessionStore
  let revocation: SessionRevocation
  let limiter: RateLimiter
  let redis: RedisClient
  let audit: AuditLog
  let configuration: AccountsConfiguration
  let logger: Logger

  public init(
    store: IdentityStore, hasher: PasswordHasher, issuer: TokenIssuer, sessions: SessionStore, revocation: SessionRevocation,
    limiter: RateLimiter, redis: RedisClient, audit: AuditLog, configuration: AccountsConfiguration, logger: Logger
  ) {
    self.revocation = revocation
    self.store = store
    self.hasher = hasher
    self.issuer = issuer
    self.sessions = sessions
    self.limiter = limiter
    self.redis = redis
    self.audit = audit
    self.configuration = configuration
    self.logger = logger
  }

  /// The roles a new user gets.
  public static let defaultRoles = ["viewer"]

  // MARK: - Register

  public func register(email: String, password: String, name: String, requestID: UUID?) async throws -> User {
    guard self.configuration.registrationOpen else { throw IdentityError.registrationClosed }
    let email = try EmailAddress(email)
    try PasswordPolicy.check(password)
    let name = try DisplayName.check(name)
    let hash = try await self.hasher.hash(password)
    guard let inserted = try await self.store.insertUser(
      email: email, passwordHash: hash, name: name, roles: Self.defaultRoles, requestID: requestID)
    else { throw IdentityError.alreadyExists("an account with this email exists") }
    if inserted.created {
      await self.audit.recordOrLog(AuditEvent(subject: inserted.user.id.lowercasedString, resource: "auth", action: "register", decision: .allow))
    }
    return inserted.user
  }

  /// Creates the first admin from `email` and `password` when no active admin exists (start-up,
  /// `BOOTSTRAP_ADMIN_EMAIL` and `BOOTSTRAP_ADMIN_PASSWORD`).
  /// - Returns: whether an admin was created.
  public func bootstrapAdmin(email: String, password: String) async throws -> Bool {
    guard try await !self.store.hasActiveAdmin() else { return false }
    let email = try EmailAddress(email)
    try PasswordPolicy.check(password)
    let hash = try await self.hasher.hash(password)
    guard let inserted = try await self.store.insertUser(
      email: email, passwordHash: hash, name: "Administrator", roles: ["admin"], requestID: nil), inserted.created
    else {
      throw IdentityError.alreadyExists("BOOTSTRAP_ADMIN_EMAIL belongs to an account that is not an active admin")
    }
    await self.audit.recordOrLog(AuditEvent(subject: inserted.user.id.lowercasedString, resource: "auth", action: "bootstrap_admin", decision: .allow))
    return true
  }

  // MARK: - Login

  public func login(email rawEmail: String, password: String, peer: String) async throws -> (tokens: IssuedTokens, user: User) {
    // Anything that is not an address can match no account: the same answer as a wrong
    // password (after the same limits), not a hint.
    let email = try? EmailAddress(rawEmail)
    // Limits count per address tried; one that cannot exist is counted as typed (lowercased).
    let subject = "email:" + (email?.value ?? rawEmail.prefix(256).lowercased()).sha256Hex.prefix(24)
    try await self.checkLoginLimits(subject: subject, peer: peer)
    try await self.waitAfterFailures(subject: subject)

    var found: (user: User, passwordHash: String)?
    if let email { found = try await self.store.userForLogin(email: email) }
    let passwordAcceptable = password.utf8.count <= PasswordPolicy.maxBytes
    let matches = try await self.hasher.verify(passwordAcceptable ? password : "", against: found?.passwordHash)
    guard matches, passwordAcceptable, let user = found?.user, user.canSignIn else {
      await self.countFailure(subject: subject)
      let reason = found == nil ? "unknown email" : (matches && passwordAcceptable ? "inactive" : "wrong password")
      await self.audit.recordOrLog(
        AuditEvent(
          subject: found.map { $0.user.id.lowercasedString } ?? subject, resource: "auth", action: "login_failed",
          decision: .deny, detail: ["peer": Self.host(of: peer), "reason": reason]))
      throw IdentityError.invalidCredentials
    }
    _ = try? await self.redis.delete([Self.failureKey(subject)])
    let sessionID = Base64URL.randomToken(bytes: 16)
    let tokens = try await self.issue(for: user, sessionID: sessionID, familyID: UUID())
    do {
      try await self.sessions.create(
        Session(userID: user.id, email: user.email, roles: user.roles, permissions: user.permissions, sessionID: sessionID))
    } catch {
      // Redis is down: the sign-in still works (services accept valid tokens while Redis is
      // unreachable); the session appears at the next sign-in.
      self.logger.warning("The session was not stored", metadata: ["user_id": "\(user.id)", "error": "\(error)"])
    }
    try await self.store.recordLogin(userID: user.id)
    await self.audit.recordOrLog(
      AuditEvent(subject: user.id.lowercasedString, resource: "auth", action: "login", decision: .allow, detail: ["peer": Self.host(of: peer)]))
    return (tokens, user)
  }

  private func checkLoginLimits(subject: String, peer: String) async throws {
    let checks = [
      ("login:\(subject)", self.configuration.loginAttemptsPerEmail, Duration.seconds(300)),
      ("login:peer:\(Self.host(of: peer))", self.configuration.loginAttemptsPerPeer, Duration.seconds(60)),
    ]
    for (key, limit, window) in checks {
      if case .limited(let retryAfter) = await self.limiter.acquire(key, limit: limit, per: window) {
        await self.audit.recordOrLog(
          AuditEvent(subject: subject, resource: "auth", action: "login_limited", decision: .deny, detail: ["peer": Self.host(of: peer)]))
        throw IdentityError.rateLimited(retryAfter: retryAfter)
      }
    }
  }

  /// After three failures in a row, each attempt waits 250 ms, then 500 ms, … up to 4 s.
  private func waitAfterFailures(subject: String) async throws {
    guard let stored = try? await self.redis.get(Self.failureKey(subject)),
      let failures = stored.getString(at: stored.readerIndex, length: stored.readableBytes).flatMap(Int.init), failures >= 3
    else { return }
    let delay = Duration.milliseconds(min(4000, 250 << min(failures - 3, 4)))
    try await Task.sleep(for: delay)
  }

  private func countFailure(subject: String) async {
    let key = Self.failureKey(subject)
    if (try? await self.redis.increment(key)) != nil {
      _ = try? await self.redis.expire(key, after: .seconds(900))
    }
  }

  static func failureKey(_ subject: String) -> String { "login_failures:\(subject)" }

  // MARK: - Refresh, logout

  public func refresh(token: String) async throws -> IssuedTokens {
    guard token.hasPrefix(Self.refreshPrefix), token.utf8.count <= 128 else {
      await self.audit.recordOrLog(
        AuditEvent(subject: "anonymous", resource: "auth", action: "refresh_failed", decision: .deny, detail: ["reason": "malformed"]))
      throw IdentityError.invalidRefreshToken
    }
    let successor = Self.refreshPrefix + Base64URL.randomToken(bytes: 32)
    let expiresAt = Date().addingTimeInterval(Double(self.configuration.refreshTokenLifetime.components.seconds))
    switch try await self.store.redeem(
      tokenHash: token.sha256Hex, successorHash: successor.sha256Hex, successorExpiresAt: expiresAt)
    {
    case .unknown, .expired:
      await self.audit.recordOrLog(
        AuditEvent(subject: "anonymous", resource: "auth", action: "refresh_failed", decision: .deny, detail: ["reason": "unknown or expired"]))
      throw IdentityError.invalidRefreshToken
    case .revoked(let userID):
      await self.audit.recordOrLog(AuditEvent(subject: userID.lowercasedString, resource: "auth", action: "refresh_revoked", decision: .deny))
      throw IdentityError.invalidRefreshToken
    case .reused(let userID, let familyID):
      await self.audit.recordOrLog(
        AuditEvent(
          subject: userID.lowercasedString, resource: "auth", action: "refresh_reuse", decision: .deny,
          detail: ["family": familyID.lowercasedString]))
      throw IdentityError.invalidRefreshToken
    case .redeemed(let userID, _, let sessionID):
      guard let user = try await self.store.user(id: userID), user.canSignIn else {
        await self.audit.recordOrLog(
          AuditEvent(subject: userID.lowercasedString, resource: "auth", action: "refresh_failed", decision: .deny, detail: ["reason": "inactive"]))
        throw IdentityError.invalidRefreshToken
      }
      // The session continues: recreated if it expired from idleness; refused if a newer
      // sign-in replaced it (one session per user, seed 002 §4.2.1), whose tokens would be
      // refused everywhere anyway.
      do {
        let session = Session(userID: user.id, email: user.email, roles: user.roles, permissions: user.permissions, sessionID: sessionID)
        guard try await self.sessions.resume(session) else {
          _ = try await self.store.revokeSession(sessionID, userID: user.id, reason: "replaced")
          await self.audit.recordOrLog(AuditEvent(subject: userID.lowercasedString, resource: "auth", action: "refresh_replaced", decision: .deny))
          throw IdentityError.invalidRefreshToken
        }
      } catch let error as IdentityError {
        throw error
      } catch {
        self.logger.warning("The session was not resumed", metadata: ["user_id": "\(user.id)", "error": "\(error)"])
      }
      let access = try await self.accessToken(for: user, sessionID: sessionID)
      await self.audit.recordOrLog(AuditEvent(subject: userID.lowercasedString, resource: "auth", action: "refresh", decision: .allow))
      return IssuedTokens(
        accessToken: access.token, accessExpiresAt: access.expiresAt, accessLifetime: self.configuration.accessTokenLifetime,
        refreshToken: successor, refreshExpiresAt: expiresAt)
    }
  }

  /// Ends the caller's session: its refresh tokens at once, its access tokens as services see
  /// the session gone (when Redis is down, once it is back: the revocation is queued).
  public func logout(caller: Caller) async throws {
    if let sessionID = caller.sessionID {
      _ = try await self.store.revokeSession(sessionID, userID: caller.userID, reason: "logout")
    }
    try await self.revocation.revoke(caller.userID, sessionID: caller.sessionID)
    await self.audit.recordOrLog(AuditEvent(subject: caller.userID.lowercasedString, resource: "auth", action: "logout", decision: .allow))
  }

  public func currentUser(_ caller: Caller) async throws -> User {
    guard let user = try await self.store.user(id: caller.userID), user.deletedAt == nil else {
      throw IdentityError.notFound("the caller's account no longer exists")
    }
    return user
  }

  // MARK: - Tokens

  static let refreshPrefix = "rt_"

  private func issue(for user: User, sessionID: String, familyID: UUID) async throws -> IssuedTokens {
    let access = try await self.accessToken(for: user, sessionID: sessionID)
    let refresh = Self.refreshPrefix + Base64URL.randomToken(bytes: 32)
    let refreshExpiresAt = Date().addingTimeInterval(Double(self.configuration.refreshTokenLifetime.components.seconds))
    try await self.store.insertRefreshToken(
      userID: user.id, familyID: familyID, sessionID: sessionID, tokenHash: refresh.sha256Hex, expiresAt: refreshExpiresAt)
    return IssuedTokens(
      accessToken: access.token, accessExpiresAt: access.expiresAt, accessLifetime: self.configuration.accessTokenLifetime,
      refreshToken: refresh, refreshExpiresAt: refreshExpiresAt)
  }

  /// The built-in roles travel by name (every service knows their permissions); roles an admin
  /// defined travel as their permissions.
  private func accessToken(for user: User, sessionID: String) async throws -> (token: String, expiresAt: Date) {
    let builtin = user.roles.compactMap(Role.init(storedName:))
    let custom = user.roles.filter { Role(storedName: $0) == nil }
    var permissions = user.permissions
    if !custom.isEmpty {
      permissions += try await self.store.permissions(ofRoles: custom).values.flatMap { $0 }
    }
    let now = Date()
    let token = try await self.issuer.issue(
      userID: user.id, email: user.email, roles: builtin, permissions: Array(Set(permissions)).sorted().map(Permission.init(rawValue:)),
      sessionID: sessionID, lifetime: self.configuration.accessTokenLifetime, now: now)
    return (token, now.addingTimeInterval(Double(self.configuration.accessTokenLifetime.components.seconds)))
  }

  /// The address of a peer (`ipv4:10.0.0.1:53211` → `10.0.0.1`).
  static func host(of peer: String) -> String {
    var text = Substring(peer)
    for scheme in ["ipv4:", "ipv6:", "unix:"] where text.hasPrefix(scheme) { text = text.dropFirst(scheme.count) }
    if text.hasPrefix("["), let end = text.firstIndex(of: "]") { return String(text[text.index(after: text.startIndex)..<end]) }
    if let colon = text.lastIndex(of: ":") { return String(text[..<colon]) }
    return String(text)
  }
}
