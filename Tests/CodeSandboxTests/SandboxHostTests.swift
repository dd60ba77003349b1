import CodeSandbox
import Foundation
import PlatformCore
import PlatformTesting
import Testing

@Suite("Code sandbox: the host's limits")
struct SandboxHostTests {
  /// The sandbox's settings with `environment`, the launcher built beside this test binary.
  func configuration(_ environment: [String: String]) throws -> SandboxConfiguration {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    // `swift test` runs the .xctest bundle inside the build directory; sandbox-exec is beside it.
    var directory = executable
    while directory.path != "/" && !FileManager.default.fileExists(atPath: directory.appendingPathComponent("sandbox-exec").path) {
      directory.deleteLastPathComponent()
    }
    return try SandboxConfiguration(environment: Environment(environment), executableDirectory: directory.path)
  }

  @Test("Where no cgroup memory controller can be written, the sandbox refuses to start, unless SANDBOX_ALLOW_WEAK_LIMITS=1")
  func refusesWithoutMemoryLimits() throws {
    let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-cgroups-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: empty) }
    do {
      _ = try Sandbox(configuration: try self.configuration(["SANDBOX_CGROUP_ROOT": empty.path]), logger: TestPostgres.quietLogger)
      Issue.record("the sandbox started without a way to limit memory")
    } catch SandboxError.host(let why) {
      #expect(why.contains("memory") && why.contains("SANDBOX_ALLOW_WEAK_LIMITS"), "\(why)")
    }
    let weak = try Sandbox(
      configuration: try self.configuration(["SANDBOX_CGROUP_ROOT": empty.path, "SANDBOX_ALLOW_WEAK_LIMITS": "1"]), logger: TestPostgres.quietLogger)
    #expect(weak.isolation.contains("no cgroup limits"), "\(weak.isolation)")
    weak.shutdown()
  }

  @Test("This host's cgroups are found and limit memory (the test command runs as root)")
  func detectsThisHost() throws {
    guard geteuid() == 0 else { return }
    let sandbox = try Sandbox(configuration: try self.configuration([:]), logger: TestPostgres.quietLogger)
    #expect(sandbox.isolation.contains("cgroup v"), "\(sandbox.isolation)")
    sandbox.shutdown()
  }
}
