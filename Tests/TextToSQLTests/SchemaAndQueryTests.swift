import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import PostgresNIO
import Testing
@testable import TextToSQL

@Suite("Text-to-SQL: schema sync, column policies, questions")
struct SchemaAndQueryTests {
  @Test("Sync reads tables, columns, keys, indexes and samples, caches them, and replaces what changed")
  func sync() async throws {
    try await TargetServer.with(setup: smallSchema) { target in
      try await withTextToSQL { _, databases, _, options in
        let id = try await registerAndSync(target, databases, options)
        let tables = try await databases.listTables(.with { $0.databaseID = id; $0.includeSampleData = true }, options: options)
        #expect(tables.tables.map(\.tableName) == ["departments", "employees"])
        let employees = try #require(tables.tables.first { $0.tableName == "employees" })
        #expect(employees.columns.map(\.name) == ["id", "department_id", "name", "email", "ssn", "salary", "hired_on", "is_active"])
        #expect(employees.columns[0].isPrimaryKey && !employees.columns[2].isNullable && employees.columns[5].dataType == "numeric(10,2)")
        #expect(employees.foreignKeys.map(\.referencedTable) == ["departments"])
        #expect(employees.indexes.contains { $0.name == "employees_department" && $0.columns == ["department_id"] })
        #expect(employees.sampleRows.count == 3 && employees.description_p.contains("Columns"))
        #expect(tables.tables[0].description_p == "Company departments")
        let schemas = try await databases.listSchemas(.with { $0.databaseID = id }, options: options)
        #expect(schemas.schemas.map(\.schemaName) == ["public"])
        // Cached in Redis under the seed's key.
        let redis = try await RedisTestClient.get("sql:schema:\(id)")
        #expect(redis != nil)
        // A table dropped on the target disappears at the next sync; a new one appears.
        try await target.adminQuery("SET ROLE \(target.role); CREATE TABLE projects (id int PRIMARY KEY, title text); DROP TABLE employees")
        let again = try await databases.syncSchema(.with { $0.databaseID = id }, options: options)
        #expect(again.tableCount == 2 && again.removedTableCount == 1)
        #expect(try await databases.listTables(.with { $0.databaseID = id }, options: options).tables.map(\.tableName) == ["departments", "projects"])
        // A sync that fails leaves the metadata as it was.
        try await target.adminQuery("ALTER ROLE \(target.role) PASSWORD 'changed'")
        await expectStatus(.unavailable) {
          _ = try await databases.updateDatabase(
            .with {
              $0.database = .with { $0.id = id; $0.isActive = true }
              $0.updateMask = .with { $0.paths = ["is_active"] }
              $0.version = 1
            }, options: options)
          _ = try await databases.syncSchema(.with { $0.databaseID = id }, options: options)
        }
        #expect(try await databases.listTables(.with { $0.databaseID = id }, options: options).tables.count == 2)
      }
    }
  }

