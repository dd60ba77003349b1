internal import Foundation
internal import Logging
internal import PlatformCore
internal import PostgresNIO

/// personas.usage_count, counted by group commit: the renders that arrive while one UPDATE is
/// being written are added up and written by the next one, a single statement for all of them,
/// and each render returns once the statement holding its count has committed (so a count is
/// never acknowledged and lost). One UPDATE per render would make every concurrent render of a
/// popular persona queue for that row's lock, one commit at a time: measured, 2 ms a render at
/// 10 concurrent executions of one agent (scripts/benchmark-agent.sh with pg_stat_statements).
actor UsageCounts {
  private let database: Database
  private let logger: Logger
  /// The renders not yet being written, by persona.
  private var waiting: [UUID: Int] = [:]
  /// The write that will hold `waiting` (it starts when the write before it has ended).
  private var nextWrite: Task<Void, any Error>?
  /// The latest write started or scheduled: the one the next must follow.
  private var lastWrite: Task<Void, any Error>?

  init(database: Database, logger: Logger) {
    self.database = database
    self.logger = logger
  }

  /// Counts one render of `id` and returns when it is committed.
  func count(_ id: UUID) async throws {
    self.waiting[id, default: 0] += 1
    let write: Task<Void, any Error>
    if let nextWrite {
      write = nextWrite
    } else {
      let previous = self.lastWrite
      write = Task {
        _ = await previous?.result
        try await self.write(self.takeWaiting())
      }
      self.nextWrite = write
      self.lastWrite = write
    }
    try await write.value
  }

  /// What `nextWrite` writes: from now on, renders wait for the write after it.
  private func takeWaiting() -> [UUID: Int] {
    defer {
      self.waiting = [:]
      self.nextWrite = nil
    }
    return self.waiting
  }

  /// One statement for the batch; its rows are locked in id order, so two replicas writing
  /// batches of the same personas at once never deadlock.
  private nonisolated func write(_ counts: [UUID: Int]) async throws {
    guard !counts.isEmpty else { return }
    let sorted = counts.sorted { $0.key.uuidString < $1.key.uuidString }
    let ids = sorted.map(\.key), renders = sorted.map(\.value)
    try await self.database.query(
      """
      WITH counted AS (SELECT * FROM unnest(\(ids)::uuid[], \(renders)::int8[]) AS c(id, renders)),
        locked AS (SELECT p.id FROM personas p JOIN counted USING (id) WHERE p.deleted_at IS NULL ORDER BY p.id FOR UPDATE OF p)
      UPDATE personas p SET usage_count = p.usage_count + counted.renders
      FROM counted JOIN locked USING (id) WHERE p.id = counted.id
      """, logger: self.logger)
  }
}
