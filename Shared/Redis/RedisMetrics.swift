internal import CoreMetrics
internal import Synchronization

/// What the client counts: `redis_commands_total{command}`, `redis_errors_total{code}` and
/// `redis_outages_total` (times Redis became unreachable).
final class RedisMetrics: Sendable {
  private let factory: any MetricsFactory
  private let commands = Mutex<[String: Counter]>([:])
  private let errors = Mutex<[String: Counter]>([:])
  let outages: Counter

  init(factory: any MetricsFactory) {
    self.factory = factory
    self.outages = Counter(label: "redis_outages_total", factory: factory)
  }

  func sent(_ name: String, count: Int = 1) {
    let counter = self.commands.withLock { counters in
      if let counter = counters[name] { return counter }
      let counter = Counter(label: "redis_commands_total", dimensions: [("command", name)], factory: self.factory)
      counters[name] = counter
      return counter
    }
    counter.increment(by: count)
  }

  func failed(_ error: any Error) {
    let code = (error as? RedisError).map { "\($0.code)" } ?? "other"
    let counter = self.errors.withLock { counters in
      if let counter = counters[code] { return counter }
      let counter = Counter(label: "redis_errors_total", dimensions: [("code", code)], factory: self.factory)
      counters[code] = counter
      return counter
    }
    counter.increment()
  }
}
