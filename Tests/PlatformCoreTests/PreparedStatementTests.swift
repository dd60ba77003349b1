import Foundation
import InMemoryTracing
import Logging
import PlatformCore
import PlatformTesting
import PostgresNIO
import Testing
import Tracing

/// `$1` divided by `$2`, and `$1` as text: decoded into a row of the statement's own type.
private struct Quotient: PostgresPreparedStatement {
  static let bindingDataTypes: [PostgresDataType] = [.int8, .int8]
  static let sql = "SELECT $1 / $2, $1::text"
  var dividend: Int
  var divisor: Int

  func makeBindings() throws -> PostgresBindings {
    var bindings = PostgresBindings(capacity: 2)
    bindings.append(self.dividend)
    bindings.append(self.divisor)
    return bindings
  }

  func decodeRow(_ row: PostgresRow) throws -> (quotient: Int, text: String) {
    let (quotient, text) = try row.decode((Int, String).self)
    return (quotient, text)
  }
}

@Suite("Prepared statements")
struct PreparedStatementTests {
  @Test("run again and again on one connection with new values; each run a span without its values; a failure keeps its SQLSTATE")
  func preparedStatements() async throws {
    let tracer = InMemoryTracer()
    try await TestPostgres.withTemporaryDatabase { configuration in
      var single = configuration
      single.poolSize = 1
      try await TestPostgres.withClient(single) { client in
        let database = Database(client: client, configuration: single, tracing: PlatformTracing(tracer: tracer))
        for (dividend, divisor) in [(84, 2), (9_000_000_001, 3), (-7, 7)] {
          let rows = try await database.execute(Quotient(dividend: dividend, divisor: divisor), logger: TestPostgres.quietLogger)
          #expect(rows.count == 1 && rows[0].quotient == dividend / divisor && rows[0].text == String(dividend))
        }
        await #expect(throws: PSQLError.self) {
          try await database.execute(Quotient(dividend: 1, divisor: 0), logger: TestPostgres.quietLogger)
        }
        // The connection is still good after the failure, with the statement still prepared.
        #expect(try await database.execute(Quotient(dividend: 6, divisor: 3), logger: TestPostgres.quietLogger).first?.quotient == 2)
        // One parse on the one connection: PostgreSQL lists it once.
        let prepared = try await database.withConnection(logger: TestPostgres.quietLogger) { connection in
          try await connection.query("SELECT count(*) FROM pg_prepared_statements WHERE statement = \(Quotient.sql)", logger: TestPostgres.quietLogger)
        }
        #expect(try prepared.first?.decode(Int.self) == 1)
      }
    }
    let spans = tracer.finishedSpans.filter { $0.attributes["db.query.text"]?.toSpanAttribute() == .string(Quotient.sql) }
    #expect(spans.count == 5)
    #expect(spans.allSatisfy { $0.operationName == "SELECT" && $0.kind == .client })
    let failed = spans.filter { $0.status?.code == .error }
    #expect(failed.count == 1 && failed.first?.attributes["db.response.status_code"]?.toSpanAttribute() == .string("22012"))
    #expect(!spans.map { "\($0.attributes)" }.joined().contains("9000000001"))
  }
}
