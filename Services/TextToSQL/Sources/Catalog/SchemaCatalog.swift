internal import Foundation

/// What a schema sync knows about a registered database: its tables and views with their
/// columns, keys, indexes, row estimates and a few sample values. The generator links questions
/// to it, the guard takes its relations and columns from it, and it is cached in Redis
/// (`sql:schema:{database_id}`) as JSON.
public struct SchemaCatalog: Sendable, Codable, Equatable {
  public var tables: [CatalogTable]

  public init(tables: [CatalogTable]) {
    self.tables = tables
  }
}

public struct CatalogTable: Sendable, Codable, Equatable {
  public var schema: String
  public var name: String
  /// A comment from the database, or a description written at sync (enhanced).
  public var description: String
  public var isView: Bool
  /// The planner's estimate; nil if unknown.
  public var rowCount: Int64?
  public var columns: [CatalogColumn]
  public var indexes: [CatalogIndex]
  public var foreignKeys: [CatalogForeignKey]

  public init(
    schema: String, name: String, description: String = "", isView: Bool = false, rowCount: Int64? = nil,
    columns: [CatalogColumn], indexes: [CatalogIndex] = [], foreignKeys: [CatalogForeignKey] = []
  ) {
    self.schema = schema
    self.name = name
    self.description = description
    self.isView = isView
    self.rowCount = rowCount
    self.columns = columns
    self.indexes = indexes
    self.foreignKeys = foreignKeys
  }

  /// `schema.name`.
  public var qualifiedName: String { "\(self.schema).\(self.name)" }

  /// `"schema"."name"`, for SQL.
  var quotedName: String { SQLDialect.quote(self.schema) + "." + SQLDialect.quote(self.name) }
}

public struct CatalogColumn: Sendable, Codable, Equatable {
  public var name: String
  /// As the database reports it: "integer", "numeric(10,2)", "text", "date", "timestamp with
  /// time zone", "boolean", … (SQLite: its declared type).
  public var dataType: String
  public var isNullable: Bool
  public var isPrimaryKey: Bool
  public var defaultValue: String?
  public var description: String
  /// 1-based.
  public var ordinal: Int
  /// A few distinct values of a text column with few distinct values (for filters on values:
  /// "customers in Germany" → country = 'Germany'); empty for other columns and for columns a
  /// policy denies or masks.
  public var sampleValues: [String]

  public init(
    name: String, dataType: String, isNullable: Bool = true, isPrimaryKey: Bool = false, defaultValue: String? = nil,
    description: String = "", ordinal: Int, sampleValues: [String] = []
  ) {
    self.name = name
    self.dataType = dataType
    self.isNullable = isNullable
    self.isPrimaryKey = isPrimaryKey
    self.defaultValue = defaultValue
    self.description = description
    self.ordinal = ordinal
    self.sampleValues = sampleValues
  }
}

public struct CatalogIndex: Sendable, Codable, Equatable {
  public var name: String
  public var columns: [String]
  public var isUnique: Bool

  public init(name: String, columns: [String], isUnique: Bool) {
    self.name = name
    self.columns = columns
    self.isUnique = isUnique
  }
}

public struct CatalogForeignKey: Sendable, Codable, Equatable {
  public var name: String
  public var columns: [String]
  public var referencedSchema: String
  public var referencedTable: String
  public var referencedColumns: [String]

  public init(name: String, columns: [String], referencedSchema: String, referencedTable: String, referencedColumns: [String]) {
    self.name = name
    self.columns = columns
    self.referencedSchema = referencedSchema
    self.referencedTable = referencedTable
    self.referencedColumns = referencedColumns
  }
}

/// The SQL a target database speaks.
public enum SQLDialect: String, Sendable, Codable {
  case postgresql
  case sqlite

  /// `name` as a quoted identifier: double quotes, doubled inside (both dialects).
  static func quote(_ name: String) -> String {
    "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }
}
