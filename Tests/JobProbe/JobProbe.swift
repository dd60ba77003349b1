import ArgumentParser
import Foundation
import Logging
import PlatformCore
import PostgresNIO
import ServiceLifecycle
import UnixSignals

/// A job worker process for tests and the jobs benchmark: applies the core migrations, then runs
/// a `JobWorker` until SIGTERM (graceful: running jobs finish within the grace period) or
/// SIGKILL (a crash: its leases run out).
///
/// Its handlers: `record` inserts a row into `job_runs` (job, worker, start), sleeps the
/// payload's `ms`, then sets the row's end; `noop` does nothing.
@main
struct JobProbe: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "job-probe")

  @Option(help: "postgres:// URL of the database") var databaseURL: String
  @Option(help: "the worker's id") var worker = JobWorkerConfiguration.defaultWorkerID()
  @Option(help: "lease in milliseconds") var leaseMs = 30_000
  @Option(help: "jobs of each type run at once") var concurrency = 4
  @Option(help: "shutdown grace period in milliseconds") var graceMs = 10_000
  @Option(help: "connections in the worker's pool") var poolSize = 4

  func run() async throws {
    var logger = Logger(label: "job-probe")
    logger.logLevel = .warning
    let database = PostgresClient(
      configuration: try DatabaseConfiguration(url: self.databaseURL, poolSize: self.poolSize), logger: logger)
    var configuration = JobWorkerConfiguration(workerID: self.worker)
    configuration.lease = .milliseconds(self.leaseMs)
    configuration.renewInterval = .milliseconds(min(1000, self.leaseMs / 3))
    configuration.pollInterval = .milliseconds(min(1000, self.leaseMs / 2))
    configuration.shutdownGracePeriod = .milliseconds(self.graceMs)
    let worker = self.worker
    let record = JobHandler(type: "record", concurrency: self.concurrency, retryBackoff: (.milliseconds(100), .seconds(1))) {
      job, logger in
      var milliseconds = 0.0
      if case .number(let value)? = (try? JSONValue(jsonText: job.payload))?.objectValue?["ms"] { milliseconds = value }
      var run: Int64 = 0
      for try await (id,) in try await database.query(
        "INSERT INTO job_runs (job_id, worker, attempt) VALUES (\(job.id), \(worker), \(job.attempts)) RETURNING id",
        logger: logger
      ).decode((Int64,).self) {
        run = id
      }
      try await Task.sleep(for: .milliseconds(Int64(milliseconds)))
      try await database.query("UPDATE job_runs SET finished_at = clock_timestamp() WHERE id = \(run)", logger: logger)
    }
    let noop = JobHandler(type: "noop", concurrency: self.concurrency) { _, _ in }
    let jobWorker = JobWorker(database: Database(client: database), notifications: database, handlers: [record, noop], configuration: configuration, logger: logger)

    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await database.run() }
      try await MigrationRunner(client: database, logger: logger).apply(CoreMigrations.all)
      try await database.query(
        """
        CREATE TABLE IF NOT EXISTS job_runs (
          id BIGSERIAL PRIMARY KEY, job_id UUID NOT NULL, worker TEXT NOT NULL, attempt INTEGER NOT NULL,
          started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), finished_at TIMESTAMPTZ)
        """, logger: logger)
      print("ready", worker)
      fflush(nil)
      let services = ServiceGroup(
        configuration: .init(services: [.init(service: jobWorker)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
      try await services.run()
      group.cancelAll()
    }
  }
}
