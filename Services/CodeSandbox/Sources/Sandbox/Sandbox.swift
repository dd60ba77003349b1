internal import Foundation
public import Logging
internal import NIOCore
internal import NIOPosix
internal import NIOConcurrencyHelpers
public import CoreMetrics
public import PlatformCore

/// How the sandbox runs programs (`SANDBOX_*` settings).
public struct SandboxConfiguration: Sendable {
  /// Runs at once (`SANDBOX_POOL_SIZE`, default 2 per core).
  public var poolSize: Int
  /// Runs waiting for a slot beyond those (`SANDBOX_QUEUE_SIZE`, default 4 per slot).
  public var queueSize: Int
  /// One user's runs, running or waiting (`SANDBOX_MAX_PER_USER`, default half the pool + queue).
  public var perUser: Int
  /// Slot n runs as uid and gid `uidBase + n` (`SANDBOX_UID_BASE`, default 61000), when the
  /// service is root; otherwise as the service's own uid.
  public var uidBase: Int
  /// The writable tmpfs of a run, in MiB (`SANDBOX_TMP_MB`, default 64).
  public var tmpMegabytes: Int
  /// Processes and threads per run (`SANDBOX_MAX_PROCESSES`, default 128: node alone starts a
  /// dozen threads, and RLIMIT_NPROC counts threads).
  public var maxProcesses: Int
  /// Output files per run and their bytes together (`SANDBOX_MAX_OUTPUT_FILES` 20,
  /// `SANDBOX_MAX_OUTPUT_FILES_MB` 1, at most 1: a reply stays under the 4 MiB message limit).
  public var maxOutputFiles: Int
  public var maxOutputFileBytes: Int
  /// Run without memory and CPU limits where the host has no writable cgroup
  /// (`SANDBOX_ALLOW_WEAK_LIMITS=1`); otherwise the service refuses to start there.
  public var allowWeakLimits: Bool
  /// bubblewrap (`SANDBOX_BWRAP`, default /usr/bin/bwrap) and the launcher (`SANDBOX_EXEC`,
  /// default `sandbox-exec` next to the service's executable).
  public var bwrap: String
  public var launcher: String
  /// Where the cgroup hierarchies are mounted (`SANDBOX_CGROUP_ROOT`, default /sys/fs/cgroup).
  public var cgroupRoot: String

  public init(environment: Environment, executableDirectory: String) throws {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    self.poolSize = try environment.int("SANDBOX_POOL_SIZE", default: max(2, 2 * cores), range: 1...256)
    self.queueSize = try environment.int("SANDBOX_QUEUE_SIZE", default: 4 * self.poolSize, range: 0...10_000)
    self.perUser = try environment.int("SANDBOX_MAX_PER_USER", default: max(1, (self.poolSize + self.queueSize) / 2), range: 1...10_000)
    self.uidBase = try environment.int("SANDBOX_UID_BASE", default: 61000, range: 1000...4_000_000_000)
    self.tmpMegabytes = try environment.int("SANDBOX_TMP_MB", default: 64, range: 1...4096)
    self.maxProcesses = try environment.int("SANDBOX_MAX_PROCESSES", default: 128, range: 16...4096)
    self.maxOutputFiles = try environment.int("SANDBOX_MAX_OUTPUT_FILES", default: 20, range: 0...1000)
    self.maxOutputFileBytes = try environment.int("SANDBOX_MAX_OUTPUT_FILES_MB", default: 1, range: 0...1) << 20
    self.allowWeakLimits = environment["SANDBOX_ALLOW_WEAK_LIMITS"] == "1"
    self.bwrap = environment.string("SANDBOX_BWRAP", default: "/usr/bin/bwrap")
    self.launcher = environment.string("SANDBOX_EXEC", default: "\(executableDirectory)/sandbox-exec")
    self.cgroupRoot = environment.string("SANDBOX_CGROUP_ROOT", default: "/sys/fs/cgroup")
  }
}

public enum SandboxError: Error, Equatable, Sendable {
  /// The host cannot run sandboxes (a missing binary, a cgroup that cannot be written).
  case host(String)
  case poolFull
  case userLimit(Int)
}

