internal import Foundation
internal import Logging
internal import NIOCore
internal import NIOPosix
internal import NIOSSL
internal import PlatformCore
internal import PostgresNIO

/// A registered PostgreSQL database, through a small pool of its own connections (postgres-nio)
/// to the address the egress policy checked, never to the name again. A connection that fails
/// to open fails the call at once with the server's reason (authentication, a missing database),
/// rather than waiting for a pool to retry; a full pool queues a bounded number of callers.
///
/// Every run is the guard's fifth layer: `BEGIN READ ONLY`, `SET LOCAL statement_timeout` and
/// `idle_in_transaction_session_timeout`, the statement wrapped so that the server stops at the
/// row cap + 1 and refuses a row larger than the byte cap (before sending it), the bytes
/// counted as rows arrive, then `ROLLBACK`, whatever happened.
final class PostgresTarget: TargetDatabase {
  let dialect = SQLDialect.postgresql
  private let pool: ConnectionPool
  private let logger: Logger

  /// - Parameters:
  ///   - address: the checked address to connect to.
  ///   - config: the database, the role, TLS (`host` is only the name TLS verifies).
  init(address: SocketAddress, config: ConnectionConfig, maxConnections: Int, logger: Logger) throws(TargetError) {
    guard let ip = address.ipAddress else { throw .unavailable("The target has no IP address") }
    let tls: PostgresConnection.Configuration.TLS
    do {
      switch config.tls {
      case .disable:
        tls = .disable
      case .require:
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        tls = .require(try NIOSSLContext(configuration: configuration))
      case .verifyFull:
        tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
      }
    } catch {
      throw .unavailable("TLS could not be set up")
    }
    var configuration = PostgresConnection.Configuration(
      host: ip, port: config.port, username: config.username, password: config.password, database: config.database, tls: tls)
    configuration.options.tlsServerName = config.host
    configuration.options.connectTimeout = .seconds(5)
    configuration.options.additionalStartupParameters = [("application_name", config.options["application_name"] ?? "platform-text-to-sql")]
    self.pool = ConnectionPool(configuration: configuration, maxConnections: maxConnections, logger: logger)
    self.logger = logger
  }

  func shutdown() async {
    await self.pool.shutdown()
  }

  // MARK: - Test

  func test() async throws(TargetError) -> ConnectionReport {
    try await self.transaction(timeout: .seconds(10)) { connection in
      let started = ContinuousClock.now
      _ = try await connection.query("SELECT 1", logger: self.logger).collect()
      let latency = ContinuousClock.now - started
      let version = try await connection.query("SELECT 'PostgreSQL ' || current_setting('server_version')", logger: self.logger)
        .collect().first?.decode(String.self) ?? "PostgreSQL"
      var privileges: [String] = []
      let role = try await connection.query(
        """
        SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,
          pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'),
          pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'),
          pg_has_role(current_user, 'pg_write_all_data', 'MEMBER')
        FROM pg_roles WHERE rolname = current_user
        """, logger: self.logger
      ).collect()
      if let row = role.first {
        let flags = try row.decode((Bool, Bool, Bool, Bool, Bool, Bool, Bool).self)
        let names = [
          (flags.0, "superuser"), (flags.1, "CREATEROLE"), (flags.2, "CREATEDB"), (flags.3, "BYPASSRLS"),
          (flags.4, "pg_write_server_files"), (flags.5, "pg_execute_server_program"), (flags.6, "pg_write_all_data"),
        ]
        privileges += names.filter(\.0).map(\.1)
      }
      let tables = try await connection.query(
        """
        SELECT p.privilege_type || ' on ' || n.nspname || '.' || c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
          LATERAL (SELECT unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS privilege_type) p
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND has_table_privilege(c.oid, p.privilege_type)
        ORDER BY 1 LIMIT 21
        """, logger: self.logger
      ).collect()
      for row in tables { privileges.append(try row.decode(String.self)) }
      if privileges.count > 20 { privileges = Array(privileges.prefix(20)) + ["…"] }
      return ConnectionReport(
        serverVersion: version, latencyMilliseconds: Int(latency.wholeMilliseconds) + 1, writePrivileges: privileges)
    }
  }

