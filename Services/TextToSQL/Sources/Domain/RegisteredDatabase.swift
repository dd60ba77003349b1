public import Foundation

/// A registered database as stored: the connection config still sealed.
public struct RegisteredDatabase: Sendable, Equatable {
  public enum Kind: String, Sendable, CaseIterable {
    case postgresql, mysql, mssql, sqlite
  }

  public var id: UUID
  public var userID: UUID
  public var name: String
  public var kind: Kind
  /// `databases.connection_string`: the SecretBox of the config's JSON.
  public var sealedConnection: String
  public var keyID: String
  public var isActive: Bool
  /// "schema.table", lowercased; empty = every synced relation.
  public var allowedTables: [String]
  public var version: Int
  public var lastSyncAt: Date?
  public var createdAt: Date
  public var updatedAt: Date

  /// The associated data that binds the sealed config to this row and owner.
  public static func sealingContext(id: UUID, userID: UUID) -> String {
    "text-to-sql/databases/\(id.uuidString.lowercased())/\(userID.uuidString.lowercased())"
  }
}

/// A registered database with its config opened.
public struct OpenedDatabase: Sendable, Equatable {
  public var row: RegisteredDatabase
  public var config: ConnectionConfig
}

/// A recorded query (sql_queries).
public struct RecordedQuery: Sendable, Equatable {
  public var id: UUID
  public var userID: UUID
  public var databaseID: UUID
  public var naturalLanguage: String
  public var sql: String
  public var explanation: String
  public var validation: Validation
  public var generator: String?
  public var promptTokens: Int
  public var completionTokens: Int
  public var executed: Bool
  public var resultRows: Int?
  public var executionMilliseconds: Int?
  public var errorMessage: String?
  public var createdAt: Date
  public var executedAt: Date?

  /// What the guard found (sql_queries.validation_result, is_safe).
  public struct Validation: Sendable, Equatable, Codable {
    public var isReadOnly: Bool
    public var isSafe: Bool
    public var statementType: String
    public var referencedTables: [String]
    public var issues: [String]
    /// Which layer refused ("parser", "functions", "relations", "columns"), if any.
    public var layer: String?

    public init(isReadOnly: Bool, isSafe: Bool, statementType: String, referencedTables: [String], issues: [String], layer: String?) {
      self.isReadOnly = isReadOnly
      self.isSafe = isSafe
      self.statementType = statementType
      self.referencedTables = referencedTables
      self.issues = issues
      self.layer = layer
    }
  }
}

/// A column policy row (auth_policy).
public struct StoredPolicy: Sendable, Equatable {
  public var id: Int64
  public var databaseID: UUID
  public var column: ColumnName
  public var effect: ColumnPolicies.Effect
  public var createdAt: Date
}