/// What one run needs.
struct SandboxRun: Sendable {
  var user: UUID
  /// Files for the working directory, the program's among them.
  var files: [(name: String, content: [UInt8])]
  var stdin: [UInt8]
  /// Commands run in turn (a compile step, then the program); a stage that fails ends the run.
  var stages: [[String]]
  var environment: [String: String]
  var timeout: Duration
  var memoryBytes: Int
  var cpuMillis: Int
  var cpuSeconds: Int
  var maxOutputBytes: Int
}

/// How one run ended.
struct SandboxOutcome: Sendable {
  enum Ending: Sendable, Equatable {
    /// The last stage ran and exited (code) or was killed (signal).
    case exited(code: Int32, signal: Int32)
    /// A stage before the last failed (a compile step).
    case stageFailed(stage: Int, code: Int32)
    case timedOut
    case cancelled
    case outputLimit
    case memoryLimit
    /// The sandbox itself failed: the launcher or bubblewrap said why on stderr.
    case sandboxFailed(String)

    /// For metrics.
    var name: String {
      switch self {
      case .exited(let code, let signal): signal != 0 ? "signal" : code == 0 ? "success" : "exit_code"
      case .stageFailed: "compile_error"
      case .timedOut: "timeout"
      case .cancelled: "cancelled"
      case .outputLimit: "output_limit"
      case .memoryLimit: "memory_limit"
      case .sandboxFailed: "sandbox_error"
      }
    }
  }

  var ending: Ending
  var stdout: [UInt8] = []
  var stderr: [UInt8] = []
  var stdoutTruncated = false
  var stderrTruncated = false
  var outputs: [(name: String, content: [UInt8])] = []
  var outputsTruncated = false
  var elapsed: Duration = .zero
  var peakMemoryBytes: Int?
  var cpuNanoseconds: Int?
  /// A timed-out run was computing as its time ran out (its threads on a CPU, waiting for one or
  /// held back by its CPU quota), not waiting: a CPU limit rather than a wait.
  var computingAtTimeout = false
  /// Which slot (uid) ran it.
  var slot: Int = 0
}

/// Runs programs in bubblewrap sandboxes: namespaces (user, pid, ipc, uts, cgroup, mount,
/// network), a read-only /usr and a size-capped private tmpfs, a cleared environment, the
/// launcher's rlimits, seccomp filter and unprivileged slot uid, and a cgroup per run for memory,
/// CPU and processes. A wall-clock timer, the caller's cancellation and the output cap each kill
/// the whole process tree; nothing outlives a run.
public final class Sandbox: Sendable {
  let configuration: SandboxConfiguration
  let cgroups: CgroupHost?
  let pool: SandboxPool
  /// Where processes are started: one thread that lives as long as the sandbox. The launcher asks
  /// for SIGKILL when its parent dies, and on Linux the parent is the thread that started it; a
  /// pool thread that exits when idle would kill a run mid-way.
  let spawner: NIOThreadPool
  let group: any EventLoopGroup
  let logger: Logger
  /// Whether slots get uids of their own (the service runs as root).
  let dropsPrivileges: Bool
  let metrics: SandboxMetrics
  private let runCounter = NIOLockedValueBox<UInt64>(0)

