internal import Foundation
public import GRPCRuntime
public import Logging
internal import NIOCore
internal import PlatformProtos
public import PlatformRedis
internal import SwiftProtobuf

/// What an API key stands for: the caller it authenticates and its calls per minute.
public struct ApiKeyIdentity: Sendable, Equatable {
  public var caller: Caller
  public var rateLimitPerMinute: Int

  public init(caller: Caller, rateLimitPerMinute: Int) {
    self.caller = caller
    self.rateLimitPerMinute = rateLimitPerMinute
  }
}

/// Authenticates calls made with an API key.
public protocol ApiKeyVerifying: Sendable {
  /// The identity `key` stands for; nil when the key is unknown, revoked, expired or its owner
  /// cannot sign in.
  /// - Throws: when the answer cannot be had (the agent service or Redis is unreachable).
  func identity(of key: String) async throws -> ApiKeyIdentity?
}

/// Asks the agent service (`AuthService/VerifyApiKey`) what a key stands for, and remembers the
/// answer in Redis (`apikey:{sha256}`) for at most `cacheFor` (default and maximum 30 s), so a
/// revoked key stops working everywhere within that time. A refusal is remembered 5 s, so
/// garbage keys cannot make every call a call to the agent service.
public struct AgentApiKeyVerifier: ApiKeyVerifying {
  private let agent: Platform_Agent_V1_AuthServiceClient
  private let redis: RedisClient
  private let cacheFor: Duration
  private let logger: Logger

  public init(agent: any RPCChannel, redis: RedisClient, cacheFor: Duration = .seconds(30), logger: Logger) {
    self.agent = Platform_Agent_V1_AuthServiceClient(channel: agent)
    self.redis = redis
    self.cacheFor = min(cacheFor, .seconds(30))
    self.logger = logger
  }

  /// Longer keys, or keys with characters outside printable ASCII, are refused without asking
  /// the agent service: garbage must not become a call to it (or a Redis entry) per attempt.
  static let maxKeyBytes = 128

  public func identity(of key: String) async throws -> ApiKeyIdentity? {
    guard !key.isEmpty, key.utf8.count <= Self.maxKeyBytes, key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
      return nil
    }
    let cacheKey = "apikey:" + key.sha256Hex
    if let cached = try? await self.redis.get(cacheKey) {
      let text = String(buffer: cached)
      if text == "invalid" { return nil }
      if let identity = Self.decode(text) { return identity }
    }
    let verified: Platform_Agent_V1_VerifyApiKeyResponse
    do {
      verified = try await self.agent.verifyApiKey(.with { $0.key = key }, options: CallOptions(timeout: .seconds(3)))
    } catch let error as RPCError where error.code == .unauthenticated || error.code == .invalidArgument {
      _ = try? await self.redis.set(cacheKey, to: .string("invalid"), expiration: .seconds(5))
      return nil
    }
    guard let identity = Self.identity(verified) else { return nil }
    var ttl = self.cacheFor
    if verified.hasExpireTime {
      let left = verified.expireTime.date.timeIntervalSinceNow
      guard left > 0 else { return nil }
      ttl = min(ttl, .milliseconds(Int64(left * 1000)))
    }
    if ttl >= .milliseconds(1) {
      _ = try? await self.redis.set(cacheKey, to: .string(Self.encode(verified)), expiration: ttl)
    }
    return identity
  }

  private static func encode(_ verified: Platform_Agent_V1_VerifyApiKeyResponse) -> String {
    (try? verified.jsonString()) ?? ""
  }

  private static func decode(_ text: String) -> ApiKeyIdentity? {
    (try? Platform_Agent_V1_VerifyApiKeyResponse(jsonString: text)).flatMap(Self.identity)
  }

  private static func identity(_ verified: Platform_Agent_V1_VerifyApiKeyResponse) -> ApiKeyIdentity? {
    guard let userID = UUID(strict: verified.userID) else { return nil }
    return ApiKeyIdentity(
      caller: Caller(
        userID: userID, roles: verified.roles.compactMap(Role.init(storedName:)),
        extraPermissions: verified.permissions.map(Permission.init(rawValue:)), apiKeyID: verified.keyID),
      rateLimitPerMinute: Int(verified.rateLimitPerMinute))
  }
}
