internal import CSQLite3
internal import Foundation
internal import NIOPosix
internal import PlatformCore
internal import Synchronization

/// A registered SQLite file under `SQL_SQLITE_DIR`, opened read-only for each operation on a
/// small thread pool of its own (SQLite blocks).
///
/// The guard's fifth layer for SQLite is SQLite's own compiler: the file is opened read-only
/// (no symlink as the last component, none anywhere on the resolved path, nothing outside the
/// directory), `PRAGMA query_only`, extensions, triggers and ATTACH off; each statement must
/// compile alone (no second statement after it) and `sqlite3_stmt_readonly`; an authorizer lets
/// through only reads of the allowed tables' non-denied columns and calls of allowlisted
/// functions; a progress handler interrupts it at the timeout; `SQLITE_LIMIT_LENGTH` bounds any
/// one value by the byte cap.
final class SQLiteTarget: TargetDatabase {
  let dialect = SQLDialect.sqlite
  /// The resolved file.
  let path: String
  private let pool: NIOThreadPool
  private let waiting: Atomic<Int>
  private let maxWaiting: Int

  /// - Throws: `TargetError.unavailable` when the path is outside `directory`, has `..`, goes
  ///   through a symlink, or is not a regular file.
  init(file: String, directory: String, pool: NIOThreadPool, maxWaiting: Int = 16) throws(TargetError) {
    self.path = try Self.confine(file, to: directory)
    self.pool = pool
    self.waiting = Atomic(0)
    self.maxWaiting = maxWaiting
  }

  static func confine(_ file: String, to directory: String) throws(TargetError) -> String {
    guard !directory.isEmpty else { throw .refused("SQLite databases are not enabled (SQL_SQLITE_DIR is not set)") }
    guard !file.isEmpty, !file.utf8.contains(0), file.utf8.count <= 1024 else { throw .refused("The SQLite path is not valid") }
    let components = file.split(separator: "/", omittingEmptySubsequences: false)
    guard !components.contains(".."), !components.contains(".") else { throw .refused("The SQLite path may not contain . or ..") }
    guard let root = Self.realPath(directory) else { throw .refused("SQL_SQLITE_DIR does not exist") }
    let joined = file.hasPrefix("/") ? file : root + "/" + file
    guard let resolved = Self.realPath(joined) else { throw .refused("The SQLite file does not exist") }
    // The resolved path must be the path as written: no symlink anywhere on it.
    guard resolved == joined, resolved.hasPrefix(root + "/") else {
      throw .refused("The SQLite file must be inside SQL_SQLITE_DIR, reached without symlinks")
    }
    guard let type = try? FileManager.default.attributesOfItem(atPath: resolved)[.type] as? FileAttributeType, type == .typeRegular else {
      throw .refused("The SQLite path is not a regular file")
    }
    return resolved
  }

