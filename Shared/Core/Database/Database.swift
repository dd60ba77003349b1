public import CoreMetrics
public import Logging
public import PostgresNIO
internal import Tracing

/// The service's database as its code uses it: the pooled client, with every statement a span
/// (when tracing records) and the pool's use and wait as metrics:
/// - `db_pool_connections_in_use`: connections leased right now;
/// - `db_pool_wait_seconds`: how long each lease waited for a connection;
/// - `db_pool_connections_max`: the pool's size.
///
/// Statements return their rows at once (`[PostgresRow]`): a connection goes back to the pool
/// when the statement ends, never while a caller is still iterating. Every query in the
/// platform is bounded by a page size or a primary key, so that costs nothing.
public struct Database: Sendable {
  /// The pool itself, for what is not a statement (LISTEN, migrations, health checks).
  public let client: PostgresClient
  private let name: String
  private let tracing: PlatformTracing
  private let metrics: DatabaseMetrics

  /// - Parameters:
  ///   - client: the pool (running).
  ///   - configuration: what it connects to (the database's name on spans, the pool's size).
  ///   - tracing: records statements as spans when it has a tracer.
  ///   - metrics: where the pool's use and wait go (default the process's `MetricsSystem`).
  public init(
    client: PostgresClient, configuration: DatabaseConfiguration? = nil, tracing: PlatformTracing = .idsOnly,
    metrics: any MetricsFactory = MetricsSystem.factory
  ) {
    self.client = client
    self.name = configuration?.database ?? ""
    self.tracing = tracing
    self.metrics = DatabaseMetrics(factory: metrics, poolSize: configuration?.poolSize)
  }

  /// Runs one statement on a pooled connection and returns its rows.
  @discardableResult
  public func query(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
    try await self.withConnection(logger: logger) { connection in try await connection.query(query, logger: logger) }
  }

  /// Runs a prepared statement (DatabaseConnection.execute) on a pooled connection.
  public func execute<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws -> [Statement.Row] {
    try await self.withConnection(logger: logger) { connection in try await connection.execute(statement, logger: logger) }
  }

  /// Leases one connection for `body`.
  public func withConnection<Result>(
    logger: Logger, _ body: (DatabaseConnection) async throws -> Result
  ) async throws -> Result {
    let requested = ContinuousClock.now
    return try await self.client.withConnection { connection in
      self.metrics.leased(waited: ContinuousClock.now - requested)
      defer { self.metrics.released() }
      return try await body(DatabaseConnection(underlying: connection, database: self.name, tracing: self.tracing))
    }
  }

  /// Runs `body` in a transaction on one connection: committed when it returns, rolled back
  /// when it throws. What `body` throws comes out as it was thrown (not wrapped), so callers
  /// catch their own errors.
  public func withTransaction<Result>(
    logger: Logger, _ body: (DatabaseConnection) async throws -> Result
  ) async throws -> Result {
    do {
      return try await self.withConnection(logger: logger) { connection in
        try await connection.underlying.withTransaction(logger: logger) { _ in try await body(connection) }
      }
    } catch let error as PostgresTransactionError where error.closureError != nil {
      throw error.closureError ?? error
    }
  }
}

/// A leased connection whose statements are spans.
public struct DatabaseConnection: Sendable {
  public let underlying: PostgresConnection
  let database: String
  let tracing: PlatformTracing

  /// Runs one statement and returns its rows.
  @discardableResult
  public func query(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
    try await self.traced(query.sql) { try await self.underlying.query(query, logger: logger).collect() }
  }

  /// Runs a prepared statement and returns its rows, decoded. The connection parses the
  /// statement once (the first time it runs it) and PostgreSQL plans it once when a generic
  /// plan serves its parameters as well as custom ones (`plan_cache_mode = auto`): what a
  /// statement run on every call of a hot path saves against `query`, which sends its text to
  /// be parsed and planned each time. A statement whose parameters are read through scalar
  /// sub-selects (`(SELECT $1::int8)`) has a plan that cannot depend on them, and is planned
  /// once for certain (knowledge's BM25Statement says when that pays).
  public func execute<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws -> [Statement.Row] {
    try await self.traced(Statement.sql) {
      var rows: [Statement.Row] = []
      for try await row in try await self.underlying.execute(statement, logger: logger) { rows.append(row) }
      return rows
    }
  }

  /// `run` as a span named after `sql` when tracing records.
  private func traced<Row>(_ sql: String, _ run: () async throws -> [Row]) async throws -> [Row] {
    guard let span = self.tracing.startLeafSpan(SQLSummary.spanName(sql)) else { return try await run() }
    span.updateAttributes { attributes in
      attributes["db.system.name"] = "postgresql"
      attributes["db.namespace"] = self.database
      attributes["db.operation.name"] = SQLSummary.operation(sql)
      // The text has placeholders ($1…); the values travel separately and are never recorded.
      attributes["db.query.text"] = sql.truncated(toUTF8Bytes: SQLSummary.maxTextBytes)
    }
    do {
      let rows = try await run()
      span.attributes["db.response.returned_rows"] = Int64(rows.count)
      span.end()
      return rows
    } catch {
      if let state = DatabaseErrors.sqlState(of: error) { span.attributes["db.response.status_code"] = state }
      span.setStatus(SpanStatus(code: .error, message: DatabaseErrors.sqlState(of: error) ?? "failed"))
      span.end()
      throw error
    }
  }
}

