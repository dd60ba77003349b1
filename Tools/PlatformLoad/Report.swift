internal import Foundation
internal import GRPCRuntime
internal import Histogram

/// Latency objectives: the run fails (exit code 2) when one is not met.
struct Objectives: Sendable {
  /// Upper bounds per percentile (50, 90, 99, 99.9).
  var percentiles: [(percentile: Double, bound: Duration)] = []
  var maxErrors: Int?

  func violations(of result: LoadResult) -> [String] {
    var problems: [String] = []
    for (percentile, bound) in self.percentiles {
      let measured = Duration.microseconds(Int64(result.latencies.valueAtPercentile(percentile)))
      if result.latencies.totalCount == 0 {
        problems.append("p\(Report.label(percentile)): no successful call to measure")
      } else if measured > bound {
        problems.append("p\(Report.label(percentile)) \(Report.text(measured)) > \(Report.text(bound))")
      }
    }
    if let maxErrors, result.errors > maxErrors {
      problems.append("\(result.errors) errors > \(maxErrors)")
    }
    return problems
  }
}

enum Report {
  static let percentiles: [Double] = [50, 90, 99, 99.9, 100]

  static func label(_ percentile: Double) -> String {
    percentile == percentile.rounded() ? String(Int(percentile)) : String(percentile)
  }

  static func text(_ duration: Duration) -> String {
    let microseconds = duration.microseconds
    if microseconds < 1_000 { return "\(microseconds) µs" }
    if microseconds < 1_000_000 { return String(format: "%.2f ms", Double(microseconds) / 1e3) }
    return String(format: "%.3f s", Double(microseconds) / 1e6)
  }

  /// Milliseconds at each reported percentile of the successful calls.
  static func milliseconds(_ result: LoadResult) -> [(String, Double)] {
    self.percentiles.map { percentile in
      ("p\(self.label(percentile))", Double(result.latencies.valueAtPercentile(percentile)) / 1e3)
    }
  }

  static func human(_ result: LoadResult, method: String, plan: LoadPlan, violations: [String]) -> String {
    let seconds = plan.duration.seconds
    var lines = [
      "\(method): \(result.due) calls due at \(format(plan.rate))/s for \(format(seconds)) s"
        + " (after \(format(plan.warmup.seconds)) s of warm-up)",
      "achieved: \(format(Double(result.completed) / max(result.elapsed.seconds, 1e-9)))/s of \(format(plan.rate))/s"
        + " (\(result.late) calls sent late: they waited for the generator or the in-flight limit)",
      "latency from the intended send time, \(result.latencies.totalCount) successful calls:",
      "  " + self.milliseconds(result).map { "\($0.0) \(String(format: "%.3f", $0.1)) ms" }.joined(separator: "  "),
      "statuses: " + result.statuses.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
    ]
    if !violations.isEmpty { lines.append("objectives NOT met: " + violations.joined(separator: "; ")) }
    return lines.joined(separator: "\n")
  }

  static func json(_ result: LoadResult, method: String, plan: LoadPlan, violations: [String]) -> String {
    var latency: [String: Double] = [:]
    for (name, value) in self.milliseconds(result) { latency[name + "_ms"] = value }
    latency["mean_ms"] = result.latencies.totalCount == 0 ? 0 : result.latencies.mean / 1e3
    let object: [String: Any] = [
      "method": method,
      "target_rate": plan.rate,
      "achieved_rate": Double(result.completed) / max(result.elapsed.seconds, 1e-9),
      "duration_s": plan.duration.seconds,
      "due": result.due,
      "completed": result.completed,
      "late": result.late,
      "errors": result.errors,
      "statuses": Dictionary(uniqueKeysWithValues: result.statuses.map { ("\($0.key)", $0.value) }),
      "latency": latency,
      "objectives_met": violations.isEmpty,
      "violations": violations,
    ]
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self)
  }

  static func format(_ value: Double) -> String {
    value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
  }
}

/// `5ms`, `250us`, `1.5s`, `2m`, or a bare number of seconds.
func parseDuration(_ text: String) -> Duration? {
  let units: [(String, Double)] = [("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60)]
  for (suffix, scale) in units where text.hasSuffix(suffix) {
    guard let value = Double(text.dropLast(suffix.count)), value >= 0 else { return nil }
    return .microseconds(Int64((value * scale * 1e6).rounded()))
  }
  guard let value = Double(text), value >= 0 else { return nil }
  return .microseconds(Int64((value * 1e6).rounded()))
}
