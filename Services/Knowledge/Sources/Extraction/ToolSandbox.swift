internal import Foundation

/// How an extraction tool is started: `prlimit` (address space, CPU, file size, no core dumps)
/// around `bwrap` (no network, no other namespaces shared, a read-only view of /usr and the
/// loader's files, a private /tmp, the input file read-only at /input/…) around the tool.
///
/// prlimit is outermost so that the limits hold whether or not bubblewrap is usable: without it
/// (`ExtractionIsolation.rlimitsOnly`) the tool runs directly under prlimit, reading the input at
/// its host path.
enum ToolSandbox {
  /// Where tools are looked for (and, being under /usr or linked to it, visible in the sandbox).
  static let searchDirectories = ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin"]

  /// The isolation this process uses, probed on first use by running `true` in the sandbox.
  static let isolation: ExtractionIsolation = Self.probe()

  /// The absolute path of the program `name`, or nil.
  static func locate(_ name: String) -> String? {
    Self.searchDirectories.lazy.map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
  }

  /// The path of `name`, or `.toolMissing` naming the Debian package that has it.
  static func require(_ name: String, package: String) throws(ExtractionError) -> String {
    guard let path = Self.locate(name) else {
      throw .toolMissing("\(name) is not installed (Debian package \(package))")
    }
    return path
  }

  /// The invocation that runs `tool` on `input` under the limits and, when available, the sandbox.
  /// - Parameters:
  ///   - tool: the tool's absolute path.
  ///   - arguments: the tool's arguments, given the path under which it sees the input.
  ///   - input: the host file the tool reads (read-only).
  ///   - maxOutputBytes: the cap on the tool's standard output.
  /// - Throws: `.toolMissing` when prlimit (util-linux) is not installed.
  static func invocation(
    tool: String, arguments: (_ inputPath: String) -> [String], input: TemporaryInput, limits: ExtractionLimits,
    maxOutputBytes: Int
  ) throws(ExtractionError) -> ToolInvocation {
    let prlimit = try Self.require("prlimit", package: "util-linux")
    let rlimits = [
      "--as=\(max(limits.memoryBytes, 16 << 20))",
      "--cpu=\(max(limits.cpuSeconds, 1)):\(max(limits.cpuSeconds, 1) + 1)",
      "--fsize=\(Self.scratchBytes)",
      "--core=0",
      "--nofile=256",
      "--",
    ]
    let command: [String]
    switch Self.isolation {
    case .sandboxed:
      guard let bwrap = Self.locate("bwrap") else {
        throw .toolMissing("bwrap is not installed (Debian package bubblewrap)")
      }
      let sandboxPath = "/input/\(input.sandboxName)"
      command =
        [bwrap] + Self.bubblewrapArguments(binds: [(input.path, sandboxPath)]) + ["--", tool] + arguments(sandboxPath)
    case .rlimitsOnly:
      command = [tool] + arguments(input.path)
    }
    return ToolInvocation(
      executable: prlimit, arguments: rlimits + command, environment: Self.environment, timeout: limits.timeout,
      maxOutputBytes: maxOutputBytes
    )
  }

  /// The tools' whole environment: UTF-8 output, a HOME (antiword wants one), nothing inherited.
  static let environment = ["PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TMPDIR=/tmp"]

  /// The size of the sandbox's /tmp and the file-size rlimit: the tools write only to stdout.
  static let scratchBytes = 16 << 20

