import Foundation
import Logging
import PlatformCore
import PlatformTesting
import PostgresNIO
import Testing

@Suite("Monthly partitions")
struct MonthlyPartitionsTests {
  static let logger = TestPostgres.quietLogger

  static func date(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    return formatter.date(from: text)!
  }

  @Test("Month arithmetic crosses years; a month is read in UTC")
  func months() {
    typealias Month = MonthlyPartitions.Month
    #expect(Month(year: 2026, month: 12).adding(1) == Month(year: 2027, month: 1))
    #expect(Month(year: 2027, month: 1).adding(-1) == Month(year: 2026, month: 12))
    #expect(Month(year: 2026, month: 3).adding(-27) == Month(year: 2023, month: 12))
    #expect(Month(containing: Self.date("2026-12-31T23:30:00-02:00")) == Month(year: 2027, month: 1))
    #expect(Month(year: 2027, month: 1).description == "2027_01")
  }

  @Test("Creates this month's and the coming months' partitions, rows land in theirs, old ones are dropped, replicas take turns; names are checked")
  func maintain() async throws {
    try await TestPostgres.withTemporaryDatabase { configuration in
      try await TestPostgres.withClient(configuration) { client in
        let database = Database(client: client)
        try await database.query(
          """
          CREATE TABLE things (id BIGSERIAL, created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id, created_at))
          PARTITION BY RANGE (created_at)
          """, logger: Self.logger)
        let keeper = try MonthlyPartitions(table: "things", monthsAhead: 2, retentionMonths: 3, database: database, logger: Self.logger)
        let first = try await keeper.maintain(now: Self.date("2026-12-15T12:00:00Z"))
        #expect(first.created == ["things_2026_12", "things_2027_01", "things_2027_02"] && first.dropped.isEmpty)
        #expect(try await keeper.maintain(now: Self.date("2026-12-20T00:00:00Z")) == ([], []))

        // The boundary is midnight UTC on the first (the last row is 23:59:59 UTC on 28 February).
        try await database.query(
          """
          INSERT INTO things (created_at) VALUES ('2026-12-31 23:59:59.999999+00'), ('2027-01-01 00:00:00+00'), ('2027-02-28 18:59:59-05')
          """, logger: Self.logger)
        var placed: [String] = []
        for row in try await database.query("SELECT tableoid::regclass::text FROM things ORDER BY created_at", logger: Self.logger) {
          placed.append(try row.decode(String.self))
        }
        #expect(placed == ["things_2026_12", "things_2027_01", "things_2027_02"])
        // A month without its partition refuses rows (there is no default partition to fill).
        await #expect(throws: (any Error).self) {
          try await database.query("INSERT INTO things (created_at) VALUES ('2027-03-01 00:00:00+00')", logger: Self.logger)
        }

        // Months later: three months kept before the current one, the rest dropped with their rows.
        let later = try await keeper.maintain(now: Self.date("2027-05-10T00:00:00Z"))
        #expect(later.created == ["things_2027_05", "things_2027_06", "things_2027_07"])
        #expect(later.dropped == ["things_2026_12", "things_2027_01"])
        #expect(try await keeper.partitions() == ["things_2027_02", "things_2027_05", "things_2027_06", "things_2027_07"])

        // Two replicas at once: one creates, the other finds them made.
        let racing = try MonthlyPartitions(table: "things", monthsAhead: 4, retentionMonths: nil, database: database, logger: Self.logger)
        async let a = racing.maintain(now: Self.date("2027-05-10T00:00:00Z"))
        async let b = racing.maintain(now: Self.date("2027-05-10T00:00:00Z"))
        let (ra, rb) = try await (a, b)
        #expect((ra.created + rb.created).sorted() == ["things_2027_08", "things_2027_09"])

        // A bounded time range reads one partition.
        var plan = ""
        for row in try await database.query(
          "EXPLAIN SELECT * FROM things WHERE created_at >= '2027-06-03' AND created_at < '2027-06-09'", logger: Self.logger)
        {
          plan += try row.decode(String.self) + "\n"
        }
        #expect(plan.contains("things_2027_06") && !plan.contains("things_2027_05") && !plan.contains("things_2027_07"), "\(plan)")

        for name in ["things; DROP TABLE things", "Things", "1things", ""] {
          #expect(throws: MonthlyPartitions.InvalidTable.self) {
            _ = try MonthlyPartitions(table: name, retentionMonths: 1, database: database, logger: Self.logger)
          }
        }
      }
    }
  }
}
