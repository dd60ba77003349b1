public import Foundation
public import Logging
public import PlatformCore

/// API keys: created by signed-in users for programs, at most with their owner's permissions,
/// shown once, stored as SHA-256, revocable, verified for every service by `verify`.
public struct ApiKeys: Sendable {
  let keys: ApiKeyStore
  let identity: IdentityStore
  let audit: AuditLog
  let logger: Logger

  /// Active keys a user may hold at once.
  public static let maxActivePerUser = 50
  public static let defaultRateLimit = 100
  public static let maxRateLimit = 1_000_000
  static let keyPrefix = "pk_live_"

  public init(keys: ApiKeyStore, identity: IdentityStore, audit: AuditLog, logger: Logger) {
    self.keys = keys
    self.identity = identity
    self.audit = audit
    self.logger = logger
  }

  /// Creates a key for `caller` and returns it with its secret (shown this once).
  public func create(
    caller: Caller, name: String, permissions: [String], expiresAt: Date?, rateLimit: Int, requestID: UUID?
  ) async throws -> (key: ApiKey, secret: String) {
    guard caller.apiKeyID == nil else { throw ApiKeyError.permissionDenied("An API key cannot create API keys; sign in") }
    let name = try Self.checkName(name)
    let permissions = try Self.checkPermissions(permissions)
    for permission in permissions where !caller.has(Permission(rawValue: permission)) {
      throw ApiKeyError.permissionDenied("permissions: the caller does not hold \(permission)")
    }
    if let expiresAt, expiresAt <= Date() {
      throw IdentityError.invalidArgument(field: "expire_time", reason: "is in the past")
    }
    guard rateLimit >= 0, rateLimit <= Self.maxRateLimit else {
      throw IdentityError.invalidArgument(field: "rate_limit_per_minute", reason: "must be 0 (the default) to \(Self.maxRateLimit)")
    }
    let secret = Self.keyPrefix + Base64URL.randomToken(bytes: 32)
    guard
      let inserted = try await self.keys.insert(
        owner: caller.userID, name: name, keyHash: secret.sha256Hex, keyPrefix: String(secret.prefix(12)),
        permissions: permissions, rateLimit: rateLimit == 0 ? Self.defaultRateLimit : rateLimit, expiresAt: expiresAt,
        requestID: requestID, maxActive: Self.maxActivePerUser)
    else { throw ApiKeyError.quota(Self.maxActivePerUser) }
    guard inserted.created else { throw ApiKeyError.secretShownOnce(inserted.key.id) }
    await self.audit.recordOrLog(
      AuditEvent(
        subject: caller.userID.lowercasedString, resource: "api_key:\(inserted.key.id.lowercasedString)", action: "api_key_create",
        decision: .allow))
    return (inserted.key, secret)
  }

  public func list(
    caller: Caller, includeRevoked: Bool, pageSize: Int32, pageToken: String
  ) async throws -> (keys: [ApiKey], nextPageToken: String, total: Int) {
    guard let limit = PageToken.pageSize(pageSize, default: 50, maximum: 200) else {
      throw IdentityError.invalidArgument(field: "page_size", reason: "must be 0 to 200")
    }
    var cursor: (Date, UUID)?
    if !pageToken.isEmpty {
      guard let decoded = PageToken.decode(pageToken, as: KeyCursor.self), decoded.includeRevoked == includeRevoked else {
        throw IdentityError.invalidArgument(field: "page_token", reason: "is not a token of this listing")
      }
      cursor = (Date(timeIntervalSince1970: Double(decoded.createdMicros) / 1_000_000), decoded.id)
    }
    let page = try await self.keys.list(owner: caller.userID, includeRevoked: includeRevoked, after: cursor, limit: limit)
    let next = page.more && !page.keys.isEmpty
      ? PageToken.encode(
        KeyCursor(
          createdMicros: Int64((page.keys.last!.createdAt.timeIntervalSince1970 * 1_000_000).rounded(.down)),
          id: page.keys.last!.id, includeRevoked: includeRevoked))
      : ""
    return (page.keys, next, page.total)
  }

