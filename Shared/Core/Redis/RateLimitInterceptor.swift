internal import Foundation
public import GRPCRuntime

/// Calls allowed per caller and class of RPC in a sliding window (`RATE_LIMIT_<CLASS>_PER_MINUTE`).
public struct RateLimits: Sendable, Equatable {
  /// Calls per window by class: the action of the permission an RPC requires (`read`, `write`,
  /// `execute`, …). A class without an entry uses `defaultLimit`; 0 means unlimited.
  public var limits: [String: Int]
  public var defaultLimit: Int
  public var window: Duration

  public init(limits: [String: Int] = [:], defaultLimit: Int = 0, window: Duration = .seconds(60)) {
    self.limits = limits
    self.defaultLimit = defaultLimit
    self.window = window
  }

  /// Whether any class is limited.
  public var isEnabled: Bool { self.defaultLimit > 0 || self.limits.values.contains { $0 > 0 } }

  public func limit(forClass rpcClass: String) -> Int { self.limits[rpcClass] ?? self.defaultLimit }
}

/// Applies the rate limits to every authenticated call, per caller and per class of RPC; a call
/// over its limit ends with RESOURCE_EXHAUSTED and `grpc-retry-pushback-ms` in its trailers (the
/// gRPC retry design's pushback: when to try again). Runs after the auth interceptor; open
/// methods (health, reflection) are not limited.
public struct RateLimitInterceptor: ServerInterceptor {
  private let limiter: RateLimiter
  private let policy: AccessPolicy
  private let limits: RateLimits

  public init(limiter: RateLimiter, policy: AccessPolicy, limits: RateLimits) {
    self.limiter = limiter
    self.policy = policy
    self.limits = limits
  }

  /// Only methods that require a permission are limited.
  public func interceptor(for method: MethodDescriptor) -> (any ServerInterceptor)? {
    guard case .requires = self.policy.decision(for: method) else { return nil }
    return self
  }

  public func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    guard let caller = context.caller, case .requires(let permission) = self.policy.decision(for: context.method) else {
      return try await next(context)
    }
    // The limited path in a frame of its own: an async function's frame holds every local of
    // every path, and the task allocates it anew for each call.
    try await self.limited(context, caller: caller, permission: permission, next: next)
  }

  private func limited(
    _ context: ServerContext, caller: Caller, permission: Permission, next: (ServerContext) async throws -> Void
  ) async throws {
    let rpcClass = permission.rawValue.split(separator: ":").last.map(String.init) ?? permission.rawValue
    let limit = self.limits.limit(forClass: rpcClass)
    guard limit > 0 else { return try await next(context) }
    switch await self.limiter.acquire("\(caller.userID.lowercasedString):\(rpcClass)", limit: limit, per: self.limits.window) {
    case .allowed:
      try await next(context)
    case .limited(let retryAfter):
      var trailers = Metadata()
      trailers.addString(String(max(retryAfter.wholeMilliseconds, 1)), forKey: "grpc-retry-pushback-ms")
      throw RPCError(
        .resourceExhausted,
        "Rate limit: at most \(limit) \(rpcClass) calls per \(self.limits.window) for each caller",
        metadata: trailers)
    }
  }
}
