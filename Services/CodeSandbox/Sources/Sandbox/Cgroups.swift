internal import Foundation

/// The memory, CPU and process limits of runs, through the host's cgroups: v2 where it is
/// mounted (one hierarchy), else v1's memory, pids and cpu controllers. Each run gets a cgroup of
/// its own under the service's (`code-sandbox-<pid>-<n>/run-<n>`), with fresh counters, removed
/// after the run once it is empty.
public struct CgroupHost: Sendable, CustomStringConvertible {
  public enum Version: String, Sendable {
    case v1, v2
  }

  public let version: Version
  /// Per controller (v1: memory, pids, cpu, cpuacct; v2: one entry ""), the service's directory.
  let bases: [String: String]
  /// Whether swap is limited with memory (v1 memsw, v2 memory.swap.max).
  let limitsSwap: Bool

  public var description: String {
    "cgroup \(self.version.rawValue) (\(self.bases.keys.filter { !$0.isEmpty }.sorted().joined(separator: ", ")))"
  }

  /// Where the services' directories go: v2's one hierarchy (beside our own cgroup, which may not
  /// hold processes and children with controllers at once; under the root if we are the root),
  /// or per v1 controller, under our own cgroup.
  private static func parents(root: String, own: [String: String]) -> (version: Version, parents: [String: String]) {
    if FileManager.default.fileExists(atPath: "\(root)/cgroup.controllers") {
      let path = own[""] ?? "/"
      return (.v2, ["": path == "/" ? root : root + (path as NSString).deletingLastPathComponent])
    }
    var parents: [String: String] = [:]
    for controller in ["memory", "pids", "cpu", "cpuacct"] where FileManager.default.fileExists(atPath: "\(root)/\(controller)/cgroup.procs") {
      let mine = own[controller] ?? "/"
      parents[controller] = "\(root)/\(controller)" + (mine == "/" ? "" : mine)
    }
    return (.v1, parents)
  }

  /// What this host offers: nil when no memory controller can be written (not root, not
  /// delegated, not mounted).
  /// - Parameter own: this process's cgroup per controller, as /proc/self/cgroup says (nil: read it).
  public static func detect(root: String = "/sys/fs/cgroup", label: String, own: [String: String]? = nil) -> CgroupHost? {
    let (version, parents) = Self.parents(root: root, own: own ?? Self.ownCgroups())
    switch version {
    case .v2:
      guard let parent = parents[""] else { return nil }
      let base = "\(parent)/\(label)"
      // The controllers must be enabled down the path: in the parent for the service's
      // directory, in that directory for the runs' (pids and cpu are optional).
      for directory in [parent, base] {
        guard directory == parent || Self.makeDirectory(directory) else { return nil }
        for controller in ["+memory", "+pids", "+cpu"] { Self.write(controller, to: "\(directory)/cgroup.subtree_control") }
      }
      guard Self.read("\(base)/cgroup.subtree_control")?.contains("memory") == true else { return nil }
      return CgroupHost(version: .v2, bases: ["": base], limitsSwap: true)
    case .v1:
      var bases: [String: String] = [:]
      for (controller, parent) in parents where Self.makeDirectory("\(parent)/\(label)") { bases[controller] = "\(parent)/\(label)" }
      guard let memory = bases["memory"] else { return nil }
      return CgroupHost(
        version: .v1, bases: bases, limitsSwap: FileManager.default.fileExists(atPath: "\(memory)/memory.memsw.limit_in_bytes"))
    }
  }

  /// Removes the service's directory and the cgroups in it (runs', the analyser's) once empty.
  public func removeAll() {
    for base in Set(self.bases.values) { Self.remove(base, killing: false) }
  }

  /// Removes what services that are gone left behind: `code-sandbox-<pid>-<n>` directories of
  /// dead pids, with whatever still runs in them killed.
  public static func removeStale(root: String = "/sys/fs/cgroup", prefix: String) {
    for parent in Set(Self.parents(root: root, own: Self.ownCgroups()).parents.values) {
      for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where entry.hasPrefix(prefix) {
        guard let pid = entry.dropFirst(prefix.count).split(separator: "-").first.flatMap({ Int32($0) }), kill(pid, 0) != 0,
          errno == ESRCH
        else { continue }
        Self.remove("\(parent)/\(entry)", killing: true)
      }
    }
  }

