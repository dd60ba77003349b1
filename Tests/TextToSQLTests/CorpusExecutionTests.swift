import Foundation
import GRPCRuntime
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing
@testable import TextToSQL

/// The whole guard, all five layers, through the service over gRPC against a real PostgreSQL
/// database loaded from the corpus schema, registered with the role that owns every table (the
/// worst case: a read-only transaction alone lets an owner LOCK, CLUSTER, REINDEX).
@Suite("Text-to-SQL: the corpus against a real database")
struct CorpusExecutionTests {
  /// What the corpus's statements could change, as one text: every table's contents, the
  /// large object, advisory locks held, and the target role's sessions left in a transaction.
  static func fingerprint(_ target: TargetServer) async throws -> [String] {
    let tables = ["departments", "employees", "categories", "products", "customers", "orders", "order_items", "update_log", "events"]
    var parts: [String] = []
    for table in tables {
      parts += try await target.adminRows("SELECT '\(table) ' || count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM \(table) t")
    }
    parts += try await target.adminRows("SELECT 'large objects ' || count(*) FROM pg_largeobject_metadata")
    parts += try await target.adminRows("SELECT 'advisory locks ' || count(*) FROM pg_locks WHERE locktype = 'advisory'")
    parts += try await target.adminRows(
      "SELECT 'sessions in a transaction ' || count(*) FROM pg_stat_activity WHERE usename = '\(target.role)' AND state LIKE 'idle in transaction%'")
    parts += try await target.adminRows("SELECT 'prepared transactions ' || count(*) FROM pg_prepared_xacts")
    parts += try await target.adminRows("SELECT 'role settings ' || count(*) FROM pg_db_role_setting")
    return parts
  }

  @Test("Every hostile statement is refused or contained with no effect; at most 2% of the benign ones are refused, and those allowed run")
  func corpus() async throws {
    let schema = try String(contentsOf: Corpus.directory.appendingPathComponent("schema.sql"), encoding: .utf8)
    let hostile = try Corpus.load("hostile.jsonl")
    let benign = try Corpus.load("benign.jsonl")
    try await TargetServer.with(setup: schema) { target in
      try await withTextToSQL { _, databases, queries, options in
        let id = try await registerAndSync(target, databases, options)
        let before = try await Self.fingerprint(target)
        var ran: [String] = []
        var refusedAt: [String: Int] = [:]
        for item in hostile {
          guard let sql = item.sql else { continue }
          do {
            let response = try await queries.executeQuery(
              .with {
                $0.databaseID = id
                $0.sql = sql
                $0.timeoutMs = 1000
                $0.maxRows = 100
              }, options: CallOptions(timeout: .seconds(30), metadata: options.metadata))
            ran.append("\(item.id) (\(item.layer)): \(response.result.rows.count) rows, truncated \(response.result.truncated)")
            #expect(response.result.rows.count <= 100, "\(item.id)")
          } catch let error as RPCError {
            refusedAt[String(describing: error.code), default: 0] += 1
            // A refusal is the caller's fault or a limit, never the service's own failure.
            #expect([.invalidArgument, .deadlineExceeded, .resourceExhausted].contains(error.code), "\(item.id): \(error.code) \(error.message)")
            // Never the SQL text, the host or the password in a refusal.
            #expect(!error.message.contains(target.password) && !error.message.contains("127.0.0.1"), "\(item.id): \(error.message)")
          }
        }
        let after = try await Self.fingerprint(target)
        #expect(before == after, "the hostile corpus changed something: \(zip(before, after).filter { $0 != $1 })")
        // What was allowed to run is what the corpus says only execution contains.
        for line in ran { #expect(!line.contains("(parser)") && !line.contains("(function-denylist)") && !line.contains("(catalog-denylist)"), "\(line)") }
        print("hostile: \(hostile.count - ran.count) of \(hostile.count) refused (\(refusedAt)); contained when run: \(ran)")

        var refused: [String] = []
        for item in benign {
          guard let sql = item.sql else { continue }
          do {
            let response = try await queries.executeQuery(.with { $0.databaseID = id; $0.sql = sql }, options: options)
            #expect(!response.result.rows.isEmpty, "\(item.id) returned no rows")
          } catch let error as RPCError {
            refused.append("\(item.id): \(error.message)")
          }
        }
        print("benign: \(refused.count) of \(benign.count) refused: \(refused)")
        #expect(Double(refused.count) <= 0.02 * Double(benign.count), "\(refused)")
      }
    }
  }
}