/// Span names for SQL: the operation and its first table (`SELECT personas`), never values.
enum SQLSummary {
  static let maxTextBytes = 2048

  /// The statement's first keyword, uppercased (`SELECT`, `WITH`, `INSERT`, …).
  static func operation(_ sql: some StringProtocol) -> String {
    let words = Self.words(sql, limit: 1)
    return words.first.map { $0.uppercased() } ?? "SQL"
  }

  /// `<operation> <table>` when a table follows FROM, INTO, UPDATE or JOIN in the statement's
  /// first 64 words; else the operation alone.
  static func spanName(_ sql: some StringProtocol) -> String {
    let words = Self.words(sql, limit: 64)
    guard let first = words.first else { return "SQL" }
    let operation = first.uppercased()
    let markers: Set<String> = ["FROM", "INTO", "UPDATE", "JOIN"]
    for (index, word) in words.enumerated() where markers.contains(word.uppercased()) && index + 1 < words.count {
      let table = words[index + 1]
      if table.first.map({ $0.isLetter || $0 == "_" || $0 == "\"" }) == true {
        return operation + " " + table
      }
    }
    return operation
  }

  /// The first `limit` words: runs of letters, digits, `_`, `.` and `"` (any non-ASCII byte
  /// counts as a letter), read as UTF-8 bytes; this runs for every statement a traced call makes.
  private static func words(_ sql: some StringProtocol, limit: Int) -> [String] {
    var words: [String] = []
    var current: [UInt8] = []
    for byte in sql.utf8 {
      let isWordByte =
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
          UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "\""), 0x80...: true
        default: false
        }
      if isWordByte {
        current.append(byte)
      } else if !current.isEmpty {
        words.append(String(decoding: current, as: UTF8.self))
        current.removeAll(keepingCapacity: true)
        if words.count == limit { return words }
      }
    }
    if !current.isEmpty { words.append(String(decoding: current, as: UTF8.self)) }
    return words
  }
}

final class DatabaseMetrics: Sendable {
  private let inUse: Meter
  private let wait: Timer

  init(factory: any MetricsFactory, poolSize: Int?) {
    self.inUse = Meter(label: "db_pool_connections_in_use", factory: factory)
    self.wait = Timer(label: "db_pool_wait_seconds", factory: factory)
    if let poolSize { Meter(label: "db_pool_connections_max", factory: factory).set(poolSize) }
  }

  func leased(waited: Duration) {
    self.wait.recordNanoseconds(waited.wholeNanoseconds)
    self.inUse.increment()
  }

  func released() {
    self.inUse.decrement()
  }
}

extension Array where Element == PostgresRow {
  /// Every row decoded as `columns`, as `PostgresRowSequence.decode` does for a stream.
  public func decode<each Column: PostgresDecodable>(
    _ columns: (repeat each Column).Type, file: String = #fileID, line: Int = #line
  ) throws -> [(repeat each Column)] {
    try self.map { try $0.decode(columns, context: .default, file: file, line: line) }
  }
}

extension PostgresRow {
  /// The columns from `start` on decoded as `columns`, for rows wider than one tuple (or read in
  /// parts): `row.decode((UUID, String).self, startingAt: 3)` reads columns 3 and 4.
  public func decode<each Column: PostgresDecodable>(
    _ columns: (repeat each Column).Type, startingAt start: Int, file: String = #fileID, line: Int = #line
  ) throws -> (repeat each Column) {
    let cells = self.makeRandomAccess()
    var index = start
    func next<Value: PostgresDecodable>(_ type: Value.Type) throws -> Value {
      defer { index += 1 }
      guard index < cells.count else { throw PostgresDecodingError.Code.missingData }
      return try cells[index].decode(Value.self, context: .default, file: file, line: line)
    }
    return (repeat try next((each Column).self))
  }

  /// The column at `index` decoded as `type`.
  public func decode<Value: PostgresDecodable>(_ type: Value.Type, startingAt index: Int, file: String = #fileID, line: Int = #line) throws -> Value {
    let cells = self.makeRandomAccess()
    guard index < cells.count else { throw PostgresDecodingError.Code.missingData }
    return try cells[index].decode(Value.self, context: .default, file: file, line: line)
  }
}

extension PostgresPreparedStatement where Row == PostgresRow {
  /// A statement whose caller reads its rows itself (several shapes, or arrays decoded there).
  public func decodeRow(_ row: PostgresRow) -> PostgresRow { row }
}