  /// Removes `directory` and the cgroups in it, killing their processes first if asked.
  private static func remove(_ directory: String, killing: Bool) {
    for child in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: "\(directory)/\(child)", isDirectory: &isDirectory), isDirectory.boolValue else { continue }
      if killing { _ = Cgroup.killAll(in: "\(directory)/\(child)") }
      rmdir("\(directory)/\(child)")
    }
    rmdir(directory)
  }

  /// A new cgroup for one run, with its limits set.
  func makeRun(_ name: String, memoryBytes: Int, cpuMillis: Int, maxProcesses: Int) throws -> Cgroup {
    var directories: [String: String] = [:]
    for (controller, base) in self.bases {
      let directory = "\(base)/\(name)"
      guard Self.makeDirectory(directory) else { throw SandboxError.host("cannot create the cgroup \(directory)") }
      directories[controller] = directory
    }
    let cgroup = Cgroup(version: self.version, directories: directories)
    func set(_ controller: String, _ file: String, _ value: String, required: Bool = true) throws {
      guard let directory = directories[controller] else { return }
      if !Self.write(value, to: "\(directory)/\(file)") && required {
        cgroup.remove()
        throw SandboxError.host("cannot write \(value) to \(directory)/\(file)")
      }
    }
    switch self.version {
    case .v2:
      try set("", "memory.max", "\(memoryBytes)")
      try set("", "memory.swap.max", "0", required: false)
      try set("", "pids.max", "\(maxProcesses)", required: false)
      try set("", "cpu.max", "\(cpuMillis * 100) 100000", required: false)
    case .v1:
      try set("memory", "memory.limit_in_bytes", "\(memoryBytes)")
      if self.limitsSwap { try set("memory", "memory.memsw.limit_in_bytes", "\(memoryBytes)") }
      try set("pids", "pids.max", "\(maxProcesses)", required: false)
      try set("cpu", "cpu.cfs_period_us", "100000", required: false)
      try set("cpu", "cpu.cfs_quota_us", "\(cpuMillis * 100)", required: false)
    }
    return cgroup
  }

  /// controller → path, from /proc/self/cgroup ("" for v2's unified hierarchy).
  static func ownCgroups() -> [String: String] {
    var result: [String: String] = [:]
    for line in (Self.read("/proc/self/cgroup") ?? "").split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
      guard parts.count == 3 else { continue }
      for controller in parts[1].split(separator: ",", omittingEmptySubsequences: false) {
        result[String(controller)] = String(parts[2])
      }
    }
    return result
  }

  static func makeDirectory(_ path: String) -> Bool {
    mkdir(path, 0o755) == 0 || errno == EEXIST
  }

  @discardableResult
  static func write(_ value: String, to path: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return value.withCString { pointer in Glibc.write(fd, pointer, strlen(pointer)) } >= 0
  }

  static func read(_ path: String) -> String? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return String(decoding: data, as: UTF8.self)
  }
}

/// One run's cgroup.
struct Cgroup: Sendable {
  let version: CgroupHost.Version
  let directories: [String: String]

  /// The files the launcher writes its pid to, joining every controller.
  var procsFiles: [String] { Set(self.directories.values).sorted().map { "\($0)/cgroup.procs" } }

  /// The peak memory of the run.
  var peakMemoryBytes: Int? {
    switch self.version {
    case .v2: self.number("", "memory.peak")
    case .v1: self.number("memory", "memory.max_usage_in_bytes")
    }
  }

  /// CPU time used, in nanoseconds.
  var cpuNanoseconds: Int? {
    switch self.version {
    case .v2:
      self.directories[""].flatMap { CgroupHost.read("\($0)/cpu.stat") }.flatMap { stat in
        stat.split(separator: "\n").first { $0.hasPrefix("usage_usec ") }.flatMap { Int($0.dropFirst(11)) }.map { $0 * 1000 }
      }
    case .v1: self.number("cpuacct", "cpuacct.usage")
    }
  }

  /// How long the run's live threads have been on a CPU or waiting for one (/proc/<tid>/schedstat),
  /// plus how long its CPU quota held it back: what it would have computed, given the CPU.
  var cpuDemandNanoseconds: Int? {
    let threads: String?
    let stat: (directory: String?, field: String, scale: Int)
    switch self.version {
    case .v2:
      threads = self.directories[""].flatMap { CgroupHost.read("\($0)/cgroup.threads") }
      stat = (self.directories[""], "throttled_usec", 1000)
    case .v1:
      threads = (self.directories["cpuacct"] ?? self.directories["memory"]).flatMap { CgroupHost.read("\($0)/tasks") }
      stat = (self.directories["cpu"], "throttled_time", 1)
    }
    guard let threads else { return nil }
    var total = 0
    for tid in threads.split(separator: "\n") {
      guard let fields = CgroupHost.read("/proc/\(tid)/schedstat")?.split(separator: " "), fields.count >= 2 else { continue }
      total += (Int(fields[0]) ?? 0) + (Int(fields[1]) ?? 0)
    }
    if let directory = stat.directory, let text = CgroupHost.read("\(directory)/cpu.stat"),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix(stat.field + " ") }),
      let value = Int(line.dropFirst(stat.field.count + 1))
    {
      total += value * stat.scale
    }
    return total
  }

  /// Whether the kernel's OOM killer killed something in the run.
  var oomKilled: Bool {
    let file = self.version == .v2 ? "memory.events" : "memory.oom_control"
    guard let directory = self.directories[self.version == .v2 ? "" : "memory"],
      let text = CgroupHost.read("\(directory)/\(file)")
    else { return false }
    return text.split(separator: "\n").contains { line in
      line.hasPrefix("oom_kill ") && (Int(line.dropFirst(9)) ?? 0) > 0
    }
  }

  /// Kills every process left in the run's cgroups; true when they are all gone.
  @discardableResult
  func killAll() -> Bool {
    var empty = true
    for directory in Set(self.directories.values) where !Self.killAll(in: directory) { empty = false }
    return empty
  }

  static func killAll(in directory: String) -> Bool {
    if CgroupHost.write("1", to: "\(directory)/cgroup.kill") { return Self.waitEmpty(directory) }
    for _ in 0..<50 {
      let pids = (CgroupHost.read("\(directory)/cgroup.procs") ?? "").split(separator: "\n").compactMap { Int32($0) }
      if pids.isEmpty { return true }
      for pid in pids { kill(pid, SIGKILL) }
      usleep(2000)
    }
    return false
  }

  private static func waitEmpty(_ directory: String) -> Bool {
    for _ in 0..<50 {
      if (CgroupHost.read("\(directory)/cgroup.procs") ?? "").isEmpty { return true }
      usleep(2000)
    }
    return false
  }

  func remove() {
    for directory in Set(self.directories.values) { rmdir(directory) }
  }

  private func number(_ controller: String, _ file: String) -> Int? {
    self.directories[controller].flatMap { CgroupHost.read("\($0)/\(file)") }.flatMap {
      Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
    }
  }
}
