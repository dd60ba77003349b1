internal import NIOCore
public import NIOPosix
internal import Foundation

/// The event loops servers and clients use by default: one per CPU this process may run on.
///
/// NIO's shared group sizes itself by the machine's cores; under `taskset`, a cpuset or a
/// container CPU limit the extra loops only time-share the allowed CPUs and pay for context
/// switches. Go sizes GOMAXPROCS the same way.
public enum RuntimeEventLoops {
  /// The process-wide group, created on first use and never shut down.
  public static let shared: MultiThreadedEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: usableCPUCount)

  /// The CPUs in this process's affinity mask (`Cpus_allowed_list` of /proc/self/status),
  /// bounded by NIO's view of the machine (which accounts for cgroup quotas).
  public static let usableCPUCount: Int = {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
    else { return System.coreCount }
    var count = 0
    for range in line.dropFirst("Cpus_allowed_list:".count).split(separator: ",") {
      let bounds = range.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
      if bounds.count == 1 { count += 1 }
      if bounds.count == 2, bounds[1] >= bounds[0] { count += bounds[1] - bounds[0] + 1 }
    }
    return count > 0 ? min(count, System.coreCount) : System.coreCount
  }()
}
