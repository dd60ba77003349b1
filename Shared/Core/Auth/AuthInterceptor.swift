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
/// UNAUTHENTICATED without a valid token, PERMISSION_DENIED without the permission. The caller
/// is attached to the context (`context.caller`).
public struct AuthInterceptor: ServerInterceptor {
  private let verifier: TokenVerifier
  private let policy: AccessPolicy

  public init(verifier: TokenVerifier, policy: AccessPolicy) {
    self.verifier = verifier
    self.policy = policy
  }

  public func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    let required: Permission
    switch self.policy.decision(for: context.method) {
    case .open:
      return try await next(context)
    case .undeclared:
      throw RPCError(.permissionDenied, "\(context.method.path) declares no permission and is closed")
    case .requires(let permission):
      required = permission
    }
    let caller: Caller
    do {
      caller = try await self.verifier.verify(Self.bearerToken(in: context.requestMetadataStrings(forKey: "authorization")))
    } catch {
      throw RPCError(.unauthenticated, error.description)
    }
    guard caller.has(required) else {
      throw RPCError(.permissionDenied, "\(context.method.method) requires the permission \(required)")
    }
    context[CallerKey.self] = caller
    try await next(context)
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
