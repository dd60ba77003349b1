public import Foundation
public import GRPCRuntime

/// A permission an RPC declares, such as `persona:read`.
public struct Permission: RawRepresentable, Hashable, Sendable, CustomStringConvertible,
  ExpressibleByStringLiteral
{
  public var rawValue: String
  public init(rawValue: String) { self.rawValue = rawValue }
  public init(stringLiteral value: String) { self.rawValue = value }
  public var description: String { self.rawValue }

  /// Granted to admins: every permission.
  public static let all: Permission = "*"
  /// What every authenticated caller holds: a method requiring it needs credentials only.
  public static let authenticated: Permission = "authenticated"
}

/// The platform's roles and the permissions each grants (DESIGN.md "Auth").
public enum Role: String, Sendable, CaseIterable {
  case admin
  case developer
  case analyst
  case viewer

  /// The permission prefixes of the six services.
  static let resources = ["agent", "persona", "code", "sql", "knowledge", "workflow"]

  /// What the role grants.
  public var permissions: Set<Permission> {
    switch self {
    case .admin:
      return [.all]
    case .developer:
      return Set(Self.resources.flatMap { [Permission(rawValue: "\($0):read"), Permission(rawValue: "\($0):write"), Permission(rawValue: "\($0):execute")] })
        .union(["sql:schema"])
    case .analyst:
      return Set(Self.resources.flatMap { [Permission(rawValue: "\($0):read"), Permission(rawValue: "\($0):execute")] })
    case .viewer:
      return Set(Self.resources.map { Permission(rawValue: "\($0):read") })
    }
  }

  /// A stored role name; the seed's default `user` reads as viewer, unknown names as nothing.
  public init?(storedName: String) {
    if storedName == "user" {
      self = .viewer
    } else {
      self.init(rawValue: storedName)
    }
  }
}

/// The authenticated caller of an RPC: who, with which roles and permissions.
public struct Caller: Sendable, Hashable {
  public var userID: UUID
  public var email: String?
  public var roles: [Role]
  /// Everything the caller may do: its roles' permissions plus its extra ones.
  public var permissions: Set<Permission>
  /// The login session the caller's token belongs to (nil for tokens without one).
  public var sessionID: String?
  /// The API key the call was made with (nil for a bearer token).
  public var apiKeyID: String?

  public init(
    userID: UUID, email: String? = nil, roles: [Role], extraPermissions: [Permission] = [], sessionID: String? = nil,
    apiKeyID: String? = nil
  ) {
    self.apiKeyID = apiKeyID
    self.userID = userID
    self.email = email
    self.roles = roles
    self.sessionID = sessionID
    self.permissions = roles.reduce(into: Set(extraPermissions)) { $0.formUnion($1.permissions) }
  }

  public func has(_ permission: Permission) -> Bool {
    permission == .authenticated || self.permissions.contains(.all) || self.permissions.contains(permission)
  }
}

enum CallerKey: ServerContextKey {
  typealias Value = Caller
}

extension ServerContext {
  /// The caller the auth interceptor verified; nil on open methods (health, reflection).
  public var caller: Caller? {
    self[CallerKey.self]
  }

  /// The verified caller.
  /// - Throws: UNAUTHENTICATED when the call carried no verified credentials.
  public func requireCaller() throws -> Caller {
    guard let caller = self.caller else { throw RPCError(.unauthenticated, "The call needs a bearer token") }
    return caller
  }
}
