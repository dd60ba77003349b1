internal import GRPCRuntime
internal import Histogram
internal import Synchronization

/// How a load runs: an open loop at a fixed rate. Call *i* is due at start + i / rate whatever
/// happened to the calls before it, and its latency counts from that due time (wrk2's
/// correction of coordinated omission): a server that stalls for a second shows a second of
/// latency on every call that fell due meanwhile, not one slow call among fast ones.
struct LoadPlan: Sendable {
  var rate: Double
  var duration: Duration
  /// Calls due in the first `warmup` are sent but not measured.
  var warmup: Duration
  /// The most calls in flight at once. A call due while all are busy goes out as soon as one
  /// finishes, its latency still counted from when it was due.
  var maxInFlight: Int
}

/// One call of the load: sends request `number` and returns its status.
typealias LoadCall = @Sendable (_ number: Int) async -> StatusCode

/// What a run measured.
struct LoadResult: Sendable {
  /// Latency of the measured calls that succeeded, in microseconds.
  var latencies = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
  /// Measured calls by status.
  var statuses: [StatusCode: Int] = [:]
  /// Calls due in the measured window.
  var due = 0
  /// How long the measured window lasted, from its first due time to the last call's end.
  var elapsed: Duration = .zero
  /// Calls that went out more than a millisecond after they were due (the generator or the
  /// in-flight limit could not keep up; their latency includes the wait).
  var late = 0

  var completed: Int { self.statuses.values.reduce(0, +) }
  var errors: Int { self.statuses.filter { $0.key != .ok }.values.reduce(0, +) }
}

enum OpenLoop {
  /// The dispatcher sleeps at least this long between wake-ups: a timer per call costs more
  /// CPU than the call itself at thousands of calls a second. The calls of a tick go out
  /// together, each timed from its own due time.
  static let pacingTick = Duration.microseconds(500)

  static func run(_ plan: LoadPlan, call: @escaping LoadCall) async -> LoadResult {
    let interval = Duration.seconds(1) / plan.rate
    // Rounded: 12 s / (1/30,000 s) is 359,999.99… in floating point.
    let total = Int(((plan.warmup + plan.duration) / interval).rounded())
    let measuredFrom = plan.warmup
    let firstMeasured = Int((plan.warmup / interval).rounded())
    let result = Recorder()
    let slots = Slots(plan.maxInFlight)
    let start = ContinuousClock.now + .milliseconds(10)

    await withDiscardingTaskGroup { group in
      var number = 0
      while number < total {
        let due = start + interval * number
        let now = ContinuousClock.now
        if due > now {
          try? await Task.sleep(until: max(due, now + Self.pacingTick), tolerance: .microseconds(50))
          continue
        }
        await slots.acquire()
        let measured = number >= firstMeasured
        let late = ContinuousClock.now - due > .milliseconds(1)
        let current = number
        group.addTask {
          let status = await call(current)
          let latency = ContinuousClock.now - due
          slots.release()
          guard measured else { return }
          result.state.withLock { result in
            result.statuses[status, default: 0] += 1
            result.due += 1
            if late { result.late += 1 }
            if status == .ok { _ = result.latencies.record(UInt64(max(1, latency.microseconds))) }
          }
        }
        number += 1
      }
    }
    var final = result.state.withLock { $0 }
    final.elapsed = ContinuousClock.now - (start + measuredFrom)
    return final
  }
}

/// The result the calls record into.
final class Recorder: Sendable {
  let state = Mutex(LoadResult())
}

/// Counts calls in flight; the dispatcher waits for a free one.
final class Slots: Sendable {
  private struct State {
    var free: Int
    var waiter: CheckedContinuation<Void, Never>?
  }

  private let state: Mutex<State>

  init(_ count: Int) { self.state = Mutex(State(free: count)) }

  func acquire() async {
    await withCheckedContinuation { continuation in
      let acquired = self.state.withLock { state in
        if state.free > 0 {
          state.free -= 1
          return true
        }
        state.waiter = continuation
        return false
      }
      if acquired { continuation.resume() }
    }
  }

  /// A finished call's slot: to the waiting dispatcher, if any.
  func release() {
    let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
      if let waiter = state.waiter {
        state.waiter = nil
        return waiter
      }
      state.free += 1
      return nil
    }
    waiter?.resume()
  }
}

extension Duration {
  var microseconds: Int64 {
    self.components.seconds * 1_000_000 + self.components.attoseconds / 1_000_000_000_000
  }

  var seconds: Double {
    Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
  }
}
