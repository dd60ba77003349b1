public import GRPCRuntime

/// Which permission each method needs. Methods of `openServices` need no credentials (health
/// and reflection, so probes and grpcurl work), nor do `openMethods` (signing up and in); any
/// other method without a declared permission is refused, so a method added without a policy
/// entry fails closed. `Permission.authenticated` asks for credentials and nothing more.
public struct AccessPolicy: Sendable {
  public var requirements: [String: Permission]
  public var openServices: Set<String>
  public var openMethods: Set<String>

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

  public init(verifier: TokenVerifier, policy: AccessPolicy, sessions: SessionCheck? = nil, audit: AuditRecorder? = nil) {
    self.verifier = verifier
    self.policy = policy
    self.sessions = sessions
    self.audit = audit
  }

  public func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    let required: Permission
    switch self.policy.decision(for: context.method) {
    case .open:
      return try await next(context)
    case .undeclared:
      throw self.refuse(context, nil, .permissionDenied, "\(context.method.path) declares no permission and is closed")
    case .requires(let permission):
      required = permission
    }
    let caller: Caller
    do {
      caller = try await self.verifier.verify(Self.bearerToken(in: context.requestMetadataStrings(forKey: "authorization")))
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

/// Forwards the credentials of the call being handled to every outgoing call, so a service
/// calling another acts as its caller (DESIGN.md "Auth").
public struct CredentialForwardingInterceptor: ClientInterceptor {
  public init() {}

  public func prepare(_ head: inout ClientCallHead) {
    guard head.metadata.firstString(forKey: "authorization") == nil,
      let authorization = ServerContext.current?.requestMetadata.firstString(forKey: "authorization")
    else { return }
    head.metadata.addString(authorization, forKey: "authorization")
  }
}