  @Test("Column policies: deny refuses every way of reading the column; mask replaces values and refuses any other use; decisions are audited")
  func policies() async throws {
    try await TargetServer.with(setup: smallSchema) { target in
      try await withTextToSQL { service, databases, queries, options in
        let id = try await registerAndSync(target, databases, options)
        _ = try await databases.setColumnPolicy(
          .with { $0.databaseID = id; $0.policy = .with { $0.tableName = "public.employees"; $0.columnName = "ssn"; $0.effect = .deny } },
          options: options)
        _ = try await databases.setColumnPolicy(
          .with {
            $0.databaseID = id
            $0.policy = .with { $0.tableName = "public.employees"; $0.columnName = "email"; $0.effect = .mask; $0.mask = .hash }
          }, options: options)
        _ = try await databases.setColumnPolicy(
          .with {
            $0.databaseID = id
            $0.policy = .with { $0.tableName = "public.employees"; $0.columnName = "salary"; $0.effect = .mask; $0.mask = .partial }
          }, options: options)
        #expect(try await databases.listColumnPolicies(.with { $0.databaseID = id }, options: options).policies.count == 3)
        func run(_ sql: String) async throws -> Platform_Texttosql_V1_ExecuteQueryResponse {
          try await queries.executeQuery(.with { $0.databaseID = id; $0.sql = sql }, options: options)
        }
        for sql in [
          "SELECT ssn FROM employees", "SELECT * FROM employees", "SELECT e.* FROM employees e", "SELECT e FROM employees e",
          "SELECT row_to_json(e) FROM employees e", "SELECT name FROM employees WHERE ssn LIKE '0%'",
          "SELECT count(*) FROM employees GROUP BY ssn", "WITH x AS (SELECT * FROM employees) SELECT name FROM x",
          "SELECT name FROM (SELECT ssn, name FROM employees) s", "SELECT name FROM employees ORDER BY ssn",
          "SELECT a.name FROM employees a JOIN employees b USING (ssn)", "SELECT EMPLOYEES.SSN FROM Employees",
          "SELECT \"ssn\" FROM public.employees",
        ] {
          await expectStatus(.invalidArgument, containing: "ssn") { _ = try await run(sql) }
        }
        for sql in [
          "SELECT name FROM employees WHERE email LIKE 'person1%'", "SELECT lower(email) FROM employees",
          "SELECT email FROM employees ORDER BY email", "SELECT DISTINCT email FROM employees", "SELECT email FROM employees ORDER BY 1",
          "SELECT count(*) FROM employees WHERE salary > 50000", "SELECT sum(salary) FROM employees",
          "SELECT email FROM employees UNION SELECT name FROM departments",
        ] {
          await expectStatus(.invalidArgument, containing: "masked") { _ = try await run(sql) }
        }
        let masked = try await run("SELECT id, name, email, salary FROM employees WHERE id = 12")
        let row = try #require(masked.result.rows.first).values
        #expect(row[2].stringValue.hasPrefix("sha256:") && row[2].stringValue.count == 23)
        #expect(row[3].stringValue == "*****.00" || row[3].stringValue.hasSuffix("0") && row[3].stringValue.hasPrefix("*"), "\(row[3])")
        #expect(masked.result.maskedColumns == ["email", "salary"])
        // Unprotected columns still filter, join and aggregate.
        let allowed = try await run(
          "SELECT d.name, count(*) FROM employees e JOIN departments d ON d.id = e.department_id WHERE e.is_active GROUP BY d.name ORDER BY 1")
        #expect(allowed.result.rows.count == 3)
        let audit = try await service.database.query(
          "SELECT decision, coalesce(auth_policy_id, 0) FROM auth_audit_log WHERE action = 'query' ORDER BY id", logger: TestPostgres.quietLogger
        ).collect().map { try $0.decode((String, Int64).self) }
        #expect(audit.filter { $0.0 == "deny" }.count >= 13 && audit.contains { $0.0 == "mask" && $0.1 > 0 })
        // Policies are removed by table and column.
        _ = try await databases.deleteColumnPolicy(.with { $0.databaseID = id; $0.tableName = "public.employees"; $0.columnName = "ssn" }, options: options)
        #expect(try await run("SELECT ssn FROM employees WHERE id = 1").result.rows.count == 1)
      }
    }
  }

  @Test("Questions become SQL offline, run, and are recorded with their history; runs keep their caps")
  func questions() async throws {
    try await TargetServer.with(setup: smallSchema) { target in
      try await withTextToSQL { service, databases, queries, options in
        let id = try await registerAndSync(target, databases, options)
        let answer = try await queries.askQuestion(.with { $0.databaseID = id; $0.question = "How many employees are there?" }, options: options)
        #expect(answer.query.validation.isSafe && answer.query.executed, "\(answer.query)")
        #expect(answer.result.rows.first?.values.first?.numberValue == 30, "\(answer.result)")
        let generated = try await queries.generateSql(
          .with { $0.databaseID = id; $0.question = "average salary per department" }, options: options)
        #expect(generated.validation.isSafe && !generated.executed && !generated.sql.isEmpty, "\(generated)")
        let unsupported = try await queries.askQuestion(.with { $0.databaseID = id; $0.question = "zzz qqq" }, options: options)
        #expect(!unsupported.query.validation.isSafe && !unsupported.hasResult)
        await expectStatus(.invalidArgument, containing: "question") {
          _ = try await queries.askQuestion(.with { $0.databaseID = id; $0.question = String(repeating: "x", count: 2001) }, options: options)
        }
        // Types without a binary decoder come back as their text, duplicate names kept.
        let typed = try await queries.executeQuery(
          .with {
            $0.databaseID = id
            $0.sql = "SELECT interval '1 day' AS x, ARRAY[1, 2] AS x, 9007199254740993::int8 AS big, 1.5::numeric AS n, true AS b, NULL::text AS z"
          }, options: options)
        #expect(typed.result.columns.map(\.name) == ["x", "x", "big", "n", "b", "z"])
        let values = try #require(typed.result.rows.first).values
        #expect(values[0].stringValue == "1 day" && values[1].stringValue == "{1,2}" && values[2].stringValue == "9007199254740993")
        #expect(values[3].stringValue == "1.5" && values[4].boolValue && values[5].kind == .nullValue(.nullValue))
        // Caps: rows, then bytes.
        let capped = try await queries.executeQuery(
          .with { $0.databaseID = id; $0.sql = "SELECT g FROM generate_series(1, 100000) g"; $0.maxRows = 10 }, options: options)
        #expect(capped.result.rows.count == 10 && capped.result.truncated && capped.result.truncatedReason == "rows")
        let wide = try await queries.executeQuery(
          .with { $0.databaseID = id; $0.sql = "SELECT repeat(md5(g::text), 1000) FROM generate_series(1, 1000) g" }, options: options)
        #expect(wide.result.truncated && wide.result.truncatedReason == "bytes" && wide.result.rows.count < 100)
        await expectStatus(.invalidArgument, containing: "byte cap") {
          _ = try await queries.executeQuery(.with { $0.databaseID = id; $0.sql = "SELECT repeat('x', 5000000)" }, options: options)
        }
        await expectStatus(.deadlineExceeded) {
          _ = try await queries.executeQuery(
            .with { $0.databaseID = id; $0.sql = "SELECT count(*) FROM generate_series(1, 100000000)"; $0.timeoutMs = 300 }, options: options)
        }
        // History: newest first, full-text over the questions, the caller's own.
        let history = try await queries.listQueries(.with { $0.query = "employees" }, options: options)
        #expect(history.queries.first?.naturalLanguage == "How many employees are there?")
        let all = try await queries.listQueries(.with { $0.pageSize = 2 }, options: options)
        #expect(all.queries.count == 2 && !all.nextPageToken.isEmpty && all.totalSize >= 6)
        let stranger = try await service.options(for: UUID())
        #expect(try await queries.listQueries(.init(), options: stranger).queries.isEmpty)
        await expectStatus(.notFound) { _ = try await queries.getQuery(.with { $0.id = answer.query.id }, options: stranger) }
        // A recorded query runs again by id.
        let again = try await queries.executeQuery(.with { $0.databaseID = id; $0.queryID = answer.query.id }, options: options)
        #expect(again.result.rows.first?.values.first?.numberValue == 30)
      }
    }
  }

