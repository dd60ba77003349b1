import Foundation
import Logging
import PlatformCore
import PlatformTesting
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

@Suite("Job lifecycle")
struct JobLifecycleTests {
  @Test("every state and event: the allowed moves and nothing else")
  func transitions() throws {
    let allowed: [JobState: [JobEvent: JobState]] = [
      .queued: [.claimed: .running, .cancelled: .cancelled],
      .running: [
        .succeeded: .succeeded, .failed: .failed, .cancelled: .cancelled, .retried: .queued, .leaseExpired: .queued,
        .released: .queued,
      ],
      .succeeded: [:], .failed: [:], .cancelled: [:],
    ]
    for state in JobState.allCases {
      for event in JobEvent.allCases {
        if let expected = allowed[state]?[event] {
          #expect(try JobLifecycle.next(after: state, on: event) == expected)
        } else {
          #expect(throws: JobLifecycle.InvalidTransition.self) {
            try JobLifecycle.next(after: state, on: event)
          }
        }
      }
      #expect(state.isFinal == (allowed[state]?.isEmpty ?? true))
    }
    #expect(JobLifecycle.sources(of: .cancelled) == [.queued, .running])
  }
}

/// Jobs against real PostgreSQL: workers in this process, and `job-probe` worker processes for
/// crashes.
@Suite("Durable jobs")
struct JobTests {
  static let logger = TestPostgres.quietLogger

  /// A fresh database with the core migrations and the probe's `job_runs` table.
  static func withJobDatabase<T: Sendable>(_ body: (DatabaseConfiguration, PostgresClient) async throws -> T) async throws -> T {
    try await TestPostgres.withTemporaryDatabase { configuration in
      try await TestPostgres.withClient(configuration) { client in
        try await MigrationRunner(client: client, logger: Self.logger).apply(CoreMigrations.all)
        try await client.query(
          """
          CREATE TABLE job_runs (
            id BIGSERIAL PRIMARY KEY, job_id UUID NOT NULL, worker TEXT NOT NULL, attempt INTEGER NOT NULL,
            started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), finished_at TIMESTAMPTZ)
          """, logger: Self.logger)
        return try await body(configuration, client)
      }
    }
  }