  /// Checks the host and prepares the cgroups. Throws `SandboxError.host` where runs could not be
  /// contained: no bubblewrap or launcher, or no memory limit without SANDBOX_ALLOW_WEAK_LIMITS.
  public init(configuration: SandboxConfiguration, logger: Logger, metrics: any MetricsFactory = MetricsSystem.factory) throws {
    for (path, what) in [(configuration.bwrap, "bubblewrap"), (configuration.launcher, "the sandbox launcher")]
    where access(path, X_OK) != 0 {
      throw SandboxError.host("\(what) is not at \(path) (scripts/install-deps.sh installs it; SANDBOX_BWRAP, SANDBOX_EXEC)")
    }
    signal(SIGPIPE, SIG_IGN)
    // Each sandbox its own directory (one process may hold several: tests).
    let label = "code-sandbox-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    CgroupHost.removeStale(root: configuration.cgroupRoot, prefix: "code-sandbox-")
    let cgroups = CgroupHost.detect(root: configuration.cgroupRoot, label: label)
    if cgroups == nil && !configuration.allowWeakLimits {
      throw SandboxError.host(
        "no writable cgroup memory controller here, so runs' memory cannot be limited; run as root on a host with cgroups, or set SANDBOX_ALLOW_WEAK_LIMITS=1 to run without memory and CPU limits")
    }
    self.configuration = configuration
    self.cgroups = cgroups
    self.dropsPrivileges = geteuid() == 0
    self.metrics = SandboxMetrics(
      factory: metrics, cgroup: cgroups?.version.rawValue ?? "none", uids: self.dropsPrivileges ? "per-slot" : "shared")
    self.pool = SandboxPool(
      size: configuration.poolSize, queueSize: configuration.queueSize, perUser: configuration.perUser, metrics: self.metrics)
    self.spawner = NIOThreadPool(numberOfThreads: 1)
    self.spawner.start()
    self.group = MultiThreadedEventLoopGroup.singleton
    self.logger = logger
    logger.notice(
      "Sandbox ready",
      metadata: [
        "limits": "\(cgroups?.description ?? "none: SANDBOX_ALLOW_WEAK_LIMITS=1, no memory or CPU limits")",
        "slots": "\(configuration.poolSize)", "queue": "\(configuration.queueSize)",
        "uids": "\(self.dropsPrivileges ? "\(configuration.uidBase)…\(configuration.uidBase + configuration.poolSize - 1)" : "the service's own (not root)")",
      ])
  }

  /// What isolation this host gives, for health details and logs.
  public var isolation: String {
    "bubblewrap, seccomp, \(self.cgroups?.description ?? "no cgroup limits"), \(self.dropsPrivileges ? "a uid per slot" : "the service's uid")"
  }

  public func shutdown() {
    try? self.spawner.syncShutdownGracefully()
    self.cgroups?.removeAll()
  }

  /// Runs in a slot, waiting for one if needed. `onOutput` sees stdout (1) and stderr (2) as
  /// they are written, within the caps.
  func run(
    _ run: SandboxRun, onStart: @escaping @Sendable (Int) async -> Void = { _ in },
    onOutput: @escaping @Sendable (Int, ByteBuffer) async -> Void = { _, _ in }
  ) async throws -> SandboxOutcome {
    try await self.pool.withSlot(user: run.user) { slot in
      await onStart(slot)
      return try await self.run(run, slot: slot, onOutput: onOutput)
    }
  }

  private func run(_ run: SandboxRun, slot: Int, onOutput: @escaping @Sendable (Int, ByteBuffer) async -> Void) async throws -> SandboxOutcome {
    let number = self.runCounter.withLockedValue { value -> UInt64 in
      value &+= 1
      return value
    }
    let cgroup = try self.cgroups?.makeRun(
      "run-\(number)", memoryBytes: run.memoryBytes, cpuMillis: run.cpuMillis, maxProcesses: self.configuration.maxProcesses)
    defer {
      if let cgroup {
        if !cgroup.killAll() { self.logger.error("A run's processes outlived it", metadata: ["cgroup": "\(cgroup.directories)"]) }
        cgroup.remove()
      }
    }
    let process = try await self.spawn(self.arguments(run, slot: slot, cgroup: cgroup))
    let started = ContinuousClock.now
    let state = RunState(maxOutputBytes: run.maxOutputBytes)

    var buffer = ByteBuffer()
    for file in run.files {
      buffer.writeString("F \(file.name.utf8.count) \(file.content.count)\n\(file.name)")
      buffer.writeBytes(file.content)
    }
    buffer.writeString("E\n")
    let inputs = buffer
    let stdin = ByteBuffer(bytes: run.stdin)

    let report: [UInt8]
    do {
      report = try await self.exchange(
        process, run: run, state: state, inputs: inputs, stdin: stdin, cgroup: cgroup, onOutput: onOutput)
    } catch {
      // A pipe failed (or the call was cancelled): nothing of the run may go on.
      process.kill()
      _ = await process.wait()
      throw error
    }
    let status = await process.wait()
    return self.outcome(run: run, slot: slot, started: started, state: state, report: report, status: status, cgroup: cgroup)
  }