  private static func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
  }

  func shutdown() async {}

  // MARK: - Operations

  func test() async throws(TargetError) -> ConnectionReport {
    try await self.offload { () throws(TargetError) -> ConnectionReport in
      let started = ContinuousClock.now
      let connection = try Connection(path: self.path, timeout: .seconds(10), maxBytes: 1 << 20)
      defer { connection.close() }
      _ = try connection.rows("SELECT 1", maxRows: 1)
      let latency = ContinuousClock.now - started
      // The service opens it read-only; what could write is the file's own permissions.
      let privileges = access(self.path, W_OK) == 0 ? ["the file is writable by the service (it is opened read-only)"] : []
      return ConnectionReport(
        serverVersion: "SQLite " + String(cString: sqlite3_libversion()),
        latencyMilliseconds: Int(latency.wholeMilliseconds) + 1, writePrivileges: privileges)
    }
  }

  func catalog(schemas: [String], withheld: Set<ColumnName>) async throws(TargetError) -> SchemaCatalog {
    if !schemas.isEmpty && !schemas.contains("main") { return SchemaCatalog(tables: []) }
    return try await self.offload { () throws(TargetError) -> SchemaCatalog in
      let connection = try Connection(path: self.path, timeout: .seconds(60), maxBytes: 1 << 20)
      defer { connection.close() }
      var tables: [CatalogTable] = []
      let relations = try connection.rows(
        "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        maxRows: PostgresTarget.maxTables)
      for relation in relations {
        guard case .text(let name) = relation[0], case .text(let kind) = relation[1] else { continue }
        let quoted = SQLDialect.quote(name)
        var table = CatalogTable(schema: "main", name: name, isView: kind == "view", columns: [])
        for info in try connection.rows("SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(\(Self.literal(name)))", maxRows: 2000) {
          guard case .number(let cid) = info[0], case .text(let column) = info[1] else { continue }
          let type: String = if case .text(let declared) = info[2] { declared } else { "" }
          let notNull = info[3] == .number(1)
          let defaultValue: String? = if case .text(let value) = info[4] { value } else { nil }
          let primary: Bool = if case .number(let position) = info[5] { position > 0 } else { false }
          table.columns.append(
            CatalogColumn(
              name: column, dataType: type.isEmpty ? "any" : type.lowercased(), isNullable: !notNull, isPrimaryKey: primary,
              defaultValue: defaultValue, ordinal: Int(cid) + 1))
        }
        for index in try connection.rows("SELECT name, \"unique\" FROM pragma_index_list(\(Self.literal(name)))", maxRows: 500) {
          guard case .text(let indexName) = index[0] else { continue }
          let columns = try connection.rows("SELECT name FROM pragma_index_info(\(Self.literal(indexName))) ORDER BY seqno", maxRows: 100)
            .compactMap { if case .text(let column) = $0[0] { column } else { nil } }
          table.indexes.append(CatalogIndex(name: indexName, columns: columns, isUnique: index[1] == .number(1)))
        }
        var keys: [Int: CatalogForeignKey] = [:]
        for key in try connection.rows("SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(\(Self.literal(name))) ORDER BY id, seq", maxRows: 500) {
          guard case .number(let id) = key[0], case .text(let target) = key[1], case .text(let from) = key[2] else { continue }
          let to: String = if case .text(let column) = key[3] { column } else { "" }
          keys[Int(id), default: CatalogForeignKey(name: "fk_\(name)_\(Int(id))", columns: [], referencedSchema: "main", referencedTable: target, referencedColumns: [])]
            .columns.append(from)
          keys[Int(id)]?.referencedColumns.append(to)
        }
        table.foreignKeys = keys.keys.sorted().compactMap { keys[$0] }
        if case .number(let count)? = try connection.rows("SELECT count(*) FROM (SELECT 1 FROM \(quoted) LIMIT 1000000)", maxRows: 1).first?.first {
          table.rowCount = Int64(count)
        }
        for index in table.columns.indices where tables.count < PostgresTarget.maxSampledTables {
          let column = table.columns[index]
          guard ["text", "varchar", "char", "clob"].contains(where: { column.dataType.contains($0) }),
            !withheld.contains(ColumnName(table: table.qualifiedName, column: column.name))
          else { continue }
          let values = try connection.rows(
            """
            SELECT DISTINCT v FROM (SELECT CAST(\(SQLDialect.quote(column.name)) AS TEXT) AS v FROM \(quoted) LIMIT 2000)
            WHERE v IS NOT NULL AND length(v) <= 64 LIMIT \(PostgresTarget.maxSampleValues + 1)
            """, maxRows: PostgresTarget.maxSampleValues + 1
          ).compactMap { if case .text(let value) = $0[0] { value } else { nil } }
          if values.count <= PostgresTarget.maxSampleValues { table.columns[index].sampleValues = values.sorted() }
        }
        tables.append(table)
      }
      return SchemaCatalog(tables: tables)
    }
  }

  func run(_ sql: String, limits: QueryLimits, origins: Bool) async throws(TargetError) -> ResultRows {
    try await self.run(sql, limits: limits, policy: nil)
  }

  /// Runs `sql` with the authorizer of `policy` (nil: reads of anything but SQLite's own tables,
  /// allowlisted functions).
  func run(_ sql: String, limits: QueryLimits, policy: SQLiteReadPolicy?) async throws(TargetError) -> ResultRows {
    try await self.offload { () throws(TargetError) -> ResultRows in
      let started = ContinuousClock.now
      let connection = try Connection(path: self.path, timeout: limits.timeout, maxBytes: limits.maxBytes)
      defer { connection.close() }
      let authorizer = Authorizer(policy: policy ?? SQLiteReadPolicy(tables: nil, deniedColumns: []))
      var result = try withExtendedLifetime(authorizer) { () throws(TargetError) -> ResultRows in
        connection.authorize(with: authorizer)
        return try connection.query(sql, limits: limits, authorizer: authorizer)
      }
      result.elapsed = ContinuousClock.now - started
      return result
    }
  }

  private func offload<Result: Sendable>(_ work: @escaping @Sendable () throws(TargetError) -> Result) async throws(TargetError) -> Result {
    guard self.waiting.add(1, ordering: .relaxed).newValue <= self.maxWaiting else {
      self.waiting.subtract(1, ordering: .relaxed)
      throw .busy
    }
    defer { self.waiting.subtract(1, ordering: .relaxed) }
    do {
      return try await self.pool.runIfActive { () throws -> Result in try work() }
    } catch let error as TargetError {
      throw error
    } catch {
      throw .unavailable("The SQLite pool is stopped")
    }
  }

  static func literal(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
  }
}