  // MARK: - Catalog

  func catalog(schemas: [String], withheld: Set<ColumnName>) async throws(TargetError) -> SchemaCatalog {
    try await self.transaction(timeout: .seconds(60)) { connection in
      let relations = try await connection.query(
        """
        SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, coalesce(obj_description(c.oid, 'pg_class'), ''),
          CASE WHEN c.reltuples >= 0 THEN c.reltuples::int8 END
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND (cardinality(\(schemas)::text[]) = 0 OR n.nspname = ANY(\(schemas)::text[]))
          AND has_table_privilege(c.oid, 'SELECT')
        ORDER BY n.nspname, c.relname
        LIMIT \(Self.maxTables)
        """, logger: self.logger
      ).collect()
      var tables: [Int64: CatalogTable] = [:]
      var order: [Int64] = []
      for row in relations {
        let (oid, schema, name, kind, comment, estimate) = try row.decode((Int64, String, String, String, String, Int64?).self)
        tables[oid] = CatalogTable(
          schema: schema, name: name, description: comment, isView: kind == "v" || kind == "m", rowCount: estimate, columns: [])
        order.append(oid)
      }
      guard !order.isEmpty else { return SchemaCatalog(tables: []) }
      let columns = try await connection.query(
        """
        SELECT a.attrelid::int8, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
          pg_get_expr(d.adbin, d.adrelid), coalesce(col_description(a.attrelid, a.attnum), ''), a.attnum::int4
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = ANY(\(order)::int8[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attrelid, a.attnum
        """, logger: self.logger
      ).collect()
      for row in columns {
        let (oid, name, type, nullable, defaultValue, comment, ordinal) = try row.decode((Int64, String, String, Bool, String?, String, Int32).self)
        tables[oid]?.columns.append(
          CatalogColumn(
            name: name, dataType: type, isNullable: nullable, defaultValue: defaultValue.map { String($0.prefix(256)) },
            description: comment, ordinal: Int(ordinal)))
      }
      let indexes = try await connection.query(
        """
        SELECT i.indrelid::int8, ci.relname, i.indisunique, i.indisprimary,
          ARRAY(SELECT coalesce(a.attname::text, '(expression)') FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
                LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
        FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
        WHERE i.indrelid = ANY(\(order)::int8[]::oid[])
        ORDER BY i.indrelid, ci.relname
        """, logger: self.logger
      ).collect()
      for row in indexes {
        let (oid, name, unique, primary, names) = try row.decode((Int64, String, Bool, Bool, [String]).self)
        tables[oid]?.indexes.append(CatalogIndex(name: name, columns: names, isUnique: unique))
        if primary, var table = tables[oid] {
          for index in table.columns.indices where names.contains(table.columns[index].name) { table.columns[index].isPrimaryKey = true }
          tables[oid] = table
        }
      }
      let keys = try await connection.query(
        """
        SELECT c.conrelid::int8, c.conname, rn.nspname, rc.relname,
          ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
          ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o)
        FROM pg_constraint c JOIN pg_class rc ON rc.oid = c.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
        WHERE c.contype = 'f' AND c.conrelid = ANY(\(order)::int8[]::oid[])
        ORDER BY c.conrelid, c.conname
        """, logger: self.logger
      ).collect()
      for row in keys {
        let (oid, name, schema, table, columns, referenced) = try row.decode((Int64, String, String, String, [String], [String]).self)
        tables[oid]?.foreignKeys.append(
          CatalogForeignKey(name: name, columns: columns, referencedSchema: schema, referencedTable: table, referencedColumns: referenced))
      }
      // A few distinct values of short text columns, from a bounded look at each table.
      for oid in order.prefix(Self.maxSampledTables) {
        guard var table = tables[oid] else { continue }
        for index in table.columns.indices {
          let column = table.columns[index]
          guard Self.isText(column.dataType), !withheld.contains(ColumnName(table: table.qualifiedName, column: column.name)) else { continue }
          let sql = """
            SELECT DISTINCT v FROM (SELECT \(SQLDialect.quote(column.name))::text AS v FROM \(table.quotedName)
              LIMIT 2000) s WHERE v IS NOT NULL AND length(v) <= 64 LIMIT \(Self.maxSampleValues + 1)
            """
          let values = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: self.logger).collect()
            .map { try $0.decode(String.self) }
          if values.count <= Self.maxSampleValues { table.columns[index].sampleValues = values.sorted() }
        }
        tables[oid] = table
      }
      return SchemaCatalog(tables: order.compactMap { tables[$0] })
    }
  }

  static let maxTables = 2000
  static let maxSampledTables = 200
  static let maxSampleValues = 20

  static func isText(_ type: String) -> Bool {
    type == "text" || type.hasPrefix("character varying") || type.hasPrefix("character(") || type == "character"
      || type.hasPrefix("varchar")
  }

  // MARK: - Runs

  func run(_ sql: String, limits: QueryLimits, origins: Bool) async throws(TargetError) -> ResultRows {
    try await self.transaction(timeout: limits.timeout) { connection in
      let started = ContinuousClock.now
      // The statement parsed as one SELECT, so it ends where its text ends; the newline ends a
      // trailing `--` comment. The server stops at the cap + 1 and raises an error, before
      // sending it, for a row whose text is larger than the byte cap.
      let wrapped = """
        SELECT q.* FROM (
        \(sql)
        ) AS q WHERE CASE WHEN octet_length(q::text) > \(limits.maxBytes) THEN ('\(Self.rowTooLarge): ' || octet_length(q::text))::int > 0 ELSE true END
        LIMIT \(limits.maxRows + 1)
        """
      var rows = try await connection.query(PostgresQuery(unsafeSQL: wrapped), logger: self.logger)
      var columns = Array(rows.columns)
      if columns.contains(where: { Self.decoders[$0.dataType.rawValue] == nil }) {
        // Types without a decoder here come back as their text (a second run, in the same
        // snapshot): the columns renamed by position, so duplicate names survive.
        for try await _ in rows {}
        let names = (1...columns.count).map { "c\($0)" }
        let list = columns.enumerated().map { index, column in
          let cast = Self.decoders[column.dataType.rawValue] == nil ? "::text" : ""
          return "q.c\(index + 1)\(cast) AS \(SQLDialect.quote(column.name))"
        }.joined(separator: ", ")
        let retyped = """
          SELECT \(list) FROM (
          \(sql)
          ) AS q(\(names.joined(separator: ", "))) WHERE CASE WHEN octet_length(q::text) > \(limits.maxBytes) THEN ('\(Self.rowTooLarge): ' || octet_length(q::text))::int > 0 ELSE true END
          LIMIT \(limits.maxRows + 1)
          """
        rows = try await connection.query(PostgresQuery(unsafeSQL: retyped), logger: self.logger)
        columns = Array(rows.columns)
      }
      let origins = origins ? try await self.origins(of: columns, on: connection) : columns.map { _ in nil }
      var result = ResultRows(
        columns: columns.enumerated().map { index, column in
          ResultRows.Column(name: column.name, dataType: Self.typeName(column.dataType), origin: origins[index])
        }, rows: [], truncated: nil, elapsed: .zero)
      var bytes = 0
      for try await row in rows {
        if result.rows.count == limits.maxRows {
          result.truncated = .rows
          break
        }
        var values: [ResultValue] = []
        values.reserveCapacity(columns.count)
        for cell in row {
          let value = try Self.value(of: cell)
          bytes += value.size
          values.append(value)
        }
        if bytes > limits.maxBytes {
          result.truncated = .bytes
          break
        }
        result.rows.append(values)
      }
      result.elapsed = ContinuousClock.now - started
      return result
    }
  }

  /// The message of the error the wrapper raises for a row over the byte cap.
  static let rowTooLarge = "result row larger than the byte cap"

  /// Where each result column comes from (RowDescription's table OID and attribute number),
  /// resolved to names in one catalog query.
  private func origins(of columns: [PostgresColumn], on connection: PostgresConnection) async throws -> [ColumnName?] {
    let pairs = columns.map { (Int64($0.tableOID), Int32($0.columnAttributeNumber)) }
    guard pairs.contains(where: { $0.0 != 0 && $0.1 > 0 }) else { return columns.map { _ in nil } }
    let rows = try await connection.query(
      """
      SELECT c.oid::int8, a.attnum::int4, n.nspname || '.' || c.relname, a.attname::text
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE (c.oid::int8, a.attnum::int4) IN (SELECT * FROM unnest(\(pairs.map(\.0))::int8[], \(pairs.map(\.1))::int4[]))
      """, logger: self.logger
    ).collect()
    var names: [String: ColumnName] = [:]
    for row in rows {
      let (oid, number, table, column) = try row.decode((Int64, Int32, String, String).self)
      names["\(oid):\(number)"] = ColumnName(table: table, column: column)
    }
    return pairs.map { names["\($0.0):\($0.1)"] }
  }

  // MARK: - Values

  private static let decoders: [UInt32: String] = [
    16: "bool", 20: "int8", 21: "int2", 23: "int4", 26: "oid", 700: "float4", 701: "float8", 1700: "numeric", 25: "text",
    1043: "varchar", 1042: "bpchar", 19: "name", 114: "json", 3802: "jsonb", 2950: "uuid", 1082: "date", 1114: "timestamp",
    1184: "timestamptz", 17: "bytea", 705: "unknown",
  ]

  static func typeName(_ type: PostgresDataType) -> String {
    Self.decoders[type.rawValue] ?? "text"
  }

  private static let isoDate: DateFormatter = {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyy-MM-dd"
    return formatter
  }()

  static func value(of cell: PostgresCell) throws -> ResultValue {
    guard cell.bytes != nil else { return .null }
    switch cell.dataType.rawValue {
    case 16: return .bool(try cell.decode(Bool.self))
    case 20, 21, 23, 26:
      let value = try cell.decode(Int64.self)
      return abs(value) <= 1 << 53 ? .number(Double(value)) : .text(String(value))
    case 700, 701:
      let value = try cell.decode(Double.self)
      return value.isFinite ? .number(value) : .text(String(value))
    case 1700: return .text(try cell.decode(Decimal.self).description)
    case 2950: return .text(try cell.decode(UUID.self).uuidString.lowercased())
    case 1082: return .text(Self.isoDate.string(from: try cell.decode(Date.self)))
    case 1114, 1184: return .text(try cell.decode(Date.self).formatted(.iso8601))
    case 17:
      var buffer = cell.bytes!
      return .text(Data(buffer.readBytes(length: buffer.readableBytes) ?? []).base64EncodedString())
    default: return .text(try cell.decode(String.self))
    }
  }

  // MARK: - Transactions and errors

  /// `body` in a read-only transaction with the timeouts, always rolled back; the connection
  /// goes back to the pool only when the rollback succeeded.
  private func transaction<Result: Sendable>(
    timeout: Duration, _ body: @escaping (PostgresConnection) async throws -> Result
  ) async throws(TargetError) -> Result {
    let milliseconds = max(1, Int(timeout.wholeMilliseconds))
    let connection: PostgresConnection
    do {
      connection = try await self.pool.lease()
    } catch {
      throw Self.targetError(error)
    }
    var reusable = false
    defer { let pool = self.pool; let clean = reusable; Task { await pool.release(connection, reusable: clean) } }
    do {
      _ = try await connection.query("BEGIN TRANSACTION READ ONLY", logger: self.logger).collect()
      do {
        // SET LOCAL, the three in one round trip.
        _ = try await connection.query(
          """
          SELECT set_config('statement_timeout', \(String(milliseconds)), true),
            set_config('idle_in_transaction_session_timeout', \(String(milliseconds + 10_000)), true),
            set_config('lock_timeout', \(String(min(milliseconds, 5000))), true)
          """, logger: self.logger
        ).collect()
        let result = try await body(connection)
        _ = try await connection.query("ROLLBACK", logger: self.logger).collect()
        reusable = true
        return result
      } catch {
        if (try? await connection.query("ROLLBACK", logger: self.logger).collect()) != nil { reusable = true }
        throw error
      }
    } catch {
      throw Self.targetError(error)
    }
  }

  static func targetError(_ error: any Error) -> TargetError {
    if let error = error as? TargetError { return error }
    let underlying = DatabaseErrors.underlying(error)
    guard let psql = underlying as? PSQLError else { return .unavailable("The database could not be reached") }
    if let info = psql.serverInfo {
      let state = info[.sqlState] ?? ""
      let message = (info[.message] ?? "the database refused the statement").truncated(toUTF8Bytes: 500)
      switch state {
      case "57014": return .timedOut
      case "53300": return .busy
      case "3D000": return .unavailable("The database does not exist")
      case "25006": return .rejected("The statement tried to write; runs are read-only")
      case "22P02" where message.contains(Self.rowTooLarge): return .rejected("A result row is larger than the result's byte cap")
      default:
        if state.hasPrefix("28") { return .unavailable("Authentication failed") }
        if state.hasPrefix("08") { return .unavailable("The connection failed") }
        return .rejected(message)
      }
    }
    switch psql.code {
    case .queryCancelled: return .timedOut
    case .sslUnsupported: return .unavailable("The server does not support TLS")
    case .failedToAddSSLHandler: return .unavailable("TLS could not be set up")
    default: return .unavailable("The database could not be reached (\(psql.code))")
    }
  }
}

