public import GRPCRuntime

/// Which permission each method needs. Methods of `openServices` need no credentials (health
/// and reflection, so probes and grpcurl work), nor do `openMethods` (signing up and in); any
/// other method without a declared permission is refused, so a method added without a policy
/// entry fails closed. `Permission.authenticated` asks for credentials and nothing more.
public struct AccessPolicy: Sendable {
  public var requirements: [String: Permission]
  public var openServices: Set<String>
  public var openMethods: Set<String>
  /// Services whose every refused call is audited, including refusals of the handler itself
  /// (bad input, a missing precondition), not only the auth interceptor's: the identity
  /// service's, where a refused call is a security event (`RefusalAuditInterceptor`).
  public var auditedServices: Set<String> = []

  /// The services every platform server leaves open.
  public static let defaultOpenServices: Set<String> = [
    "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
  ]

  public init(
    _ requirements: [MethodDescriptor: Permission] = [:], openMethods: [MethodDescriptor] = [],
    openServices: Set<String> = Self.defaultOpenServices
  ) {
    self.requirements = Dictionary(uniqueKeysWithValues: requirements.map { ($0.key.path, $0.value) })
    self.openServices = openServices
    self.openMethods = Set(openMethods.map(\.path))
  }

  public enum Decision: Equatable, Sendable {
    case open
    case requires(Permission)
    case undeclared
  }

  public func decision(for method: MethodDescriptor) -> Decision {
    if self.openServices.contains(method.service) || self.openMethods.contains(method.path) { return .open }
    if let permission = self.requirements[method.path] { return .requires(permission) }
    return .undeclared
  }
}

/// Verifies the `authorization: Bearer` token of every call and checks the method's permission:
/// UNAUTHENTICATED without a valid token (or when the token's session has ended: logout,
/// deactivation), PERMISSION_DENIED without the permission. The caller is attached to the
/// context (`context.caller`). Every refusal is queued for `auth_audit_log`.
public struct AuthInterceptor: ServerInterceptor {
  private let verifier: TokenVerifier
  private let policy: AccessPolicy
  private let sessions: SessionCheck?
  private let audit: AuditRecorder?
  private let apiKeys: (any ApiKeyVerifying)?
  private let limiter: RateLimiter?

  public init(
    verifier: TokenVerifier, policy: AccessPolicy, sessions: SessionCheck? = nil, audit: AuditRecorder? = nil,
    apiKeys: (any ApiKeyVerifying)? = nil, limiter: RateLimiter? = nil
  ) {
    self.verifier = verifier
    self.policy = policy
    self.sessions = sessions
    self.audit = audit
    self.apiKeys = apiKeys
    self.limiter = limiter
  }

  /// Open methods' calls do not pass through authentication.
  public func interceptor(for method: MethodDescriptor) -> (any ServerInterceptor)? {
    self.policy.decision(for: method) == .open ? nil : self
  }