  /// Runs `worker` in a service group for `body`; the group shuts down gracefully afterwards.
  static func running<T: Sendable>(_ worker: JobWorker, _ body: () async throws -> T) async throws -> T {
    let group = ServiceGroup(configuration: .init(services: [.init(service: worker)], logger: Self.logger))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { try await group.run() }
      do {
        let result = try await body()
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return result
      } catch {
        tasks.cancelAll()
        throw error
      }
    }
  }

  static func fastConfiguration(_ worker: String = "test-worker") -> JobWorkerConfiguration {
    var configuration = JobWorkerConfiguration(workerID: worker)
    configuration.lease = .seconds(3)
    configuration.renewInterval = .milliseconds(200)
    configuration.pollInterval = .milliseconds(200)
    configuration.shutdownGracePeriod = .seconds(2)
    return configuration
  }

  static func waitFor(_ id: UUID, in queue: JobQueue, state: JobState, within limit: Duration = .seconds(10)) async throws -> Job {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
      if let job = try await queue.job(id), job.state == state { return job }
      try await Task.sleep(for: .milliseconds(20))
    }
    let job = try await queue.job(id)
    throw JobTestFailure("job \(id) is \(job?.state.rawValue ?? "missing"), not \(state.rawValue), after \(limit)")
  }

  static func events(_ id: UUID, _ client: PostgresClient) async throws -> [String] {
    var events: [String] = []
    for try await (event,) in try await client.query(
      "SELECT event FROM job_events WHERE job_id = \(id) ORDER BY id", logger: Self.logger
    ).decode((String,).self) {
      events.append(event)
    }
    return events
  }

  @Test("enqueue: a dedup key returns the first job; bad input is refused")
  func enqueue() async throws {
    try await Self.withJobDatabase { _, client in
      let queue = JobQueue(database: Database(client: client), logger: Self.logger)
      let first = try await queue.enqueue("ingest", payload: .object(["doc": .string("a")]), options: JobOptions(dedupKey: "doc-a"))
      let second = try await queue.enqueue("ingest", payload: .object(["doc": .string("b")]), options: JobOptions(dedupKey: "doc-a"))
      #expect(first.added && !second.added)
      #expect(second.job.id == first.job.id && second.job.payload == first.job.payload)
      #expect(first.job.state == .queued && first.job.attempts == 0)
      for (type, options) in [
        ("", JobOptions()), (String(repeating: "t", count: 101), JobOptions()), ("t", JobOptions(priority: 101)),
        ("t", JobOptions(maxAttempts: 0)), ("t", JobOptions(dedupKey: "")),
      ] {
        await #expect(throws: JobError.self) { try await queue.enqueue(type, options: options) }
      }
      var deep = JSONValue.string("x")
      for _ in 0..<40 { deep = .array([deep]) }
      await #expect(throws: JobError.self) { try await queue.enqueue("t", payload: deep) }
      #expect(try await Self.events(first.job.id, client) == ["enqueued"])
    }
  }

  @Test("a failing job is retried with backoff until it succeeds; a permanent failure or the last attempt fails it")
  func retries() async throws {
    try await Self.withJobDatabase { _, client in
      let queue = JobQueue(database: Database(client: client), logger: Self.logger)
      let calls = Mutex<[UUID: [ContinuousClock.Instant]]>([:])
      let flaky = JobHandler(type: "flaky", retryBackoff: (.milliseconds(300), .seconds(1))) { job, _ in
        let count = calls.withLock { calls in
          calls[job.id, default: []].append(.now)
          return calls[job.id]!.count
        }
        if job.payload.contains("permanent") { throw PermanentJobFailure("bad input") }
        if job.payload.contains("always") || count < 3 { throw JobTestFailure("attempt \(count) failed") }
      }
      let worker = JobWorker(database: Database(client: client), notifications: client, handlers: [flaky], configuration: Self.fastConfiguration(), logger: Self.logger)
      try await Self.running(worker) {
        let eventual = try await queue.enqueue("flaky", payload: .object(["kind": .string("eventual")]))
        let permanent = try await queue.enqueue("flaky", payload: .object(["kind": .string("permanent")]))
        let always = try await queue.enqueue("flaky", payload: .object(["kind": .string("always")]), options: JobOptions(maxAttempts: 2))

        let succeeded = try await Self.waitFor(eventual.job.id, in: queue, state: .succeeded)
        #expect(succeeded.attempts == 3)
        #expect(try await Self.events(eventual.job.id, client) == [
          "enqueued", "claimed", "retried", "claimed", "retried", "claimed", "succeeded",
        ])
        let times = calls.withLock { $0[eventual.job.id]! }
        #expect(times[1] - times[0] >= .milliseconds(240), "the first retry came before its backoff")
        #expect(times[2] - times[1] >= .milliseconds(480), "the backoff did not grow")

        let failed = try await Self.waitFor(permanent.job.id, in: queue, state: .failed)
        #expect(failed.attempts == 1 && failed.lastError == "bad input")
        let exhausted = try await Self.waitFor(always.job.id, in: queue, state: .failed)
        #expect(exhausted.attempts == 2 && exhausted.lastError?.contains("attempt 2 failed") == true)
      }
    }
  }

  // Sharing the pool, the listener would hold its one connection and every statement would wait
  // (the time limit turns that hang into a failure).
  @Test(
    "LISTEN holds a connection of its own: with a statement pool of one the worker claims, runs and records, woken by NOTIFY",
    .timeLimit(.minutes(1)))
  func poolOfOne() async throws {
    try await Self.withJobDatabase { configuration, client in
      var single = configuration
      single.poolSize = 1
      try await TestPostgres.withClient(single) { statements in
        let database = Database(client: statements)
        let queue = JobQueue(database: database, logger: Self.logger)
        let handler = JobHandler(type: "one") { _, _ in }
        var workerConfiguration = Self.fastConfiguration()
        // No poll within the test: only the notification wakes the worker for the job.
        workerConfiguration.pollInterval = .seconds(60)
        let worker = JobWorker(
          database: database, notifications: client, handlers: [handler], configuration: workerConfiguration, logger: Self.logger)
        try await Self.running(worker) {
          try await Task.sleep(for: .milliseconds(300))  // the first sweep is done; the worker listens
          let job = try await queue.enqueue("one").job
          let done = try await Self.waitFor(job.id, in: queue, state: .succeeded, within: .seconds(3))
          #expect(done.attempts == 1)
        }
      }
    }
  }

  @Test("a handler that throws CancellationError by itself has failed an attempt: it is retried, not stuck")
  func handlerCancellationError() async throws {
    try await Self.withJobDatabase { _, client in
      let queue = JobQueue(database: Database(client: client), logger: Self.logger)
      let attempts = Mutex(0)
      let handler = JobHandler(type: "inner-timeout", retryBackoff: (.milliseconds(50), .milliseconds(100))) { _, _ in
        if attempts.withLock({ $0 += 1; return $0 }) == 1 { throw CancellationError() }
      }
      let worker = JobWorker(database: Database(client: client), notifications: client, handlers: [handler], configuration: Self.fastConfiguration(), logger: Self.logger)
      try await Self.running(worker) {
        let job = try await queue.enqueue("inner-timeout").job
        let done = try await Self.waitFor(job.id, in: queue, state: .succeeded, within: .seconds(5))
        #expect(done.attempts == 2)
        #expect(worker.runningJobs.isEmpty)
      }
    }
  }

  @Test("cancel: a queued job at once, a running job within a second")
  func cancel() async throws {
    try await Self.withJobDatabase { _, client in
      let queue = JobQueue(database: Database(client: client), logger: Self.logger)
      let started = AsyncStream.makeStream(of: UUID.self)
      let slow = JobHandler(type: "slow", concurrency: 1) { job, _ in
        started.continuation.yield(job.id)
        try await Task.sleep(for: .seconds(30))
      }
      let worker = JobWorker(database: Database(client: client), notifications: client, handlers: [slow], configuration: Self.fastConfiguration(), logger: Self.logger)
      try await Self.running(worker) {
        let running = try await queue.enqueue("slow")
        let waiting = try await queue.enqueue("slow")  // concurrency 1: stays queued
        var iterator = started.stream.makeAsyncIterator()
        #expect(await iterator.next() == running.job.id)
        #expect(try await queue.cancel(waiting.job.id).state == .cancelled)
        let requested = ContinuousClock.now
        #expect(try await queue.cancel(running.job.id).cancelRequested)
        _ = try await Self.waitFor(running.job.id, in: queue, state: .cancelled, within: .seconds(2))
        #expect(ContinuousClock.now - requested < .seconds(1))
        #expect(try await Self.events(running.job.id, client) == ["enqueued", "claimed", "cancelled"])
        await #expect(throws: JobError.notFound) { try await queue.cancel(UUID()) }
      }
    }
  }

  @Test("no more jobs of a type run at once than its concurrency")
  func concurrencyLimit() async throws {
    try await Self.withJobDatabase { _, client in
      let queue = JobQueue(database: Database(client: client), logger: Self.logger)
      let gauge = Mutex((now: 0, peak: 0))
      let handler = JobHandler(type: "limited", concurrency: 2) { _, _ in
        gauge.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
        try await Task.sleep(for: .milliseconds(300))
        gauge.withLock { $0.now -= 1 }
      }
      let worker = JobWorker(database: Database(client: client), notifications: client, handlers: [handler], configuration: Self.fastConfiguration(), logger: Self.logger)
      try await Self.running(worker) {
        var ids: [UUID] = []
        for _ in 0..<6 { ids.append(try await queue.enqueue("limited").job.id) }
        for id in ids { _ = try await Self.waitFor(id, in: queue, state: .succeeded) }
      }
      // Never more than the limit; and the limit is used (a batch claim takes both free slots).
      #expect(gauge.withLock { $0.peak } == 2)
    }
  }

  @Test("graceful shutdown: no new claims, short jobs finish, long ones go back to the queue uncounted")
  func gracefulShutdown() async throws {
    try await Self.withJobDatabase { _, client in
      let queue = JobQueue(database: Database(client: client), logger: Self.logger)
      let started = AsyncStream.makeStream(of: UUID.self)
      let handler = JobHandler(type: "timed", concurrency: 2) { job, _ in
        started.continuation.yield(job.id)
        try await Task.sleep(for: job.payload.contains("long") ? .seconds(30) : .milliseconds(800))
      }
      var configuration = Self.fastConfiguration()
      configuration.shutdownGracePeriod = .milliseconds(1500)
      let worker = JobWorker(database: Database(client: client), notifications: client, handlers: [handler], configuration: configuration, logger: Self.logger)
      let short = try await queue.enqueue("timed", payload: .object(["kind": .string("short")]))
      let long = try await queue.enqueue("timed", payload: .object(["kind": .string("long")]))
      let stoppedAt = try await Self.running(worker) {
        var iterator = started.stream.makeAsyncIterator()
        _ = await iterator.next()
        _ = await iterator.next()
        _ = try await queue.enqueue("timed", payload: .object(["kind": .string("late")]))
        return ContinuousClock.now
      }
      #expect(ContinuousClock.now - stoppedAt < .seconds(3))
      #expect(try await queue.job(short.job.id)?.state == .succeeded)
      let released = try #require(try await queue.job(long.job.id))
      #expect(released.state == .queued && released.attempts == 0 && released.leaseHolder == nil)
      #expect(try await Self.events(long.job.id, client) == ["enqueued", "claimed", "released"])
      var stateCounts: [String: Int] = [:]
      for try await (state, count) in try await client.query(
        "SELECT state, count(*)::int FROM jobs GROUP BY state", logger: Self.logger
      ).decode((String, Int).self) {
        stateCounts[state] = count
      }
      #expect(stateCounts == ["succeeded": 1, "queued": 2], "a job was claimed during shutdown")
    }
  }

  // MARK: - Worker processes

  /// The `job-probe` executable beside the test binary.
  static var probePath: String {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("job-probe").path
  }

  static func url(_ configuration: DatabaseConfiguration) -> String {
    "postgres://\(configuration.username):\(configuration.password ?? "")@\(configuration.host):\(configuration.port)/\(configuration.database)"
  }

  /// Starts a worker process and waits until it is ready.
  static func startProbe(_ configuration: DatabaseConfiguration, worker: String, arguments: [String]) async throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Self.probePath)
    process.arguments = ["--database-url", Self.url(configuration), "--worker", worker] + arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Read on a thread of its own: a blocking read must not hold one of the cooperative pool's
    // threads, which the other tests run on.
    let handle = output.fileHandleForReading
    let line = await withCheckedContinuation { continuation in
      Thread { continuation.resume(returning: String(decoding: handle.availableData, as: UTF8.self)) }.start()
    }
    guard line.hasPrefix("ready") else {
      process.terminate()
      throw JobTestFailure("job-probe did not start: \(line)")
    }
    return process
  }

  @Test("kill -9 of a worker mid-job: another worker finishes the job once the lease has expired")
  func crashedWorker() async throws {
    try await Self.withJobDatabase { configuration, client in
      let queue = JobQueue(database: Database(client: client), logger: Self.logger)
      let doomed = try await Self.startProbe(configuration, worker: "doomed", arguments: ["--lease-ms", "1500"])
      defer { if doomed.isRunning { kill(doomed.processIdentifier, SIGKILL) } }
      // Long enough that the doomed worker is still at it when it is killed, on a busy machine too.
      let job = try await queue.enqueue("record", payload: .object(["ms": .number(2500)])).job
      // Wait until the doomed worker has started it, then kill it.
      try await eventuallyTrue {
        var workers: [String] = []
        for try await (worker,) in try await client.query("SELECT worker FROM job_runs WHERE job_id = \(job.id)", logger: Self.logger)
          .decode((String,).self)
        {
          workers.append(worker)
        }
        return workers == ["doomed"]
      }
      kill(doomed.processIdentifier, SIGKILL)
      doomed.waitUntilExit()
      let killedAt = ContinuousClock.now
      let survivor = try await Self.startProbe(configuration, worker: "survivor", arguments: ["--lease-ms", "1500"])
      defer { if survivor.isRunning { kill(survivor.processIdentifier, SIGKILL) } }
      let finished = try await Self.waitFor(job.id, in: queue, state: .succeeded, within: .seconds(20))
      // The lease (1.5 s), the next sweep, and the 2.5 s run.
      #expect(ContinuousClock.now - killedAt < .seconds(10))
      #expect(finished.attempts == 2)
      var runs: [(String, Bool)] = []
      for try await (worker, done) in try await client.query(
        "SELECT worker, finished_at IS NOT NULL FROM job_runs WHERE job_id = \(job.id) ORDER BY id", logger: Self.logger
      ).decode((String, Bool).self) {
        runs.append((worker, done))
      }
      #expect(runs.map(\.0) == ["doomed", "survivor"] && runs.map(\.1) == [false, true])
      #expect(try await Self.events(job.id, client) == ["enqueued", "claimed", "lease_expired", "claimed", "succeeded"])
      survivor.terminate()
      survivor.waitUntilExit()
      #expect(survivor.terminationStatus == 0)
    }
  }

  @Test("two worker processes over 1,000 jobs: every job succeeds, none ever runs twice at the same time")
  func twoReplicas() async throws {
    try await Self.withJobDatabase { configuration, client in
      var probes: [Process] = []
      for worker in ["replica-a", "replica-b"] {
        probes.append(
          try await Self.startProbe(configuration, worker: worker, arguments: ["--lease-ms", "5000", "--concurrency", "8"]))
      }
      defer { for probe in probes where probe.isRunning { kill(probe.processIdentifier, SIGKILL) } }
      try await client.query(
        """
        INSERT INTO jobs (type, payload) SELECT 'record', jsonb_build_object('ms', (n % 5)) FROM generate_series(1, 1000) n
        """, logger: Self.logger)
      try await client.query("SELECT pg_notify('platform_jobs', 'queued:record')", logger: Self.logger)
      try await eventuallyTrue(within: .seconds(90)) {
        var done = 0
        for try await (count,) in try await client.query(
          "SELECT count(*)::int FROM jobs WHERE state = 'succeeded'", logger: Self.logger
        ).decode((Int,).self) {
          done = count
        }
        return done == 1000
      }
      var overlaps = -1
      var perWorker: [String: Int] = [:]
      for try await (count,) in try await client.query(
        """
        SELECT count(*)::int FROM job_runs a JOIN job_runs b ON a.job_id = b.job_id AND a.id < b.id
        WHERE b.started_at < coalesce(a.finished_at, 'infinity')
        """, logger: Self.logger
      ).decode((Int,).self) {
        overlaps = count
      }
      for try await (worker, count) in try await client.query(
        "SELECT worker, count(*)::int FROM job_runs GROUP BY worker", logger: Self.logger
      ).decode((String, Int).self) {
        perWorker[worker] = count
      }
      #expect(overlaps == 0)
      #expect(perWorker.values.reduce(0, +) == 1000, "a job ran more than once: \(perWorker)")
      #expect(perWorker.count == 2 && perWorker.values.allSatisfy { $0 > 100 }, "one replica did (almost) everything: \(perWorker)")
      for probe in probes {
        probe.terminate()
        probe.waitUntilExit()
      }
    }
  }
}

struct JobTestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

func eventuallyTrue(within limit: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws {
  let deadline = ContinuousClock.now + limit
  while ContinuousClock.now < deadline {
    if try await condition() { return }
    try await Task.sleep(for: .milliseconds(50))
  }
  throw JobTestFailure("condition not met within \(limit)")
}