/// The connections of one target: at most `maxConnections` open, idle ones reused, callers
/// beyond that queued (at most `maxWaiting`, then `busy`).
private actor ConnectionPool {
  private let configuration: PostgresConnection.Configuration
  private let maxConnections: Int
  private let maxWaiting = 256
  private let logger: Logger
  private var idle: [PostgresConnection] = []
  private var open = 0
  private var nextID = 1
  private var waiters: [CheckedContinuation<PostgresConnection?, Never>] = []
  private var closed = false

  init(configuration: PostgresConnection.Configuration, maxConnections: Int, logger: Logger) {
    self.configuration = configuration
    self.maxConnections = maxConnections
    self.logger = logger
  }

  func lease() async throws -> PostgresConnection {
    guard !self.closed else { throw TargetError.unavailable("The target is closed") }
    while let connection = self.idle.popLast() {
      if !connection.isClosed { return connection }
      self.open -= 1
    }
    if self.open < self.maxConnections {
      self.open += 1
      let id = self.nextID
      self.nextID += 1
      do {
        return try await PostgresConnection.connect(
          on: MultiThreadedEventLoopGroup.singleton.any(), configuration: self.configuration, id: id, logger: self.logger)
      } catch {
        self.open -= 1
        throw error
      }
    }
    guard self.waiters.count < self.maxWaiting else { throw TargetError.busy }
    // A released connection is handed over; nil when its holder closed it (open again).
    if let connection = await withCheckedContinuation({ self.waiters.append($0) }) { return connection }
    return try await self.lease()
  }

  func release(_ connection: PostgresConnection, reusable: Bool) async {
    if reusable && !connection.isClosed && !self.closed {
      if !self.waiters.isEmpty {
        self.waiters.removeFirst().resume(returning: connection)
      } else {
        self.idle.append(connection)
      }
      return
    }
    self.open -= 1
    if !self.waiters.isEmpty { self.waiters.removeFirst().resume(returning: nil) }
    try? await connection.close()
  }

  func shutdown() async {
    self.closed = true
    for waiter in self.waiters { waiter.resume(returning: nil) }
    self.waiters = []
    let connections = self.idle
    self.idle = []
    self.open -= connections.count
    for connection in connections { try? await connection.close() }
  }
}