  public func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    // The open path in a frame of its own: an async function's frame holds every local of every
    // path, and the task allocates it anew for each call.
    switch self.policy.decision(for: context.method) {
    case .open:
      try await next(context)
    case .undeclared:
      throw self.refuse(context, nil, .permissionDenied, "\(context.method.path) declares no permission and is closed")
    case .requires(let permission):
      try await self.authenticate(context, requiring: permission, next: next)
    }
  }

  /// Runs `next` for a caller who has `required`, and refuses anyone else.
  private func authenticate(
    _ context: ServerContext, requiring required: Permission, next: (ServerContext) async throws -> Void
  ) async throws {
    let authorization = context.requestMetadataStrings(forKey: "authorization")
    let apiKeyHeaders = context.requestMetadataStrings(forKey: "x-api-key")
    if !apiKeyHeaders.isEmpty || authorization.first.map(Self.isApiKeyScheme) == true {
      let caller = try await self.apiKeyCaller(context, authorization: authorization, apiKeyHeaders: apiKeyHeaders)
      guard caller.has(required) else {
        throw self.refuse(context, caller, .permissionDenied, "\(context.method.method) requires the permission \(required)")
      }
      context[CallerKey.self] = caller
      return try await next(context)
    }
    let caller: Caller
    do {
      caller = try await self.verifier.verify(Self.bearerToken(in: authorization))
    } catch {
      throw self.refuse(context, nil, .unauthenticated, error.description)
    }
    // Tokens the agent service issues name their session; one that has ended (logout,
    // deactivation) is refused. Tokens without a session are not revocable this way.
    if let sessions = self.sessions, let sessionID = caller.sessionID {
      switch await sessions.check(userID: caller.userID, sessionID: sessionID) {
      case .live, .unknown(accepted: true): break
      case .ended: throw self.refuse(context, caller, .unauthenticated, "The token's session has ended; sign in again")
      case .unknown(accepted: false):
        throw self.refuse(context, caller, .unavailable, "The session cannot be checked now (Redis is unreachable)")
      }
    }
    guard caller.has(required) else {
      throw self.refuse(context, caller, .permissionDenied, "\(context.method.method) requires the permission \(required)")
    }
    context[CallerKey.self] = caller
    try await next(context)
  }

  /// The caller of an API key (`x-api-key: <key>` or `authorization: ApiKey <key>`, one of
  /// them, once), after the key's own rate limit.
  private func apiKeyCaller(_ context: ServerContext, authorization: [String], apiKeyHeaders: [String]) async throws -> Caller {
    guard apiKeyHeaders.count + authorization.count == 1 else {
      throw self.refuse(context, nil, .unauthenticated, "The call must carry one credential: a bearer token or an API key")
    }
    let key = apiKeyHeaders.first ?? String(Substring(authorization[0].utf8.dropFirst(7).drop(while: { $0 == UInt8(ascii: " ") })))
    guard let apiKeys = self.apiKeys else {
      throw self.refuse(context, nil, .unauthenticated, "API keys are not accepted here")
    }
    let identity: ApiKeyIdentity?
    do {
      identity = try await apiKeys.identity(of: key)
    } catch {
      throw self.refuse(context, nil, .unavailable, "The API key cannot be checked now; retry shortly")
    }
    guard let identity else { throw self.refuse(context, nil, .unauthenticated, "The API key is invalid, revoked or expired") }
    if let limiter = self.limiter, let keyID = identity.caller.apiKeyID,
      case .limited(let retryAfter) = await limiter.acquire("apikey:\(keyID)", limit: identity.rateLimitPerMinute, per: .seconds(60))
    {
      _ = self.refuse(context, identity.caller, .resourceExhausted, "API key rate limit")
      var trailers = Metadata()
      trailers.addString(String(max(retryAfter.wholeMilliseconds, 1)), forKey: "grpc-retry-pushback-ms")
      throw RPCError(
        .resourceExhausted, "The API key's limit of \(identity.rateLimitPerMinute) calls per minute is reached", metadata: trailers)
    }
    return identity.caller
  }

  /// `ApiKey <key>`, the scheme in any case.
  static func isApiKeyScheme(_ value: String) -> Bool {
    let bytes = value.utf8
    return bytes.count > 7 && zip(bytes.prefix(6), "apikey".utf8).allSatisfy({ $0 | 0x20 == $1 })
      && bytes[bytes.index(bytes.startIndex, offsetBy: 6)] == UInt8(ascii: " ")
  }

  /// The refusal, queued for the audit log.
  private func refuse(_ context: ServerContext, _ caller: Caller?, _ code: StatusCode, _ message: String) -> RPCError {
    self.audit?.record(
      AuditEvent(
        subject: caller?.userID.lowercasedString ?? "anonymous", resource: context.method.path, action: "refused",
        decision: .deny, detail: ["status": "\(code)", "reason": message, "peer": context.peer]))
    return RPCError(code, message)
  }

  /// The token of the call's one `authorization: Bearer` header, from the values the call sent
  /// for `authorization`.
  ///
  /// A call with two `authorization` headers is refused rather than answered with either: a
  /// proxy in front may have checked the other one.
  /// - Throws: `TokenError.missing` or `.multipleAuthorizationHeaders`.
  package static func bearerToken(in authorization: [String]) throws(TokenError) -> String {
    guard authorization.count < 2 else { throw .multipleAuthorizationHeaders }
    guard let value = authorization.first else { throw .missing }
    // On the UTF-8 bytes: `String.count` walks a token's grapheme clusters on every call.
    let bytes = value.utf8
    guard bytes.count > 7,
      zip(bytes.prefix(6), "bearer".utf8).allSatisfy({ $0 | 0x20 == $1 }),
      bytes[bytes.index(bytes.startIndex, offsetBy: 6)] == UInt8(ascii: " ")
    else { throw .missing }
    return String(Substring(bytes.dropFirst(7).drop(while: { $0 == UInt8(ascii: " ") })))
  }
}

/// Forwards the credentials of the call being handled (a bearer token or an API key) to every
/// outgoing call that carries none of its own, so a service calling another acts as its caller
/// (DESIGN.md "Auth").
public struct CredentialForwardingInterceptor: ClientInterceptor {
  public init() {}

  public func prepare(_ head: inout ClientCallHead) {
    guard head.metadata.firstString(forKey: "authorization") == nil, head.metadata.firstString(forKey: "x-api-key") == nil,
      let incoming = ServerContext.current?.requestMetadata
    else { return }
    if let authorization = incoming.firstString(forKey: "authorization") {
      head.metadata.addString(authorization, forKey: "authorization")
    } else if let key = incoming.firstString(forKey: "x-api-key") {
      head.metadata.addString(key, forKey: "x-api-key")
    }
  }
}
