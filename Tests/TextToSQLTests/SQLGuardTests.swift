import Foundation
import Testing
@testable import TextToSQL

/// The corpus in Tests/Data/sql-guard (from ../shared/testdata/sql-guard): a hostile and a benign
/// set of statements against the schema in schema.sql.
enum Corpus {
  struct Case: Sendable {
    var id: String
    var category: String
    var layer: String
    var sql: String?
  }

  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Data/sql-guard")

  static func load(_ name: String) throws -> [Case] {
    let text = try String(contentsOf: Self.directory.appendingPathComponent(name), encoding: .utf8)
    return try text.split(separator: "\n").map { line in
      let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
      var sql = object["sql"] as? String
      if sql == nil, let parts = object["sql_gen"] as? [[Any]] {
        sql = parts.map { String(repeating: $0[0] as! String, count: $0[1] as! Int) }.joined()
      }
      if sql == nil, let encoded = object["sql_b64"] as? String, let bytes = Data(base64Encoded: encoded) {
        // Not UTF-8: a protobuf string field cannot carry it, so the request is refused before
        // the guard (INVALID_ARGUMENT); valid UTF-8 goes through the guard.
        sql = String(validating: bytes, as: UTF8.self)
        if sql == nil { return Case(id: object["id"] as! String, category: "", layer: "transport", sql: nil) }
      }
      return Case(
        id: object["id"] as! String, category: object["category"] as! String, layer: object["layer"] as? String ?? "", sql: sql)
    }
  }
}

/// The corpus schema's column names, read from schema.sql by the same parser.
func corpusColumns() throws -> [String: Set<String>] {
  let ddl = try String(contentsOf: Corpus.directory.appendingPathComponent("schema.sql"), encoding: .utf8)
  return try SQLGuard.columns(inDDL: ddl)
}

@Suite("SQL guard: parser, functions, relations")
struct SQLGuardTests {
  let guardian = SQLGuard(columns: try? corpusColumns())

  @Test("Every hostile statement a parse tree can show is refused, by the layer the corpus names or an earlier one")
  func hostile() throws {
    let cases = try Corpus.load("hostile.jsonl")
    #expect(cases.count == 372)
    var refused = 0, passed: [String] = [], left: [String] = []
    for item in cases {
      guard let sql = item.sql else {
        refused += 1  // not UTF-8: refused with the request
        continue
      }
      switch self.guardian.check(sql) {
      case .failure: refused += 1
      case .success:
        // Execution's layers (a read-only transaction, the timeout, the row cap) contain these.
        if !["readonly-txn", "timeout", "row-cap"].contains(item.layer) { passed.append("\(item.id) \(item.layer): \(sql.prefix(120))") }
        left.append("\(item.id) \(item.layer): \(sql.prefix(100))")
      }
    }
    #expect(passed.isEmpty, "\(passed.count) passed the guard:\n\(passed.joined(separator: "\n"))")
    print("SQL guard: hostile \(refused) of \(cases.count) refused before execution; left to execution's layers:\n" + left.joined(separator: "\n"))
  }

  @Test("At most 2% of the benign statements are refused")
  func benign() throws {
    let cases = try Corpus.load("benign.jsonl")
    var refused: [String] = []
    for item in cases {
      if case .failure(let refusal) = self.guardian.check(item.sql ?? "") { refused.append("\(item.id): \(refusal)  \(item.sql ?? "")") }
    }
    #expect(Double(refused.count) <= Double(cases.count) * 0.02, "\(refused.count) of \(cases.count) refused:\n\(refused.joined(separator: "\n"))")
    print("SQL guard: benign \(refused.count) of \(cases.count) refused")
  }

  @Test("Each layer alone: the statement, the function allowlist, the relations")
  func layers() {
    func layer(_ sql: String) -> String? {
      if case .failure(let refusal) = self.guardian.check(sql) { return refusal.layer }
      return nil
    }
    #expect(layer("SELECT 1") == nil)
    #expect(layer("") == "parser" && layer("-- only a comment") == "parser" && layer("SELECT 1\0; DROP TABLE x") == "parser")
    #expect(layer("SELECT 1; SELECT 2") == "parser" && layer("SELECT * INTO t FROM orders") == "parser")
    #expect(layer("SELECT * FROM orders FOR UPDATE") == "parser" && layer("WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x") == "parser")
    #expect(layer(String(repeating: "SELECT * FROM (", count: 1000) + "SELECT 1" + String(repeating: ") s", count: 1000)) == "parser")
    #expect(layer("SELECT pg_sleep(10)") == "functions" && layer("SELECT PG_CATALOG.\"pg_sleep\"(1)") == "functions")
    #expect(layer("SELECT U&\"\\0070g_sleep\"(1)") == "functions" && layer("SELECT (1).pg_sleep") == "functions")
    #expect(layer("SELECT public.my_function()") == "functions" && layer("SELECT 'x'::regclass") == "functions")
    #expect(layer("SELECT 1 OPERATOR(public.+) 2") == "functions")
    #expect(layer("SELECT lower(name), count(*) FROM customers GROUP BY 1") == nil)
    #expect(layer("SELECT * FROM pg_catalog.pg_roles") == "relations" && layer("SELECT * FROM pg_stat_activity") == "relations")
    #expect(layer("SELECT * FROM information_schema.user_mapping_options") == "relations")
    #expect(layer("SELECT table_name FROM information_schema.tables") == nil)
    // Functional notation: t.pg_sleep is pg_sleep(t) when t has no column pg_sleep.
    #expect(layer("SELECT t.pg_sleep FROM (SELECT 1.0::float8) AS t(x)") == "functions")
    #expect(layer("SELECT t.x FROM (SELECT 1.0::float8) AS t(x)") == nil && layer("SELECT o.customer_id FROM orders o") == nil)
    // A name defined elsewhere in the query does not make it t's column.
    #expect(layer("SELECT t.pg_sleep, (SELECT 1 AS pg_sleep) FROM (SELECT 1.0::float8) AS t(x)") == "functions")
    #expect(layer("SELECT o.pg_sleep FROM orders o") == "functions" && layer("SELECT orders.id FROM orders") == nil)
    #expect(layer("WITH w AS (SELECT id AS n FROM orders) SELECT w.n FROM w") == nil && layer("WITH w AS (SELECT 1 AS n) SELECT w.m FROM w") == "functions")
    let narrowed = SQLGuard(relations: ["orders", "public.orders"])
    #expect(throws: Never.self) { try narrowed.check("SELECT id FROM orders").get() }
    #expect(throws: SQLGuard.Refusal.relation("customers")) { try narrowed.check("SELECT id FROM customers").get() }
    #expect(throws: Never.self) { try narrowed.check("WITH customers AS (SELECT 1 AS id) SELECT id FROM customers").get() }
  }
}