  /// Feeds the run its inputs and stdin and reads its output and report until they end, the
  /// clock runs out, the output goes over its cap or the caller cancels (the last three kill it).
  private func exchange(
    _ process: SandboxProcess, run: SandboxRun, state: RunState, inputs: ByteBuffer, stdin: ByteBuffer, cgroup: Cgroup?,
    onOutput: @escaping @Sendable (Int, ByteBuffer) async -> Void
  ) async throws -> [UInt8] {
    try await withTaskCancellationHandler {
      try await withThrowingTaskGroup(of: [UInt8]?.self) { tasks in
        tasks.addTask {
          await writePipe(process.inputs, group: self.group, inputs)
          return nil
        }
        tasks.addTask {
          await writePipe(process.stdin, group: self.group, stdin)
          return nil
        }
        for (stream, fd) in [(1, process.stdout), (2, process.stderr)] {
          tasks.addTask {
            try await readPipe(fd, group: self.group) { chunk in
              if let accepted = state.accept(stream: stream, chunk) {
                await onOutput(stream, accepted)
              }
              if state.overLimit { process.kill() }
            }
            return nil
          }
        }
        tasks.addTask {
          var report: [UInt8] = []
          try await readPipe(process.report, group: self.group) { chunk in
            // At most the output files' cap and a few headers; more is a broken init.
            if report.count + chunk.readableBytes <= self.configuration.maxOutputFileBytes + 1 << 20 {
              report += chunk.readableBytesView
            } else {
              process.kill()
            }
          }
          return report
        }
        // The wall clock: kills the launcher (and so the sandbox) at the limit. Over the last
        // moments before it, how much CPU the run's threads wanted tells a computation from a
        // wait (at least half the window: computing).
        let timer = Task {
          let window = min(Duration.milliseconds(200), run.timeout / 2)
          try await Task.sleep(for: run.timeout - window)
          let before = cgroup?.cpuDemandNanoseconds
          try await Task.sleep(for: window)
          let after = cgroup?.cpuDemandNanoseconds
          var computing = false
          if let before, let after { computing = Double(after - before) >= 0.5 * Double(window.components.attoseconds / 1_000_000_000 + window.components.seconds * 1_000_000_000) }
          state.timedOut(computing: computing)
          process.kill()
        }
        defer { timer.cancel() }
        var report: [UInt8] = []
        while let result = try await tasks.next() {
          if let result { report = result }
        }
        return report
      }
    } onCancel: {
      state.cancelled()
      process.kill()
    }
  }