  @Test("SQLite: confined to SQL_SQLITE_DIR, read-only, authorized column by column, interrupted at the timeout")
  func sqlite() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tts-sqlite-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("shop.db").path
    let create = Process()
    create.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    create.arguments = [
      file,
      """
      CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, secret TEXT);
      CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), total REAL);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
      INSERT INTO customers SELECT i, 'c' || i, CASE i % 2 WHEN 0 THEN 'Germany' ELSE 'France' END, 's' || i FROM n;
      INSERT INTO orders SELECT id, id, id * 1.5 FROM customers;
      """,
    ]
    try create.run()
    create.waitUntilExit()
    try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("link.db").path, withDestinationPath: file)
    try await withTextToSQL(["SQL_SQLITE_DIR": directory.path]) { _, databases, queries, options in
      for (path, why) in [("../etc/passwd", ".."), ("/etc/passwd", "inside SQL_SQLITE_DIR"), ("link.db", "symlinks"), ("missing.db", "does not exist")] {
        await expectStatus(.invalidArgument, containing: why) {
          _ = try await databases.registerDatabase(
            .with { $0.database = .with { $0.name = "bad"; $0.databaseType = .sqlite; $0.connection = .with { $0.databaseName = path } } },
            options: options)
        }
      }
      let database = try await databases.registerDatabase(
        .with { $0.database = .with { $0.name = "shop"; $0.databaseType = .sqlite; $0.connection = .with { $0.databaseName = "shop.db" } } },
        options: options)
      #expect(try await databases.testConnection(.with { $0.databaseID = database.id }, options: options).serverVersion.hasPrefix("SQLite"))
      let synced = try await databases.syncSchema(.with { $0.databaseID = database.id }, options: options)
      #expect(synced.tableCount == 2)
      _ = try await databases.setColumnPolicy(
        .with { $0.databaseID = database.id; $0.policy = .with { $0.tableName = "main.customers"; $0.columnName = "secret"; $0.effect = .deny } },
        options: options)
      func run(_ sql: String, timeout: Int32 = 0) async throws -> Platform_Texttosql_V1_ExecuteQueryResponse {
        try await queries.executeQuery(.with { $0.databaseID = database.id; $0.sql = sql; $0.timeoutMs = timeout }, options: options)
      }
      let counted = try await run("SELECT country, count(*) FROM customers GROUP BY country ORDER BY country")
      #expect(counted.result.rows.map { $0.values[1].numberValue } == [25, 25])
      let joined = try await run("SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 2")
      #expect(joined.result.rows.first?.values[1].numberValue == 3)
      for sql in ["SELECT secret FROM customers", "SELECT * FROM customers", "DELETE FROM customers", "SELECT load_extension('x')",
                  "SELECT * FROM sqlite_master", "ATTACH '/tmp/x.db' AS x", "PRAGMA writable_schema = 1", "SELECT 1; DELETE FROM orders"] {
        await expectStatus(.invalidArgument) { _ = try await run(sql) }
      }
      await expectStatus(.deadlineExceeded) {
        _ = try await run("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n", timeout: 300)
      }
      #expect(try await run("SELECT count(*) FROM orders").result.rows.first?.values.first?.numberValue == 50)
    }
  }
}

/// Reads a Redis key of the test Redis (the one the services use).
enum RedisTestClient {
  static func get(_ key: String) async throws -> String? {
    let url = URL(string: PlatformTestService.redisURL)!
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
    process.arguments = ["-h", url.host ?? "127.0.0.1", "-p", String(url.port ?? 6379), "--raw", "EXISTS", key]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    process.waitUntilExit()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return output == "1" ? output : nil
  }
}
