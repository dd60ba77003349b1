internal import Foundation
internal import Synchronization

/// One run of an external program: what to start, with which limits on its output and time.
struct ToolInvocation: Sendable {
  /// The absolute path of the program (no `PATH` search).
  var executable: String
  var arguments: [String]
  /// The child's whole environment, `NAME=value`.
  var environment: [String]
  /// Wall-clock limit: past it the run is killed (see `Termination`).
  var timeout: Duration
  /// Standard output beyond this many bytes kills the run (`outputCapped`).
  var maxOutputBytes: Int
  /// Standard error is kept up to this many bytes (diagnostics only) and drained past it.
  var maxErrorBytes: Int = 4096
}

/// How a tool run ended.
enum ToolTermination: Equatable, Sendable {
  /// `exit(code)`.
  case exited(Int32)
  /// Killed by `signal`.
  case signaled(Int32)
  /// The wait status could not be read (should not happen).
  case unknown
}

/// What a finished (always reaped) tool run produced.
struct ToolRunResult: Sendable {
  var termination: ToolTermination
  /// Standard output, at most `maxOutputBytes` bytes.
  var standardOutput: [UInt8]
  /// The first `maxErrorBytes` bytes of standard error.
  var standardErrorPrefix: [UInt8]
  /// The run was killed at the wall-clock timeout.
  var timedOut: Bool
  /// The run was killed because its standard output passed `maxOutputBytes`.
  var outputCapped: Bool
  /// The run was killed because the calling task was cancelled.
  var cancelled: Bool
  /// From the spawn to the reap.
  var elapsed: Duration
}

/// The program could not be started at all.
struct ToolLaunchError: Error, Sendable {
  var reason: String
}

/// A flag the task cancellation handler sets and the runner thread polls.
final class ToolCancellation: Sendable {
  private let flag = Atomic<Bool>(false)

  /// Asks the run to kill its process group.
  func cancel() { self.flag.store(true, ordering: .relaxed) }

  var isCancelled: Bool { self.flag.load(ordering: .relaxed) }
}

/// Runs a program as a child process with a wall-clock timeout and capped output, on a thread of
/// its own.
///
/// The child gets /dev/null as stdin, two pipes as stdout and stderr and nothing else we opened
/// (the pipes are made close-on-exec under a lock every spawn holds, so no concurrent run's child
/// inherits them), its own process group (so the timeout kills everything it started that stayed
/// in the group) and every signal at its default. The runner thread reads both pipes with poll(2),
/// stops the run at the deadline, on the output cap or on cancellation (see `Termination`), and
/// always reaps the child: every kill happens before the reap, so a recycled pid is never
/// signalled.
enum ToolProcess {
  /// Runs `invocation` on a new thread; cancelling the task kills the run.
  /// - Throws: `ToolLaunchError` when the program could not be started.
  static func run(_ invocation: ToolInvocation) async throws(ToolLaunchError) -> ToolRunResult {
    let cancellation = ToolCancellation()
    let outcome = await withTaskCancellationHandler {
      await withCheckedContinuation {
        (continuation: CheckedContinuation<Result<ToolRunResult, ToolLaunchError>, Never>) in
        Thread.detachNewThread {
          continuation.resume(
            returning: Result { () throws(ToolLaunchError) -> ToolRunResult in
              try Self.runBlocking(invocation, cancellation: cancellation)
            }
          )
        }
      }
    } onCancel: {
      cancellation.cancel()
    }
    return try outcome.get()
  }