  /// How the run ended, from what the state, the init's report, the cgroup and the launcher's
  /// status say.
  private func outcome(
    run: SandboxRun, slot: Int, started: ContinuousClock.Instant, state: RunState, report: [UInt8], status: CInt, cgroup: Cgroup?
  ) -> SandboxOutcome {
    var outcome = SandboxOutcome(ending: .sandboxFailed("the sandbox ended without a report"))
    outcome.elapsed = ContinuousClock.now - started
    outcome.slot = slot
    (outcome.stdout, outcome.stdoutTruncated, outcome.stderr, outcome.stderrTruncated) = state.outputs
    outcome.peakMemoryBytes = cgroup?.peakMemoryBytes
    outcome.cpuNanoseconds = cgroup?.cpuNanoseconds
    let parsed = Self.parse(report: report)
    outcome.outputs = parsed.files
    outcome.outputsTruncated = parsed.truncated
    if state.wasCancelled {
      outcome.ending = .cancelled
    } else if state.didTimeOut {
      outcome.ending = .timedOut
      outcome.computingAtTimeout = state.wasComputingAtTimeout
    } else if state.overLimit {
      outcome.ending = .outputLimit
    } else if cgroup?.oomKilled == true {
      outcome.ending = .memoryLimit
    } else if let exit = parsed.exit {
      outcome.ending = exit.stage < run.stages.count - 1 ? .stageFailed(stage: exit.stage, code: exit.code) : .exited(code: exit.code, signal: exit.signal)
    } else {
      let launcher = (status & 0x7f) == 0 ? "exit status \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
      let said = String(decoding: outcome.stderr.suffix(400), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
      outcome.ending = .sandboxFailed("the sandbox failed (\(launcher))\(said.isEmpty ? "" : ": \(said)")")
      self.logger.error("A sandbox failed", metadata: ["status": "\(launcher)", "stderr": "\(said)"])
    }
    self.metrics.ended(outcome.ending.name)
    return outcome
  }

  /// Starts the launcher with `arguments`, on the spawner's thread.
  func spawn(_ arguments: [String]) async throws -> SandboxProcess {
    let launcher = self.configuration.launcher
    return try await self.spawner.runIfActive { try SandboxProcess(executable: launcher, arguments: arguments) }
  }

  /// The launcher's arguments, then bubblewrap's, then the init's.
  func arguments(_ run: SandboxRun, slot: Int, cgroup: Cgroup?) -> [String] {
    let environment = ["PATH": "/usr/bin:/bin", "HOME": "/work", "TMPDIR": "/tmp", "LANG": "C.UTF-8"].merging(run.environment) { $1 }
    var initArguments = [
      "/sandbox/init", "init", "--max-files", String(self.configuration.maxOutputFiles), "--max-bytes",
      String(self.configuration.maxOutputFileBytes), "--",
    ]
    for (index, stage) in run.stages.enumerated() {
      if index > 0 { initArguments.append("--then") }
      initArguments += stage
    }
    return self.launchArguments(uidOffset: slot, cgroup: cgroup, cpuSeconds: run.cpuSeconds, processes: self.configuration.maxProcesses)
      + self.bubblewrapArguments(environment: environment, binds: [(self.configuration.launcher, "/sandbox/init")])
      + initArguments
  }

  /// `sandbox-exec launch …`: the cgroup, rlimits, and the uid `uidBase + uidOffset` (as root).
  func launchArguments(uidOffset: Int, cgroup: Cgroup?, cpuSeconds: Int, processes: Int) -> [String] {
    var launch = ["launch"]
    if self.dropsPrivileges {
      let id = String(self.configuration.uidBase + uidOffset)
      launch += ["--uid", id, "--gid", id]
    }
    for file in cgroup?.procsFiles ?? [] { launch += ["--cgroup-procs", file] }
    return launch + [
      "--cpu-seconds", String(cpuSeconds), "--nproc", String(processes),
      "--fsize", String(self.configuration.tmpMegabytes << 20), "--nofile", "256", "--bwrap", self.configuration.bwrap, "--",
    ]
  }

  /// bubblewrap's namespaces and mounts, with `binds` (host file, sandbox path) read-only.
  func bubblewrapArguments(environment: [String: String], binds: [(String, String)]) -> [String] {
    var bwrap = [
      "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup", "--unshare-net",
      "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL",
      "--hostname", "sandbox",
      "--ro-bind", "/usr", "/usr",
      "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
      "--symlink", "usr/sbin", "/sbin",
    ]
    // What the runtimes read from /etc: the loader's cache, Debian's alternatives (libblas…),
    // matplotlib's rc file and fonts.
    for path in ["/etc/ld.so.cache", "/etc/alternatives", "/etc/matplotlibrc", "/etc/fonts"] where access(path, R_OK) == 0 {
      bwrap += ["--ro-bind", path, path]
    }
    for (source, target) in binds { bwrap += ["--ro-bind", source, target] }
    bwrap += [
      "--proc", "/proc", "--dev", "/dev",
      "--size", String(self.configuration.tmpMegabytes << 20), "--tmpfs", "/tmp",
      "--size", String(self.configuration.tmpMegabytes << 20), "--tmpfs", "/work",
      // The root bubblewrap built (a tmpfs holding the mount points) becomes read-only: /tmp and
      // /work are the only writable places.
      "--remount-ro", "/",
      "--chdir", "/work",
    ]
    for (name, value) in environment.sorted(by: { $0.key < $1.key }) { bwrap += ["--setenv", name, value] }
    return bwrap
  }

  /// The init's report: "X code signal stage", "F namelength size" + name + bytes, "T", "E".
  static func parse(report: [UInt8]) -> (exit: (code: Int32, signal: Int32, stage: Int)?, files: [(name: String, content: [UInt8])], truncated: Bool) {
    var exit: (Int32, Int32, Int)?
    var files: [(String, [UInt8])] = []
    var truncated = false
    var index = 0
    func line() -> [Substring]? {
      guard let end = report[index...].firstIndex(of: UInt8(ascii: "\n")), end - index <= 64 else { return nil }
      let text = String(decoding: report[index..<end], as: UTF8.self)
      index = end + 1
      return text.split(separator: " ")
    }
    while index < report.count, let fields = line(), let kind = fields.first {
      switch kind {
      case "X" where fields.count == 4:
        if let code = Int32(fields[1]), let signal = Int32(fields[2]), let stage = Int(fields[3]) { exit = (code, signal, stage) }
      case "F" where fields.count == 3:
        guard let nameLength = Int(fields[1]), let size = Int(fields[2]), nameLength > 0, nameLength <= 256, size >= 0,
          report.count - index >= nameLength + size
        else { return (exit, files, true) }
        let name = String(decoding: report[index..<index + nameLength], as: UTF8.self)
        files.append((name, Array(report[index + nameLength..<index + nameLength + size])))
        index += nameLength + size
      case "T": truncated = true
      case "E": return (exit, files, truncated)
      default: return (exit, files, true)
      }
    }
    return (exit, files, truncated)
  }
}

/// What the readers, the timer and the canceller share during one run.
final class RunState: Sendable {
  private struct Streams {
    var stdout: [UInt8] = []
    var stderr: [UInt8] = []
    var stdoutTruncated = false
    var stderrTruncated = false
    var overLimit = false
    var timedOut = false
    var computingAtTimeout = false
    var cancelled = false
  }

