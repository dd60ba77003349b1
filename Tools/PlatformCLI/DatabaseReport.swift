internal import ArgumentParser
internal import Foundation
internal import Logging
internal import NIOPosix
internal import NIOSSL
internal import PostgresNIO

/// `platform admin db-report`: index monitoring (seed 002 §5.3) straight from PostgreSQL's
/// statistics, per service database: indexes never scanned and tables read mostly by
/// sequential scans. The counts run from the statistics' last reset (shown).
struct DatabaseReport: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "db-report",
    abstract: "Unused indexes and sequentially scanned tables in every service database.",
    discussion: """
      Connects to each service's database: <SERVICE>_DATABASE_URL (e.g. PERSONA_DATABASE_URL), \
      else postgres://platform:$PGPASSWORD@127.0.0.1:$PGPORT/<db> (platform, 5432; agent_db, \
      persona_db, code_db, sql_db, knowledge_db, workflow_db). Unused: idx_scan = 0, not unique \
      or a primary key, largest first. Sequential: seq_scan > idx_scan and more than \
      --min-rows live rows. Exits 14 if a database could not be read.
      """)

  @OptionGroup var global: GlobalOptions
  @Argument(help: "Only these services' databases (default: all six).") var services: [ServiceName] = []
  @Option(help: "Tables with at most this many live rows are not reported as sequentially scanned.") var minRows = 1000

  struct UnusedIndex: Codable {
    var table: String
    var index: String
    var bytes: Int64
    var size: String
  }

  struct ScannedTable: Codable {
    var table: String
    var seqScans: Int64
    var indexScans: Int64
    var liveRows: Int64
    var rowsReadBySeqScans: Int64
  }

  struct Report: Codable {
    var service: String
    var database: String
    var statsReset: String?
    var unusedIndexes: [UnusedIndex] = []
    var sequentialScans: [ScannedTable] = []
    var error: String?
  }

  func run() async throws {
    var reports: [Report] = []
    for service in self.services.isEmpty ? ServiceName.allCases : self.services {
      var report = Report(service: service.rawValue, database: service.databaseName)
      do {
        let target = try Self.target(of: service)
        report.database = target.database
        try await self.read(try Self.configuration(target), into: &report)
      } catch let error as ValidationError {
        report.error = error.message
      } catch {
        report.error = "\(String(reflecting: error))".split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
      }
      reports.append(report)
    }
    if self.global.json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      for report in reports { print(String(decoding: try encoder.encode(report), as: UTF8.self)) }
    } else {
      for report in reports { Self.show(report) }
    }
    if reports.contains(where: { $0.error != nil }) { throw ExitCode(14) }
  }

  static func show(_ report: Report) {
    print("== \(report.service) (\(report.database))" + (report.statsReset.map { ", statistics since \($0)" } ?? ""))
    if let error = report.error {
      print("cannot read it: \(error)\n")
      return
    }
    if report.unusedIndexes.isEmpty {
      print("unused indexes: none")
    } else {
      print("unused indexes (never scanned):")
      var table = Table("TABLE", "INDEX", "SIZE")
      for index in report.unusedIndexes { table.append(index.table, index.index, index.size) }
      table.print()
    }
    if report.sequentialScans.isEmpty {
      print("tables read mostly by sequential scans: none")
    } else {
      print("tables read mostly by sequential scans:")
      var table = Table("TABLE", "SEQ SCANS", "INDEX SCANS", "LIVE ROWS", "ROWS READ BY SEQ SCANS")
      for scanned in report.sequentialScans {
        table.append(scanned.table, "\(scanned.seqScans)", "\(scanned.indexScans)", "\(scanned.liveRows)", "\(scanned.rowsReadBySeqScans)")
      }
      table.print()
    }
    print("")
  }

  /// `<SERVICE>_DATABASE_URL`, else the local PostgreSQL as `scripts/local-services.sh` runs it.
  static func target(of service: ServiceName) throws -> PostgresTarget {
    let environment = ProcessInfo.processInfo.environment
    if let url = environment["\(service.environmentPrefix)_DATABASE_URL"], !url.isEmpty {
      return try PostgresTarget(url: url)
    }
    return PostgresTarget(
      host: "127.0.0.1", port: environment["PGPORT"].flatMap { Int($0) } ?? 5432, username: "platform",
      password: environment["PGPASSWORD"] ?? "platform", database: service.databaseName)
  }

  func read(_ configuration: PostgresConnection.Configuration, into report: inout Report) async throws {
    var logger = Logger(label: "platform.db-report")
    logger.logLevel = .critical
    let connection = try await PostgresConnection.connect(
      on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration, id: 1, logger: logger)
    do {
      let reset = try await connection.query(
        "SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()", logger: logger)
      for try await (value) in reset.decode(String?.self) { report.statsReset = value }

      let indexes = try await connection.query(
        """
        SELECT s.schemaname || '.' || s.relname, s.indexrelname::text, pg_relation_size(s.indexrelid),
               pg_size_pretty(pg_relation_size(s.indexrelid))
        FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
        WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
        ORDER BY pg_relation_size(s.indexrelid) DESC, 1, 2
        """, logger: logger)
      for try await (table, index, bytes, size) in indexes.decode((String, String, Int64, String).self) {
        report.unusedIndexes.append(UnusedIndex(table: table, index: index, bytes: bytes, size: size))
      }

      let minRows = Int64(self.minRows)
      let tables = try await connection.query(
        """
        SELECT schemaname || '.' || relname, seq_scan, coalesce(idx_scan, 0), n_live_tup, seq_tup_read
        FROM pg_stat_user_tables
        WHERE seq_scan > coalesce(idx_scan, 0) AND n_live_tup > \(minRows)
        ORDER BY seq_tup_read DESC, 1
        """, logger: logger)
      for try await (table, seqScans, indexScans, rows, read) in tables.decode((String, Int64, Int64, Int64, Int64).self) {
        report.sequentialScans.append(
          ScannedTable(table: table, seqScans: seqScans, indexScans: indexScans, liveRows: rows, rowsReadBySeqScans: read))
      }
    } catch {
      try? await connection.close()
      throw error
    }
    try? await connection.close()
  }

  /// The connection configuration of a target; sslmode disable when it does not say.
  static func configuration(_ target: PostgresTarget) throws -> PostgresConnection.Configuration {
    let tls: PostgresConnection.Configuration.TLS
    switch target.sslMode ?? .disable {
    case .disable: tls = .disable
    case .require:
      var configuration = TLSConfiguration.makeClientConfiguration()
      configuration.certificateVerification = .none
      tls = .require(try NIOSSLContext(configuration: configuration))
    case .verifyFull: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
    }
    var configuration = PostgresConnection.Configuration(
      host: target.host, port: target.port, username: target.username.isEmpty ? "platform" : target.username,
      password: target.password, database: target.database, tls: tls)
    configuration.options.connectTimeout = .seconds(5)
    return configuration
  }
}
