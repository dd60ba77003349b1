internal import Foundation

/// How to reach a registered database: what is sealed in `databases.connection_string`.
public struct ConnectionConfig: Sendable, Codable, Equatable {
  public enum TLSMode: String, Sendable, Codable {
    case disable, require, verifyFull = "verify-full"
  }

  public var host: String
  public var port: Int
  /// The database name, or for SQLite the file's path under `SQL_SQLITE_DIR`.
  public var database: String
  public var username: String
  public var password: String
  public var tls: TLSMode
  public var options: [String: String]

  public init(host: String, port: Int, database: String, username: String, password: String, tls: TLSMode, options: [String: String]) {
    self.host = host
    self.port = port
    self.database = database
    self.username = username
    self.password = password
    self.tls = tls
    self.options = options
  }
}

/// What a connection test found.
public struct ConnectionReport: Sendable, Equatable {
  public var serverVersion: String
  public var latencyMilliseconds: Int
  /// What lets the role (or the service, for a SQLite file) change anything; empty when it
  /// can only read.
  public var writePrivileges: [String]
}

/// The limits of one run.
public struct QueryLimits: Sendable, Equatable {
  public var maxRows: Int
  /// The result's text, summed over its values; also the largest single row.
  public var maxBytes: Int
  public var timeout: Duration

  public init(maxRows: Int, maxBytes: Int, timeout: Duration) {
    self.maxRows = maxRows
    self.maxBytes = maxBytes
    self.timeout = timeout
  }
}

/// One value of a result.
public enum ResultValue: Sendable, Equatable {
  case null
  case bool(Bool)
  /// Exact in a JSON number (|n| ≤ 2^53).
  case number(Double)
  case text(String)

  /// Bytes it counts against the byte cap.
  var size: Int {
    switch self {
    case .null: 4
    case .bool: 5
    case .number: 8
    case .text(let text): text.utf8.count + 2
    }
  }
}

/// The rows of a run.
public struct ResultRows: Sendable, Equatable {
  public struct Column: Sendable, Equatable {
    public var name: String
    public var dataType: String
    /// The table column it comes from as it is ("schema.table", "column"), when the database
    /// knows (PostgreSQL's RowDescription, SQLite's column metadata); nil for expressions.
    public var origin: ColumnName?
  }

  public enum Truncation: String, Sendable {
    case rows, bytes
  }

  public var columns: [Column]
  public var rows: [[ResultValue]]
  public var truncated: Truncation?
  public var elapsed: Duration
}

/// A table column by name, lowercased: "schema.table" and "column".
public struct ColumnName: Sendable, Hashable, CustomStringConvertible {
  public var table: String
  public var column: String

  public init(table: String, column: String) {
    self.table = table.lowercased()
    self.column = column.lowercased()
  }

  public var description: String { "\(self.table).\(self.column)" }
}

/// Why a target refused or failed. Messages never hold the host, the user or the password.
public enum TargetError: Error, Equatable, Sendable {
  /// Unreachable, authentication failed, TLS failed.
  case unavailable(String)
  /// Not a target this service may connect to (the egress policy, the platform's own role, a
  /// SQLite path outside its directory).
  case refused(String)
  /// The statement's own fault (an unknown column, a division by zero, a write attempt).
  case rejected(String)
  /// The statement ran past its timeout and was cancelled.
  case timedOut
  /// Too many runs at once on this database.
  case busy
}

/// A registered database the service reads: PostgreSQL or SQLite.
public protocol TargetDatabase: Sendable {
  var dialect: SQLDialect { get }

  /// Opens a connection, runs `SELECT 1`, and reports the version and what the role could write.
  func test() async throws(TargetError) -> ConnectionReport

  /// The catalog of `schemas` (every non-system schema when empty), with a few sample values
  /// of short text columns (none for `withheld` columns).
  func catalog(schemas: [String], withheld: Set<ColumnName>) async throws(TargetError) -> SchemaCatalog

  /// Runs one statement the guard passed, read-only, within `limits`, always rolled back; with
  /// `origins`, says which table column each result column comes from (for masking).
  func run(_ sql: String, limits: QueryLimits, origins: Bool) async throws(TargetError) -> ResultRows

  /// Closes its connections.
  func shutdown() async
}
