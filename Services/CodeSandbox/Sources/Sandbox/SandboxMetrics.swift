internal import CoreMetrics
internal import Synchronization

/// What the sandbox reports on `/metrics`: `sandbox_isolation{cgroup, uids}` (1: what this host
/// gives, the health detail an operator checks), `sandbox_slots_busy`, `sandbox_queue_waiting`,
/// `sandbox_runs_total{ending}` and `sandbox_refused_total{why}` (pool full, user limit).
final class SandboxMetrics: Sendable {
  private let factory: any MetricsFactory
  private let endings = Mutex<[String: Counter]>([:])
  private let refusals = Mutex<[String: Counter]>([:])
  let busy: Gauge
  let waiting: Gauge

  init(factory: any MetricsFactory, cgroup: String, uids: String) {
    self.factory = factory
    Gauge(label: "sandbox_isolation", dimensions: [("cgroup", cgroup), ("uids", uids), ("seccomp", "on")], factory: factory).record(1)
    self.busy = Gauge(label: "sandbox_slots_busy", factory: factory)
    self.waiting = Gauge(label: "sandbox_queue_waiting", factory: factory)
  }

  func ended(_ ending: String) {
    Self.counter(ending, in: self.endings, label: "sandbox_runs_total", dimension: "ending", factory: self.factory).increment()
  }

  func refused(_ why: String) {
    Self.counter(why, in: self.refusals, label: "sandbox_refused_total", dimension: "why", factory: self.factory).increment()
  }

  private static func counter(
    _ value: String, in counters: borrowing Mutex<[String: Counter]>, label: String, dimension: String, factory: any MetricsFactory
  ) -> Counter {
    counters.withLock { counters in
      if let counter = counters[value] { return counter }
      let counter = Counter(label: label, dimensions: [(dimension, value)], factory: factory)
      counters[value] = counter
      return counter
    }
  }
}