  struct KeyCursor: Codable {
    var createdMicros: Int64
    var id: UUID
    var includeRevoked: Bool
  }

  public func revoke(caller: Caller, id: UUID) async throws -> ApiKey {
    guard let revoked = try await self.keys.revoke(id: id, owner: caller.userID) else {
      throw IdentityError.notFound("API key not found")
    }
    if revoked.revokedNow {
      await self.audit.recordOrLog(
        AuditEvent(
          subject: caller.userID.lowercasedString, resource: "api_key:\(id.lowercasedString)", action: "api_key_revoke", decision: .allow))
    }
    return revoked.key
  }

  /// What `secret` stands for now: the key's permissions limited to what its owner holds now.
  /// - Throws: `ApiKeyError.invalid` for an unknown, revoked, inactive or expired key or an
  ///   owner who cannot sign in.
  public func verify(_ secret: String) async throws -> VerifiedApiKey {
    guard secret.hasPrefix(Self.keyPrefix), secret.utf8.count <= 128 else { throw ApiKeyError.invalid }
    guard let key = try await self.keys.find(keyHash: secret.sha256Hex), key.status == .active,
      key.expiresAt.map({ $0 > Date() }) ?? true,
      let owner = try await self.identity.user(id: key.userID), owner.canSignIn
    else { throw ApiKeyError.invalid }
    let builtin = owner.roles.compactMap(Role.init(storedName:))
    var ownerExtra = Set(owner.permissions)
    let custom = owner.roles.filter { Role(storedName: $0) == nil }
    if !custom.isEmpty { ownerExtra.formUnion(try await self.identity.permissions(ofRoles: custom).values.flatMap { $0 }) }
    let ownerCaller = Caller(userID: owner.id, roles: builtin, extraPermissions: ownerExtra.map(Permission.init(rawValue:)))
    if key.permissions.isEmpty {
      return VerifiedApiKey(
        keyID: key.id, userID: owner.id, roles: builtin.map(\.rawValue), permissions: ownerExtra.sorted(), rateLimit: key.rateLimit,
        expiresAt: key.expiresAt)
    }
    return VerifiedApiKey(
      keyID: key.id, userID: owner.id, roles: [],
      permissions: key.permissions.filter { ownerCaller.has(Permission(rawValue: $0)) }.sorted(), rateLimit: key.rateLimit,
      expiresAt: key.expiresAt)
  }

  static func checkName(_ name: String) throws(IdentityError) -> String {
    let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !trimmed.isEmpty, trimmed.count <= 100, trimmed.utf8.count <= 400,
      !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    else { throw .invalidArgument(field: "name", reason: "must be 1 to 100 characters without control characters") }
    return trimmed
  }

  /// `resource:action` names (or `*`), at most 64 of them.
  static func checkPermissions(_ permissions: [String], field: String = "permissions") throws(IdentityError) -> [String] {
    guard permissions.count <= 64 else { throw .invalidArgument(field: field, reason: "at most 64") }
    let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_-".utf8)
    for permission in permissions {
      let parts = permission.split(separator: ":", omittingEmptySubsequences: false)
      let valid = permission == "*"
        || (parts.count == 2 && permission.utf8.count <= 64
          && parts.allSatisfy { !$0.isEmpty && ($0 == "*" || $0.utf8.allSatisfy(allowed.contains)) })
      guard valid else { throw .invalidArgument(field: field, reason: "\(permission.prefix(64).debugDescription) is not resource:action") }
    }
    return Array(Set(permissions)).sorted()
  }

}

public enum ApiKeyError: Error, Equatable, Sendable {
  case invalid
  case permissionDenied(String)
  case quota(Int)
  case secretShownOnce(UUID)
}