  private let streams = NIOLockedValueBox(Streams())
  let maxOutputBytes: Int

  init(maxOutputBytes: Int) {
    self.maxOutputBytes = maxOutputBytes
  }

  /// Keeps what fits under the cap and returns it; past the cap the run is over its limit.
  func accept(stream: Int, _ chunk: ByteBuffer) -> ByteBuffer? {
    self.streams.withLockedValue { streams -> ByteBuffer? in
      let kept = stream == 1 ? streams.stdout.count : streams.stderr.count
      let room = max(0, self.maxOutputBytes - kept)
      let take = min(room, chunk.readableBytes)
      if take < chunk.readableBytes {
        streams.overLimit = true
        if stream == 1 { streams.stdoutTruncated = true } else { streams.stderrTruncated = true }
      }
      guard take > 0, let slice = chunk.getSlice(at: chunk.readerIndex, length: take) else { return nil }
      if stream == 1 { streams.stdout += slice.readableBytesView } else { streams.stderr += slice.readableBytesView }
      return slice
    }
  }

  var overLimit: Bool { self.streams.withLockedValue { $0.overLimit } }
  var didTimeOut: Bool { self.streams.withLockedValue { $0.timedOut } }
  var wasCancelled: Bool { self.streams.withLockedValue { $0.cancelled } }
  var wasComputingAtTimeout: Bool { self.streams.withLockedValue { $0.computingAtTimeout } }
  func timedOut(computing: Bool) {
    self.streams.withLockedValue {
      $0.timedOut = true
      $0.computingAtTimeout = computing
    }
  }
  func cancelled() { self.streams.withLockedValue { $0.cancelled = true } }

  var outputs: ([UInt8], Bool, [UInt8], Bool) {
    self.streams.withLockedValue { ($0.stdout, $0.stdoutTruncated, $0.stderr, $0.stderrTruncated) }
  }
}