/// What the authorizer lets a statement read.
struct SQLiteReadPolicy: Sendable {
  /// Tables and views by lowercased name (nil: any but SQLite's own).
  var tables: Set<String>?
  /// Columns no statement may read.
  var deniedColumns: Set<ColumnName>
}

/// The authorizer callback's state; it records the first refusal for the error message.
private final class Authorizer {
  let policy: SQLiteReadPolicy
  var refusal: String?

  init(policy: SQLiteReadPolicy) {
    self.policy = policy
  }

  func decide(action: Int32, first: String?, second: String?) -> Int32 {
    switch action {
    case SQLITE_SELECT:
      return SQLITE_OK
    case SQLITE_READ:
      let table = (first ?? "").lowercased()
      // Reading no column (count(*)) reports an empty column name.
      if table.hasPrefix("sqlite_") { return self.deny("The relation \(table) is not allowed") }
      if let tables = self.policy.tables, !tables.contains(table) { return self.deny("The relation \(table) is not allowed") }
      if let column = second, !column.isEmpty, self.policy.deniedColumns.contains(ColumnName(table: "main." + table, column: column)) {
        return self.deny("The column \(table).\(column.lowercased()) is denied by a column policy")
      }
      return SQLITE_OK
    case SQLITE_FUNCTION:
      let name = (second ?? "").lowercased()
      return SQLGuard.sqliteFunctions.contains(name) ? SQLITE_OK : self.deny("The function \(name) is not allowed")
    case SQLITE_RECURSIVE:
      return SQLITE_OK
    default:
      return self.deny("Only one plain SELECT is allowed: the statement does more than read (SQLite action \(action))")
    }
  }

  private func deny(_ why: String) -> Int32 {
    if self.refusal == nil { self.refusal = why }
    return SQLITE_DENY
  }
}

/// One read-only connection to the file.
private final class Connection {
  private var handle: OpaquePointer?
  let deadline: ContinuousClock.Instant

  init(path: String, timeout: Duration, maxBytes: Int) throws(TargetError) {
    self.deadline = .now + timeout
    var handle: OpaquePointer?
    let flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_PRIVATECACHE
    guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK, let handle else {
      sqlite3_close(handle)
      throw .unavailable("The SQLite file could not be opened")
    }
    self.handle = handle
    guard platform_sqlite3_harden(handle) == SQLITE_OK,
      sqlite3_exec(handle, "PRAGMA query_only = 1", nil, nil, nil) == SQLITE_OK
    else {
      self.close()
      throw .unavailable("The SQLite file could not be opened safely")
    }
    sqlite3_limit(handle, SQLITE_LIMIT_ATTACHED, 0)
    sqlite3_limit(handle, SQLITE_LIMIT_LENGTH, Int32(clamping: max(1024, maxBytes)))
    sqlite3_limit(handle, SQLITE_LIMIT_SQL_LENGTH, Int32(SQLGuard.maxBytes))
    sqlite3_limit(handle, SQLITE_LIMIT_EXPR_DEPTH, 200)
    sqlite3_limit(handle, SQLITE_LIMIT_COMPOUND_SELECT, 100)
    sqlite3_limit(handle, SQLITE_LIMIT_VDBE_OP, 250_000)
    // Every 1,000 virtual-machine steps: past the deadline, interrupt.
    sqlite3_progress_handler(handle, 1000, { context in
      guard let context else { return 1 }
      let connection = Unmanaged<Connection>.fromOpaque(context).takeUnretainedValue()
      return ContinuousClock.now >= connection.deadline ? 1 : 0
    }, Unmanaged.passUnretained(self).toOpaque())
  }

  func close() {
    if let handle = self.handle {
      sqlite3_progress_handler(handle, 0, nil, nil)
      sqlite3_close_v2(handle)
    }
    self.handle = nil
  }

  deinit {
    self.close()
  }

