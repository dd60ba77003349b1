// The text-to-SQL service's speed (scripts/benchmark-text-to-sql.sh):
//   1. the guard's parse + check over the benign corpus, per statement (µs);
//   2. ExecuteQuery end to end (gRPC → guard → read-only transaction → rows) against the same
//      statement run directly with postgres-nio on its own connection, paired per run (ms);
//   3. AskQuestion with the offline generator (ms).
// The service runs in this process on a loopback port against scratch databases on the
// PostgreSQL of --admin-url; the target is the corpus schema, owned by a scratch role.
import ArgumentParser
import Foundation
import GRPCRuntime
import Logging
import NIOPosix
import PlatformCore
import PlatformProtos
import PostgresNIO
import PlatformRedis
import SwiftProtobuf
import TextToSQL

@main
struct TextToSQLBenchmark: AsyncParsableCommand {
  @Option(help: "A superuser URL of the PostgreSQL server to make scratch databases on.")
  var adminURL = "postgres://platform:platform@127.0.0.1:5432/postgres"
  @Option(help: "Redis for the service.")
  var redisURL = "redis://127.0.0.1:6379"
  @Option(help: "The corpus directory (benign.jsonl, schema.sql).")
  var corpus = "Tests/Data/sql-guard"
  @Option(help: "Runs of each statement.")
  var iterations = 20

