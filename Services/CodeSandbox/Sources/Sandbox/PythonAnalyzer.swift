internal import Foundation
public import Logging
internal import NIOPosix
internal import PlatformCore

/// Python's own parser (`ast`) as a resident helper in a sandbox of its own (bubblewrap,
/// seccomp, no network, the launcher's rlimits, an unprivileged uid, a 256 MiB cgroup): the
/// program under analysis is untrusted, and so is a parser fed with it. One request at a time:
/// a JSON line in, a JSON line out (`Analyzer/analyze.py`). A helper that dies, answers garbage
/// or takes over 3 s is killed and started again at the next request.
public actor PythonAnalyzer {
  private let sandbox: Sandbox
  private let script: String
  private let logger: Logger
  private var process: SandboxProcess?
  private var cgroup: Cgroup?
  private let io = NIOThreadPool(numberOfThreads: 1)

  static let timeout: Int32 = 3000  // ms per request
  static let maxAnswerBytes = 1 << 20

  public init?(sandbox: Sandbox, logger: Logger) {
    guard let script = Bundle.module.path(forResource: "analyze", ofType: "py", inDirectory: "Analyzer") else { return nil }
    self.sandbox = sandbox
    self.script = script
    self.logger = logger
    self.io.start()
  }

  public enum Answer: Sendable {
    case findings([SecurityFinding])
    /// The code does not parse (or is too deep to): the message and line.
    case unparsable(String, line: Int)
  }

  /// The findings on `code`, or nil when the helper could not answer (the caller falls back to
  /// the token analysis).
  public func analyze(_ code: String) async -> Answer? {
    let request = JSONValue.object(["code": .string(code)]).jsonText + "\n"
    do {
      let process = try await self.running()
      let line = try await self.io.runIfActive { try Self.exchange(request, stdin: process.stdin, stdout: process.stdout) }
      guard case .object(let fields) = try JSONValue(jsonText: line) else { throw SandboxError.host("not an object") }
      if let error = fields["error"]?.stringValue {
        var number = 0
        if case .number(let value)? = fields["line"] { number = Int(value) }
        return .unparsable(error, line: number)
      }
      guard case .array(let items)? = fields["findings"] else { throw SandboxError.host("no findings") }
      return .findings(items.compactMap { item in
        guard case .array(let parts) = item, parts.count == 5, let rule = parts[0].stringValue, let message = parts[2].stringValue,
          case .number(let severity) = parts[1], let level = SecurityFinding.Severity(rawValue: Int(severity)),
          case .number(let line) = parts[3], case .number(let column) = parts[4]
        else { return nil }
        return SecurityFinding(rule: rule, severity: level, message: message, line: Int(line), column: Int(column))
      })
    } catch {
      self.logger.warning("The Python analyser failed; restarting it", metadata: ["error": "\(error)"])
      self.stop()
      return nil
    }
  }

  /// Stops the helper for good (the service is stopping).
  public func shutdown() {
    self.stop()
    try? self.io.syncShutdownGracefully()
  }

  private func running() async throws -> SandboxProcess {
    if let process = self.process { return process }
    self.stop()
    let cgroup = try self.sandbox.cgroups?.makeRun(
      "analyzer-\(UInt32.random(in: 0...UInt32.max))", memoryBytes: 256 << 20, cpuMillis: 1000, maxProcesses: 16)
    let arguments = self.sandbox.launchArguments(
      uidOffset: self.sandbox.configuration.poolSize, cgroup: cgroup, cpuSeconds: 3600, processes: 16)
      + self.sandbox.bubblewrapArguments(environment: ["LANG": "C.UTF-8"], binds: [(self.script, "/sandbox/analyze.py")])
      + ["/usr/bin/python3", "-I", "/sandbox/analyze.py"]
    let process = try await self.sandbox.spawn(arguments)
    // Only its stdin and stdout are used; a helper writing to a closed stderr fails and is restarted.
    for fd in [process.stderr, process.report, process.inputs] { close(fd) }
    // Reaped the moment it exits, whoever ends it: a zombie child confuses anything in this
    // process that waits for children of its own.
    Task {
      _ = await process.wait()
      self.exited(process.pid)
    }
    self.process = process
    self.cgroup = cgroup
    return process
  }

  /// The helper exited: the next request starts another.
  private func exited(_ pid: pid_t) {
    guard self.process?.pid == pid else { return }
    self.stop(kill: false)  // reaped: its pid may already be another process's
  }

  private func stop(kill: Bool = true) {
    if let process = self.process {
      if kill { process.kill() }
      close(process.stdin)
      close(process.stdout)
    }
    self.cgroup?.killAll()
    self.cgroup?.remove()
    self.process = nil
    self.cgroup = nil
  }

  /// Writes the request, reads one line of answer (blocking, on the helper's own thread).
  private static func exchange(_ request: String, stdin: CInt, stdout: CInt) throws -> String {
    var bytes = Array(request.utf8)[...]
    while !bytes.isEmpty {
      let written = bytes.withUnsafeBytes { write(stdin, $0.baseAddress, $0.count) }
      guard written > 0 else { throw SandboxError.host("the analyser's stdin: \(String(cString: strerror(errno)))") }
      bytes = bytes.dropFirst(written)
    }
    var answer: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    let deadline = ContinuousClock.now + .milliseconds(Int(Self.timeout))
    while true {
      let left = deadline - ContinuousClock.now
      guard left > .zero else { throw SandboxError.host("the analyser took over \(Self.timeout) ms") }
      var poller = pollfd(fd: stdout, events: Int16(POLLIN), revents: 0)
      let ready = poll(&poller, 1, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
      if ready < 0 && errno == EINTR { continue }
      guard ready > 0 else { continue }
      let count = buffer.withUnsafeMutableBytes { read(stdout, $0.baseAddress, $0.count) }
      guard count > 0 else { throw SandboxError.host("the analyser exited") }
      answer += buffer[..<count]
      if let end = answer.firstIndex(of: UInt8(ascii: "\n")) { return String(decoding: answer[..<end], as: UTF8.self) }
      guard answer.count <= Self.maxAnswerBytes else { throw SandboxError.host("the analyser's answer is too long") }
    }
  }
}
