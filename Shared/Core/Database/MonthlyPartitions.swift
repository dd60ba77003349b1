public import Foundation
public import Logging
internal import PostgresNIO

/// Keeps a table that is partitioned by month (`PARTITION BY RANGE` on a timestamptz column)
/// ready for its rows: the current month's and the coming months' partitions exist ahead of
/// time, and partitions older than the retention are dropped (seed 002 §6.2, without pg_cron).
///
/// Partitions are named `<table>_YYYY_MM` and bounded at midnight UTC on the first of the month.
/// A service calls `maintain` at start-up (before its first insert) and lets `run` repeat it;
/// replicas doing the same at once take turns on an advisory lock.
public struct MonthlyPartitions: Sendable {
  public let table: String
  /// Months after the current one that must exist.
  public let monthsAhead: Int
  /// Whole months kept before the current one; nil keeps everything.
  public let retentionMonths: Int?
  private let database: Database
  private let logger: Logger

  public struct InvalidTable: Error, CustomStringConvertible {
    public var description: String
  }

  public init(table: String, monthsAhead: Int = 2, retentionMonths: Int?, database: Database, logger: Logger) throws {
    guard table.utf8.count <= 50, let first = table.utf8.first, (0x61...0x7A).contains(first),
      table.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F })
    else { throw InvalidTable(description: "\(table) is not a plain lowercase table name") }
    self.table = table
    self.monthsAhead = max(0, monthsAhead)
    self.retentionMonths = retentionMonths.map { max(0, $0) }
    self.database = database
    self.logger = logger
  }

  /// A month as the partition naming counts it.
  public struct Month: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var year: Int
    /// 1–12.
    public var month: Int

    public init(year: Int, month: Int) {
      self.year = year
      self.month = month
    }

    /// The UTC month holding `date`.
    public init(containing date: Date) {
      let parts = Self.calendar.dateComponents([.year, .month], from: date)
      self.init(year: parts.year ?? 1970, month: parts.month ?? 1)
    }

    static let calendar: Calendar = {
      var calendar = Calendar(identifier: .gregorian)
      calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
      return calendar
    }()

    public func adding(_ months: Int) -> Month {
      let index = self.year * 12 + (self.month - 1) + months
      return Month(year: index / 12, month: index % 12 + 1)
    }

    /// Midnight UTC on its first day, as PostgreSQL reads it.
    var start: String {
      "\(String(format: "%04d-%02d", self.year, self.month))-01 00:00:00+00"
    }

    public var description: String { String(format: "%04d_%02d", self.year, self.month) }

    public static func < (lhs: Month, rhs: Month) -> Bool { (lhs.year, lhs.month) < (rhs.year, rhs.month) }
  }

  public func partitionName(_ month: Month) -> String { "\(self.table)_\(month)" }

  /// Creates what is missing from the current month to `monthsAhead` and drops what is past
  /// the retention, as of `now`.
  /// - Returns: the partitions created and dropped.
  @discardableResult
  public func maintain(now: Date = Date()) async throws -> (created: [String], dropped: [String]) {
    let current = Month(containing: now)
    return try await self.database.withTransaction(logger: self.logger) { connection in
      try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\("monthly_partitions:" + self.table)))", logger: self.logger)
      let existing = Set(try await self.partitions(connection))
      var created: [String] = []
      for offset in 0...self.monthsAhead {
        let month = current.adding(offset)
        let name = self.partitionName(month)
        guard !existing.contains(name) else { continue }
        try await connection.query(
          PostgresQuery(
            unsafeSQL: """
              CREATE TABLE IF NOT EXISTS \(name) PARTITION OF \(self.table)
              FOR VALUES FROM ('\(month.start)') TO ('\(month.adding(1).start)')
              """), logger: self.logger)
        created.append(name)
      }
      var dropped: [String] = []
      if let retention = self.retentionMonths {
        let oldestKept = current.adding(-retention)
        for name in existing.sorted() {
          guard let month = self.month(ofPartition: name), month < oldestKept else { continue }
          try await connection.query(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(name)"), logger: self.logger)
          dropped.append(name)
        }
      }
      if !created.isEmpty || !dropped.isEmpty {
        self.logger.info(
          "Partitions maintained",
          metadata: ["table": "\(self.table)", "created": "\(created.joined(separator: ","))", "dropped": "\(dropped.joined(separator: ","))"])
      }
      return (created, dropped)
    }
  }

  /// The names of the table's partitions.
  public func partitions() async throws -> [String] {
    try await self.database.withConnection(logger: self.logger) { try await self.partitions($0) }
  }

  private func partitions(_ connection: DatabaseConnection) async throws -> [String] {
    try await connection.query(
      """
      SELECT child.relname::text FROM pg_inherits
      JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
      JOIN pg_class child ON child.oid = pg_inherits.inhrelid
      WHERE parent.relname = \(self.table) AND parent.relnamespace = to_regnamespace(current_schema())
      ORDER BY 1
      """, logger: self.logger
    ).map { try $0.decode(String.self) }
  }

  /// The month a partition named by this keeper holds; nil for any other name.
  func month(ofPartition name: String) -> Month? {
    let prefix = self.table + "_"
    guard name.hasPrefix(prefix) else { return nil }
    let suffix = name.dropFirst(prefix.count).split(separator: "_")
    guard suffix.count == 2, suffix[0].count == 4, suffix[1].count == 2, let year = Int(suffix[0]), let month = Int(suffix[1]),
      (1...12).contains(month)
    else { return nil }
    return Month(year: year, month: month)
  }

  /// Maintains the partitions now and then every `interval` until the task is cancelled; a
  /// failed round is logged and retried at the next.
  public func run(every interval: Duration = .seconds(6 * 3600)) async {
    await Periodic.run(every: interval, logger: self.logger, failure: "Partition maintenance failed", metadata: ["table": "\(self.table)"]) {
      try await self.maintain()
    }
  }
}