  func run() async throws {
    var logger = Logger(label: "text-to-sql-bench")
    logger.logLevel = .warning
    let directory = URL(fileURLWithPath: self.corpus)
    let benign = try String(contentsOf: directory.appendingPathComponent("benign.jsonl"), encoding: .utf8).split(separator: "\n").map {
      (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["sql"] as! String
    }
    let schema = try String(contentsOf: directory.appendingPathComponent("schema.sql"), encoding: .utf8)

    // 1. The guard alone, with the corpus schema's relations and columns.
    let columns = try SQLGuard.columns(inDDL: schema)
    let sqlGuard = SQLGuard(relations: Set(columns.keys), columns: columns)
    for sql in benign { _ = sqlGuard.check(sql) }
    var guardTimes: [Double] = []
    for _ in 0..<self.iterations {
      for sql in benign {
        let started = ContinuousClock.now
        _ = sqlGuard.check(sql)
        guardTimes.append(Self.microseconds(ContinuousClock.now - started))
      }
    }

    // 2 and 3 against a scratch target and the service.
    let admin = try DatabaseConfiguration(url: self.adminURL, poolSize: 2)
    let suffix = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(10)
    let target = "tts_bench_\(suffix)", role = "tts_bench_\(suffix)", service = "tts_bench_service_\(suffix)"
    try await Self.adminRun(admin, [
      "CREATE ROLE \(role) LOGIN PASSWORD 'bench'", "CREATE DATABASE \(target) OWNER \(role)", "CREATE DATABASE \(service)",
    ], logger: logger)
    do {
      var targetAdmin = admin
      targetAdmin.database = target
      try await Self.adminRun(targetAdmin, ["GRANT ALL ON SCHEMA public TO \(role)", "SET ROLE \(role)"] + (SQLGuard.statements(of: schema) ?? []), logger: logger)
      try await self.measureService(admin: admin, target: target, role: role, service: service, benign: benign, guardTimes: guardTimes, logger: logger)
    } catch {
      try? await Self.adminRun(admin, ["DROP DATABASE IF EXISTS \(target) WITH (FORCE)", "DROP DATABASE IF EXISTS \(service) WITH (FORCE)", "DROP ROLE IF EXISTS \(role)"], logger: logger)
      throw error
    }
    try await Self.adminRun(admin, ["DROP DATABASE IF EXISTS \(target) WITH (FORCE)", "DROP DATABASE IF EXISTS \(service) WITH (FORCE)", "DROP ROLE IF EXISTS \(role)"], logger: logger)
  }

  func measureService(
    admin: DatabaseConfiguration, target: String, role: String, service: String, benign: [String], guardTimes: [Double], logger: Logger
  ) async throws {
    var configuration = ServiceConfiguration.defaults(for: .textToSQL)
    configuration.host = "127.0.0.1"
    configuration.port = 0
    configuration.adminPort = 0
    configuration.database = admin
    configuration.database.database = service
    configuration.redis = try RedisConfiguration(url: self.redisURL)
    configuration.auth = AuthConfiguration(signingKey: .generate(id: "bench"))
    configuration.logLevel = .warning
    configuration.environment = Environment([
      "SQL_ENCRYPTION_KEY": "bench:" + Data(repeating: 9, count: 32).base64EncodedString(), "SQL_ALLOWED_HOSTS": "127.0.0.0/8",
    ])
    let server = PlatformServer(definition: TextToSQLService(), configuration: configuration, logger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.run() }
      defer { group.cancelAll() }
      let port = try await server.listeningPort
      let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(port)"]))
      let token = try await TokenIssuer(configuration: configuration.auth).issue(userID: UUID(), roles: [.developer], lifetime: .seconds(3600))
      var metadata = Metadata()
      metadata.addString("Bearer \(token)", forKey: "authorization")
      let options = CallOptions(timeout: .seconds(60), metadata: metadata)
      let databases = Platform_Texttosql_V1_DatabaseServiceClient(channel: client)
      let queries = Platform_Texttosql_V1_QueryServiceClient(channel: client)
      let database = try await databases.registerDatabase(
        .with {
          $0.database = .with {
            $0.name = "bench"
            $0.databaseType = .postgresql
            $0.connection = .with {
              $0.host = "127.0.0.1"; $0.port = Int32(admin.port); $0.databaseName = target; $0.username = role; $0.password = "bench"
              $0.sslMode = .disable
            }
          }
        }, options: options)
      _ = try await databases.syncSchema(.with { $0.databaseID = database.id }, options: options)

      let connection = try await PostgresConnection.connect(
        on: MultiThreadedEventLoopGroup.singleton.any(),
        configuration: .init(host: "127.0.0.1", port: admin.port, username: role, password: "bench", database: target, tls: .disable),
        id: 1, logger: logger)
      defer { Task { try? await connection.close() } }

      // Warm both paths once per statement.
      for sql in benign {
        _ = try await queries.executeQuery(.with { $0.databaseID = database.id; $0.sql = sql }, options: options)
        _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
      }
      var service: [Double] = [], plain: [Double] = [], overhead: [Double] = []
      for _ in 0..<self.iterations {
        for sql in benign {
          var started = ContinuousClock.now
          _ = try await queries.executeQuery(.with { $0.databaseID = database.id; $0.sql = sql }, options: options)
          let viaService = Self.milliseconds(ContinuousClock.now - started)
          started = ContinuousClock.now
          _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
          let viaDirect = Self.milliseconds(ContinuousClock.now - started)
          service.append(viaService)
          plain.append(viaDirect)
          overhead.append(viaService - viaDirect)
        }
      }
      let questions = [
        "How many employees are there?", "list the departments", "average salary per department", "top 5 products by price",
        "number of orders per status", "how many customers are in Germany", "orders in 2024", "the 10 highest paid employees",
      ]
      var asked: [Double] = []
      for _ in 0..<self.iterations {
        for question in questions {
          let started = ContinuousClock.now
          _ = try await queries.askQuestion(.with { $0.databaseID = database.id; $0.question = question }, options: options)
          asked.append(Self.milliseconds(ContinuousClock.now - started))
        }
      }
      await client.close()
      func row(_ name: String, _ values: [Double], _ unit: String) -> String {
        let sorted = values.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1)] }
        return String(format: "| %@ | %d | %.2f %@ | %.2f %@ | %.2f %@ |", name, values.count, percentile(0.5), unit, percentile(0.99), unit, sorted.last ?? 0, unit)
      }
      print("| measure | samples | p50 | p99 | max |")
      print("|---|---|---|---|---|")
      print(row("guard parse + check (benign corpus)", guardTimes, "µs"))
      print(row("ExecuteQuery over gRPC", service, "ms"))
      print(row("the same SQL with postgres-nio directly", plain, "ms"))
      print(row("overhead (paired: ExecuteQuery − direct)", overhead, "ms"))
      print(row("AskQuestion, offline generator", asked, "ms"))
    }
  }

  static func adminRun(_ configuration: DatabaseConfiguration, _ statements: [String], logger: Logger) async throws {
    let connection = try await PostgresConnection.connect(
      on: MultiThreadedEventLoopGroup.singleton.any(),
      configuration: .init(
        host: configuration.host, port: configuration.port, username: configuration.username, password: configuration.password,
        database: configuration.database, tls: .disable),
      id: 1, logger: logger)
    for statement in statements { _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect() }
    try await connection.close()
  }

  static func microseconds(_ duration: Duration) -> Double { Double(duration.wholeNanoseconds) / 1000 }
  static func milliseconds(_ duration: Duration) -> Double { Double(duration.wholeNanoseconds) / 1_000_000 }
}
