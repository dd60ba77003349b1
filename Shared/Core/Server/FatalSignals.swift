internal import Foundation
internal import GRPCRuntime
internal import NIOCore
internal import NIOPosix

/// Makes a crash end the process, at once and visibly.
///
/// Swift's runtime answers a fatal signal by suspending every thread and starting its
/// backtracer; when the crashed thread's stack is exhausted, that handler faults again and the
/// process stays paused for good, holding its port, accepting connections and answering none,
/// with a live pid that no supervisor restarts. These handlers replace it: on SIGSEGV,
/// SIGBUS, SIGILL, SIGFPE, SIGTRAP (Swift's traps) or SIGABRT they write one critical JSON log
/// line to stderr and end the process by the same signal, so `platform.sh`, compose and
/// Kubernetes see it die and restart it.
///
/// A stack overflow can run a handler only on an alternate signal stack, which is per thread:
/// the main thread and the runtime's event loops (where handlers run) get one. A thread without
/// one still dies of the signal, only without the log line.
public enum FatalSignals {
  static let signals: [(number: Int32, name: String)] = [
    (SIGSEGV, "SIGSEGV"), (SIGBUS, "SIGBUS"), (SIGILL, "SIGILL"), (SIGFPE, "SIGFPE"), (SIGTRAP, "SIGTRAP"), (SIGABRT, "SIGABRT"),
  ]
  /// The log line of each signal, made before any crash: a signal handler may not allocate.
  nonisolated(unsafe) private static var lines: [Int32: UnsafeBufferPointer<UInt8>] = [:]
  nonisolated(unsafe) private static var installed = false

  /// Installs the handlers (once; later calls do nothing) and gives the calling thread and
  /// the runtime's event loops alternate signal stacks.
  /// - Parameter service: the `service` field of the log line.
  public static func install(service: String) {
    guard !installed else { return }
    installed = true
    for (number, name) in signals {
      var line = #"{"level":"critical","service":"#
      JSONLogHandler.appendQuoted(service, to: &line)
      line += #","message":"fatal signal \#(number) (\#(name)): the process exits"}"# + "\n"
      let bytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: line.utf8.count)
      _ = bytes.initialize(from: line.utf8)
      lines[number] = UnsafeBufferPointer(bytes)
    }
    for (number, _) in signals {
      var action = sigaction()
      action.__sigaction_handler.sa_handler = { signal in FatalSignals.handle(signal) }
      action.sa_flags = SA_ONSTACK | Int32(bitPattern: SA_RESETHAND)
      sigemptyset(&action.sa_mask)
      sigaction(number, &action, nil)
    }
    installAlternateStack()
    for loop in RuntimeEventLoops.shared.makeIterator() {
      loop.execute { installAlternateStack() }
    }
  }

  /// An alternate signal stack for the calling thread, kept for the thread's life.
  static func installAlternateStack() {
    let size = 64 * 1024
    var stack = stack_t()
    stack.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
    stack.ss_size = size
    stack.ss_flags = 0
    sigaltstack(&stack, nil)
  }

  /// Async-signal-safe: a write, then the signal again with its default action (which ends
  /// the process); `_exit` if that did not (a container's PID 1 ignores default actions).
  private static func handle(_ signal: Int32) {
    if let line = lines[signal] {
      var written = 0
      while written < line.count {
        let result = write(2, line.baseAddress! + written, line.count - written)
        if result > 0 {
          written += result
        } else if result < 0 && errno == EINTR {
          continue
        } else {
          break
        }
      }
    }
    Foundation.signal(signal, SIG_DFL)
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, signal)
    raise(signal)
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
    _exit(128 + signal)
  }
}