  /// Runs `invocation` on the calling thread and returns when the child has been reaped.
  /// - Throws: `ToolLaunchError` when the program could not be started.
  static func runBlocking(_ invocation: ToolInvocation, cancellation: ToolCancellation?) throws(ToolLaunchError)
    -> ToolRunResult
  {
    let clock = ContinuousClock()
    let start = clock.now
    let deadline = start.advanced(by: invocation.timeout)
    let (pid, outputFD, errorFD) = try Self.spawn(invocation)

    var output: [UInt8] = []
    var errorPrefix: [UInt8] = []
    var timedOut = false
    var outputCapped = false
    var cancelled = false
    var termination = Termination(pid: pid)

    var openFDs: [CInt] = [outputFD, errorFD]
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    readLoop: while !openFDs.isEmpty {
      if cancellation?.isCancelled == true {
        cancelled = true
        termination.begin(now: clock.now)
        break
      }
      let remaining = deadline - clock.now
      if remaining <= .zero {
        timedOut = true
        termination.begin(now: clock.now)
        break
      }
      // Wake up at least every 100 ms to notice a cancellation.
      var pollFDs = openFDs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
      let ready = poll(&pollFDs, nfds_t(pollFDs.count), CInt(min(remaining.milliseconds, 100)))
      if ready < 0 {
        if errno == EINTR { continue }
        termination.begin(now: clock.now)
        break
      }
      for entry in pollFDs where entry.revents != 0 {
        // Drain what is there; a read of 0 is the end of the pipe.
        while true {
          let count = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
          if count > 0 {
            if entry.fd == outputFD {
              let room = invocation.maxOutputBytes - output.count
              output.append(contentsOf: buffer[0..<min(count, max(room, 0))])
              if count > room {
                outputCapped = true
                termination.begin(now: clock.now)
                break readLoop
              }
            } else if errorPrefix.count < invocation.maxErrorBytes {
              errorPrefix.append(contentsOf: buffer[0..<min(count, invocation.maxErrorBytes - errorPrefix.count)])
            }
            continue
          }
          if count < 0 && errno == EINTR { continue }
          if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
          // End of file or an error: this pipe is done.
          close(entry.fd)
          openFDs.removeAll { $0 == entry.fd }
          break
        }
      }
    }
    for fd in openFDs { close(fd) }

    // The pipes are closed; the child may still run (it closed them, or we stopped reading).
    // Poll for its exit: until the deadline, then through the termination's grace period.
    var status: CInt = 0
    var pause: UInt32 = 500
    while true {
      let result = waitpid(pid, &status, WNOHANG)
      if result == pid { break }
      if result < 0 {
        if errno == EINTR { continue }
        status = -1
        break
      }
      if !termination.hasBegun {
        if cancellation?.isCancelled == true {
          cancelled = true
          termination.begin(now: clock.now)
        } else if clock.now >= deadline {
          timedOut = true
          termination.begin(now: clock.now)
        }
      } else {
        termination.escalateIfDue(now: clock.now)
      }
      usleep(pause)
      pause = min(pause * 2, 20_000)
    }
    return ToolRunResult(
      termination: Self.decodeWaitStatus(status), standardOutput: output, standardErrorPrefix: errorPrefix,
      timedOut: timedOut, outputCapped: outputCapped, cancelled: cancelled, elapsed: clock.now - start
    )
  }

  /// Serializes the window between pipe() and FD_CLOEXEC with every other spawn of this module.
  private static let spawnLock = Mutex<Void>(())

