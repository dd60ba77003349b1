import Logging
import PlatformCore
import Synchronization
import Testing

@Suite("Periodic work")
struct PeriodicTests {
  @Test("A round that throws is logged and the next comes on time; cancelling ends the loop in its wait")
  func failuresAndCancellation() async throws {
    let log = CapturedLog()
    let rounds = Atomic<Int>(0)
    let loop = Task {
      await Periodic.run(every: .milliseconds(20), logger: log.logger, failure: "Round failed", metadata: ["table": "t"]) {
        let round = rounds.add(1, ordering: .relaxed).newValue
        if round % 2 == 1 { throw CancellationError() }
      }
    }
    let deadline = ContinuousClock.now + .seconds(5)
    while rounds.load(ordering: .relaxed) < 4 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    #expect(rounds.load(ordering: .relaxed) >= 4)
    #expect(log.messages.filter { $0 == "Round failed" }.count >= 2)
    // The loop is in its 20 ms wait or a round: cancelled, it ends well before another interval.
    let cancelled = ContinuousClock.now
    loop.cancel()
    await loop.value
    #expect(ContinuousClock.now - cancelled < .seconds(1))
    let after = rounds.load(ordering: .relaxed)
    try await Task.sleep(for: .milliseconds(60))
    #expect(rounds.load(ordering: .relaxed) == after)
  }

  @Test("Starting after one interval waits before the first round, and a cancelled wait runs none")
  func startingAfterInterval() async throws {
    let rounds = Atomic<Int>(0)
    let loop = Task {
      await Periodic.run(every: .seconds(30), starting: .afterInterval) { rounds.add(1, ordering: .relaxed) }
    }
    try await Task.sleep(for: .milliseconds(50))
    loop.cancel()
    await loop.value
    #expect(rounds.load(ordering: .relaxed) == 0)

    let now = Atomic<Int>(0)
    let immediate = Task {
      await Periodic.run(every: .seconds(30)) { now.add(1, ordering: .relaxed) }
    }
    try await Task.sleep(for: .milliseconds(50))
    immediate.cancel()
    await immediate.value
    #expect(now.load(ordering: .relaxed) == 1)
  }
}