  fileprivate func authorize(with authorizer: Authorizer) {
    sqlite3_set_authorizer(self.handle, { context, action, first, second, _, _ in
      guard let context else { return SQLITE_DENY }
      let authorizer = Unmanaged<Authorizer>.fromOpaque(context).takeUnretainedValue()
      return authorizer.decide(action: action, first: first.map { String(cString: $0) }, second: second.map { String(cString: $0) })
    }, Unmanaged.passUnretained(authorizer).toOpaque())
  }

  /// The rows of a statement of our own (catalog reads).
  func rows(_ sql: String, maxRows: Int) throws(TargetError) -> [[ResultValue]] {
    try self.query(sql, limits: QueryLimits(maxRows: maxRows, maxBytes: 64 << 20, timeout: .seconds(60)), authorizer: nil).rows
  }

  fileprivate func query(_ sql: String, limits: QueryLimits, authorizer: Authorizer?) throws(TargetError) -> ResultRows {
    var statement: OpaquePointer?
    var tail: UnsafePointer<CChar>?
    let bytes = Array(sql.utf8CString)
    let prepared = bytes.withUnsafeBufferPointer { buffer in
      let code = sqlite3_prepare_v3(self.handle, buffer.baseAddress, Int32(buffer.count), 0, &statement, &tail)
      let rest = tail.map { String(cString: $0) } ?? ""
      return (code, rest)
    }
    defer { sqlite3_finalize(statement) }
    guard prepared.0 == SQLITE_OK, let statement else {
      if let refusal = authorizer?.refusal { throw .rejected(refusal) }
      throw .rejected(self.message())
    }
    guard prepared.1.allSatisfy({ $0.isWhitespace || $0 == ";" }) else {
      throw .rejected("Only one plain SELECT is allowed: it holds more than one statement")
    }
    guard sqlite3_stmt_readonly(statement) != 0 else { throw .rejected("The statement does not only read") }
    let count = Int(sqlite3_column_count(statement))
    var result = ResultRows(
      columns: (0..<count).map { index in
        let name = sqlite3_column_name(statement, Int32(index)).map { String(cString: $0) } ?? ""
        let type = sqlite3_column_decltype(statement, Int32(index)).map { String(cString: $0).lowercased() } ?? ""
        var origin: ColumnName?
        if let table = sqlite3_column_table_name(statement, Int32(index)), let column = sqlite3_column_origin_name(statement, Int32(index)) {
          origin = ColumnName(table: "main." + String(cString: table), column: String(cString: column))
        }
        return ResultRows.Column(name: name, dataType: type, origin: origin)
      }, rows: [], truncated: nil, elapsed: .zero)
    var total = 0
    while true {
      let step = sqlite3_step(statement)
      if step == SQLITE_DONE { break }
      guard step == SQLITE_ROW else {
        if step == SQLITE_INTERRUPT || (step == SQLITE_ERROR && sqlite3_errcode(self.handle) == SQLITE_INTERRUPT) { throw .timedOut }
        if step == SQLITE_TOOBIG { throw .rejected("A result value is larger than the result's byte cap") }
        if let refusal = authorizer?.refusal { throw .rejected(refusal) }
        throw .rejected(self.message())
      }
      if result.rows.count == limits.maxRows {
        result.truncated = .rows
        break
      }
      var row: [ResultValue] = []
      row.reserveCapacity(count)
      for index in 0..<Int32(count) {
        let value: ResultValue
        switch sqlite3_column_type(statement, index) {
        case SQLITE_NULL: value = .null
        case SQLITE_INTEGER:
          let integer = sqlite3_column_int64(statement, index)
          value = abs(integer) <= 1 << 53 ? .number(Double(integer)) : .text(String(integer))
        case SQLITE_FLOAT:
          let double = sqlite3_column_double(statement, index)
          value = double.isFinite ? .number(double) : .text(String(double))
        case SQLITE_BLOB:
          let length = Int(sqlite3_column_bytes(statement, index))
          let data = length == 0 ? Data() : Data(bytes: sqlite3_column_blob(statement, index), count: length)
          value = .text(data.base64EncodedString())
        default:
          value = .text(sqlite3_column_text(statement, index).map { String(cString: $0) } ?? "")
        }
        total += value.size
        row.append(value)
      }
      if total > limits.maxBytes {
        result.truncated = .bytes
        break
      }
      result.rows.append(row)
    }
    return result
  }

  private func message() -> String {
    (sqlite3_errmsg(self.handle).map { String(cString: $0) } ?? "SQLite refused the statement").truncated(toUTF8Bytes: 500)
  }
}