  /// Starts the child; returns its pid and the read ends of its stdout and stderr (non-blocking).
  private static func spawn(_ invocation: ToolInvocation) throws(ToolLaunchError) -> (pid_t, CInt, CInt) {
    try Self.spawnLock.withLock { _ throws(ToolLaunchError) -> (pid_t, CInt, CInt) in
      var fds: [CInt] = []
      var started = false
      defer { if !started { for fd in fds { close(fd) } } }
      for _ in 0..<2 {
        var pair: [CInt] = [-1, -1]
        guard pipe(&pair) == 0 else { throw ToolLaunchError(reason: "pipe: \(String(cString: strerror(errno)))") }
        fds += pair
        _ = fcntl(pair[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pair[1], F_SETFD, FD_CLOEXEC)
      }
      // fds: [stdout read, stdout write, stderr read, stderr write].
      var actions = posix_spawn_file_actions_t()
      posix_spawn_file_actions_init(&actions)
      defer { posix_spawn_file_actions_destroy(&actions) }
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
      posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
      posix_spawn_file_actions_adddup2(&actions, fds[3], 2)
      var attributes = posix_spawnattr_t()
      posix_spawnattr_init(&attributes)
      defer { posix_spawnattr_destroy(&attributes) }
      var noSignals = sigset_t()
      sigemptyset(&noSignals)
      var allSignals = sigset_t()
      sigfillset(&allSignals)
      posix_spawnattr_setsigmask(&attributes, &noSignals)
      posix_spawnattr_setsigdefault(&attributes, &allSignals)
      posix_spawnattr_setpgroup(&attributes, 0)
      posix_spawnattr_setflags(
        &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
      let argv = ([invocation.executable] + invocation.arguments).map { strdup($0) } + [nil]
      defer { for pointer in argv { free(pointer) } }
      let environment = invocation.environment.map { strdup($0) } + [nil]
      defer { for pointer in environment { free(pointer) } }
      var pid: pid_t = 0
      let status = posix_spawn(&pid, invocation.executable, &actions, &attributes, argv, environment)
      guard status == 0 else {
        throw ToolLaunchError(reason: "cannot start \(invocation.executable): \(String(cString: strerror(status)))")
      }
      close(fds[1])
      close(fds[3])
      for fd in [fds[0], fds[2]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
      started = true
      return (pid, fds[0], fds[2])
    }
  }

  /// Decodes a wait status (the WIFEXITED / WIFSIGNALED macros, which Swift does not import).
  private static func decodeWaitStatus(_ status: CInt) -> ToolTermination {
    guard status != -1 else { return .unknown }
    let signal = status & 0x7f
    if signal == 0 { return .exited((status >> 8) & 0xff) }
    if signal != 0x7f { return .signaled(signal) }
    return .unknown
  }
}

/// Stopping a run without leaving orphans behind.
///
/// SIGKILL on bubblewrap itself would orphan its sandbox init (the child it forks into the new
/// pid namespace): the init dies too (`--die-with-parent`), but as a child of PID 1, which must
/// reap it, and in a container PID 1 is often the service or an init that does not. So the
/// child's own children (read from /proc) are killed first: bubblewrap sees its child die, exits
/// and is reaped by us; the kernel empties the namespace. If that does not end the child within a
/// second (no children yet, /proc unreadable, a tool that ignores its child's death), the whole
/// process group gets SIGKILL. Every signal is sent before the child is reaped, so its pid (and
/// group id) cannot have been reused; its children's pids are read just before they are
/// signalled (they could only be recycled in that instant if they died and were reaped by the
/// child in between, after the whole pid space wrapped).
private struct Termination {
  let pid: pid_t
  /// When the first step was taken; nil while the run goes on.
  private var began: ContinuousClock.Instant?
  private var escalated = false

  init(pid: pid_t) {
    self.pid = pid
  }

  var hasBegun: Bool { self.began != nil }

  /// Kills the child's children, or the group at once when there are none.
  mutating func begin(now: ContinuousClock.Instant) {
    guard self.began == nil else { return }
    self.began = now
    let children = Self.children(of: self.pid)
    if children.isEmpty {
      self.escalate()
    } else {
      for child in children { kill(child, SIGKILL) }
    }
  }

  /// SIGKILLs the group once the grace period is over.
  mutating func escalateIfDue(now: ContinuousClock.Instant) {
    guard let began = self.began, !self.escalated, now - began >= .seconds(1) else { return }
    self.escalate()
  }

  private mutating func escalate() {
    guard !self.escalated else { return }
    self.escalated = true
    kill(-self.pid, SIGKILL)
    kill(self.pid, SIGKILL)
  }

  /// The pids in /proc/PID/task/PID/children (empty when unreadable).
  private static func children(of pid: pid_t) -> [pid_t] {
    guard let list = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else {
      return []
    }
    return list.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }.filter {
      $0 > 0
    }
  }
}

extension Duration {
  /// Whole milliseconds, rounded up, at least 0 (for poll(2)).
  fileprivate var milliseconds: Int {
    let (seconds, attoseconds) = self.components
    guard seconds >= 0 else { return 0 }
    let (product, overflow) = seconds.multipliedReportingOverflow(by: 1000)
    guard !overflow else { return Int(Int32.max) }
    return Int(product) + Int((attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
  }
}
