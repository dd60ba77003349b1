public import Foundation
internal import PlatformCore

/// A test double at a boundary this machine cannot reach (a hosted model API), as a real HTTP
/// server: a Python script that prints the port it listens on, then serves.
public final class ScriptServer: Sendable {
  public let process: Process
  public let port: Int

  /// Starts `python script arguments…` and reads the port from its first line.
  public init(script: URL, arguments: [String] = [], python: String = "/usr/bin/python3") throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [script.path] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    // Not the test runner's stderr: swift test reads that to its end.
    process.standardError = FileHandle.nullDevice
    try process.run()
    var line = Data()
    while !line.contains(UInt8(ascii: "\n")) {
      let chunk = pipe.fileHandleForReading.availableData
      guard !chunk.isEmpty else { break }
      line.append(chunk)
    }
    self.process = process
    self.port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
  }

  /// `path` on the server, asked with `method` and a JSON `body`; the response body as JSON (null when empty).
  public func json(_ path: String, method: String = "GET", body: Any? = nil) async throws -> Any {
    let client = EgressHTTPClient(policy: EgressPolicy(rules: [.network(IPNetwork("127.0.0.0/8")!)], variable: "test"))
    let data = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
    let response = try await client.send(
      method, URL(string: "http://127.0.0.1:\(self.port)\(path)")!, headers: [("Content-Type", "application/json")], body: data,
      timeout: .seconds(5))
    // 204 No Content and other empty bodies: JSON null.
    return response.body.isEmpty ? NSNull() : try JSONSerialization.jsonObject(with: response.body)
  }

  /// SIGKILL: the test process (its service lifecycle) ignores SIGTERM, and children inherit that.
  public func stop() {
    guard self.process.isRunning else { return }
    kill(self.process.processIdentifier, SIGKILL)
    self.process.waitUntilExit()
  }

  /// A server its test did not stop (a suite's, or one of a test that failed early) ends with it,
  /// rather than living on after the test run.
  deinit {
    self.stop()
  }
}
