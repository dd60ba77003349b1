internal import Foundation
internal import NIOCore
internal import NIOPosix
internal import NIOConcurrencyHelpers

/// The launcher (`sandbox-exec launch … -- bwrap …`) as a child process, with its five pipes:
/// stdin, stdout, stderr, the report (fd 3: the exit record and the output files) and the input
/// files (fd 4).
final class SandboxProcess: Sendable {
  let pid: pid_t
  let stdin: CInt
  let stdout: CInt
  let stderr: CInt
  let report: CInt
  let inputs: CInt

  /// Starts `executable` with `arguments`; the child gets the pipes as fds 0–4 and nothing else,
  /// its own process group, and every signal at its default (the service ignores SIGPIPE).
  init(executable: String, arguments: [String]) throws {
    // pipe2 is not in Swift's Glibc: pipe, then FD_CLOEXEC, under the lock every spawn holds,
    // so no other run's child inherits a pipe between the two (and keeps it open).
    let spawned = try Self.spawnLock.withLock { () throws -> (pid_t, [CInt]) in
      var fds: [CInt] = []
      var ok = false
      defer { if !ok { for fd in fds { close(fd) } } }
      for _ in 0..<5 {
        var pair: [CInt] = [-1, -1]
        guard pipe(&pair) == 0 else { throw SandboxError.host("pipe: \(String(cString: strerror(errno)))") }
        fds += pair
        _ = fcntl(pair[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pair[1], F_SETFD, FD_CLOEXEC)
      }
      // Pipe k is fds[2k] (read end), fds[2k + 1] (write end). The child reads stdin (0) and the
      // input files (4); it writes stdout, stderr and the report (1–3).
      let childEnds = [fds[0], fds[3], fds[5], fds[7], fds[8]]
      var actions = posix_spawn_file_actions_t()
      posix_spawn_file_actions_init(&actions)
      defer { posix_spawn_file_actions_destroy(&actions) }
      for (target, fd) in childEnds.enumerated() {
        posix_spawn_file_actions_adddup2(&actions, fd, CInt(target))
      }
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
      posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
      let argv = ([executable] + arguments).map { strdup($0) } + [nil]
      defer { for pointer in argv { free(pointer) } }
      let environment: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/bin:/bin"), nil]
      defer { for pointer in environment { free(pointer) } }
      var pid: pid_t = 0
      let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environment)
      guard status == 0 else { throw SandboxError.host("cannot start \(executable): \(String(cString: strerror(status)))") }
      for fd in childEnds { close(fd) }
      ok = true
      return (pid, [fds[1], fds[2], fds[4], fds[6], fds[9]])
    }
    self.pid = spawned.0
    (self.stdin, self.stdout, self.stderr, self.report, self.inputs) = (spawned.1[0], spawned.1[1], spawned.1[2], spawned.1[3], spawned.1[4])
  }

  private static let spawnLock = NIOLock()

  /// Kills the launcher (bubblewrap): its --die-with-parent takes the whole sandbox with it.
  func kill() {
    Glibc.kill(self.pid, SIGKILL)
  }

  /// Waits for the launcher to exit and returns its wait status (-1 if it could not be waited
  /// for). On a thread of its own, which no shutdown stops: every child is reaped, because a
  /// zombie confuses anything else in the process that waits for children of its own.
  func wait() async -> CInt {
    let pid = self.pid
    return await withCheckedContinuation { continuation in
      Thread.detachNewThread {
        var status: CInt = 0
        while waitpid(pid, &status, 0) < 0 {
          if errno != EINTR {
            status = -1
            break
          }
        }
        continuation.resume(returning: status)
      }
    }
  }
}

/// Reads a pipe to its end, chunk by chunk.
func readPipe(_ fd: CInt, group: any EventLoopGroup, _ body: @escaping (ByteBuffer) async throws -> Void) async throws {
  let channel = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(input: fd) { channel in
    channel.eventLoop.makeCompletedFuture {
      try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
    }
  }
  try await channel.executeThenClose { inbound, _ in
    for try await chunk in inbound { try await body(chunk) }
  }
}

/// Writes `data` to a pipe and closes it; a reader that went away is not an error (the program
/// need not read its stdin).
func writePipe(_ fd: CInt, group: any EventLoopGroup, _ data: ByteBuffer) async {
  do {
    let channel = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(output: fd) { channel in
      channel.eventLoop.makeCompletedFuture {
        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
      }
    }
    try await channel.executeThenClose { _, outbound in
      if data.readableBytes > 0 { try await outbound.write(data) }
    }
  } catch {
    // EPIPE: the program exited or closed its stdin first.
  }
}