  /// bubblewrap's arguments up to (not including) `--`, with `binds` (host path, sandbox path)
  /// read-only.
  static func bubblewrapArguments(binds: [(String, String)]) -> [String] {
    var arguments = [
      "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
      "--ro-bind", "/usr", "/usr",
    ]
    // Debian links /bin, /lib… into /usr; older layouts have real directories.
    for path in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
      if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
        arguments += ["--symlink", target, path]
      } else if access(path, R_OK) == 0 {
        arguments += ["--ro-bind", path, path]
      }
    }
    // What the tools read from /etc: the loader's cache and fontconfig's configuration (poppler).
    for path in ["/etc/ld.so.cache", "/etc/fonts"] where access(path, R_OK) == 0 {
      arguments += ["--ro-bind", path, path]
    }
    for (source, target) in binds { arguments += ["--ro-bind", source, target] }
    arguments += [
      "--proc", "/proc", "--dev", "/dev",
      "--size", String(Self.scratchBytes), "--tmpfs", "/tmp",
      "--remount-ro", "/",
      "--chdir", "/tmp",
    ]
    for variable in Self.environment {
      let parts = variable.split(separator: "=", maxSplits: 1)
      arguments += ["--setenv", String(parts[0]), parts.count > 1 ? String(parts[1]) : ""]
    }
    return arguments
  }

  /// Runs `true` in the sandbox once: bubblewrap needs user namespaces (or root), which some
  /// hosts and containers do not allow.
  static func probe() -> ExtractionIsolation {
    guard let bwrap = Self.locate("bwrap") else { return .rlimitsOnly(reason: "bubblewrap (bwrap) is not installed") }
    guard let trueTool = Self.locate("true") else { return .rlimitsOnly(reason: "`true` is not installed") }
    let invocation = ToolInvocation(
      executable: bwrap, arguments: Self.bubblewrapArguments(binds: []) + ["--", trueTool],
      environment: Self.environment,
      timeout: .seconds(10), maxOutputBytes: 4096
    )
    do {
      let result = try ToolProcess.runBlocking(invocation, cancellation: nil)
      guard result.termination == .exited(0) else {
        return .rlimitsOnly(
          reason: "bubblewrap cannot create its sandbox here: \(Self.firstLine(result.standardErrorPrefix))")
      }
      return .sandboxed
    } catch {
      return .rlimitsOnly(reason: "bubblewrap cannot be started: \(error.reason)")
    }
  }

  /// The first line of a tool's diagnostics, printable ASCII only, at most 160 characters: for
  /// operators' messages, never for users'.
  static func firstLine(_ bytes: [UInt8]) -> String {
    let line = bytes.prefix { $0 != 0x0A }.prefix(160)
    return String(decoding: line.map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
  }
}

/// A private copy of the document for a tool to read: a file made by mkstemp in a directory
/// made by mkdtemp (mode 0700), both removed by `remove()`.
struct TemporaryInput: Sendable {
  /// The file's host path.
  let path: String
  /// The private directory holding it.
  let directory: String
  /// The name the tool sees in the sandbox, under /input (`document.pdf`): never a host path.
  let sandboxName: String

  /// Writes `bytes` to a new private file.
  /// - Throws: `.toolMissing` when the temporary directory is unusable (an operator problem).
  init(bytes: [UInt8], sandboxName: String) throws(ExtractionError) {
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var directoryTemplate = Array("\(base)/knowledge-extract.XXXXXX".utf8CString)
    guard mkdtemp(&directoryTemplate) != nil else {
      throw .toolMissing("cannot create a temporary directory: \(String(cString: strerror(errno)))")
    }
    let directory = Self.string(directoryTemplate)
    var fileTemplate = Array("\(directory)/document.XXXXXX".utf8CString)
    let fd = mkstemp(&fileTemplate)
    guard fd >= 0 else {
      let reason = String(cString: strerror(errno))
      rmdir(directory)
      throw .toolMissing("cannot create a temporary file: \(reason)")
    }
    let path = Self.string(fileTemplate)
    var written = 0
    var failure: Int32 = 0
    bytes.withUnsafeBytes { buffer in
      while written < buffer.count {
        let count = write(fd, buffer.baseAddress.map { $0 + written }, buffer.count - written)
        if count < 0 {
          if errno == EINTR { continue }
          failure = errno
          return
        }
        written += count
      }
    }
    if close(fd) != 0, failure == 0 { failure = errno }
    guard failure == 0 else {
      unlink(path)
      rmdir(directory)
      throw .toolMissing("cannot write a temporary file: \(String(cString: strerror(failure)))")
    }
    self.path = path
    self.directory = directory
    self.sandboxName = sandboxName
  }

  /// Deletes the file and its directory.
  func remove() {
    unlink(self.path)
    rmdir(self.directory)
  }

  private static func string(_ cString: [CChar]) -> String {
    String(decoding: cString.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}
