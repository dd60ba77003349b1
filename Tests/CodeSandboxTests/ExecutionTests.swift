import CodeSandbox
import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing

typealias Client = Platform_Codesandbox_V1_CodeSandboxServiceClient

/// The code-sandbox service over real gRPC against a fresh database; `body` gets a client and a
/// developer's call options.
func withSandbox<T: Sendable>(
  _ settings: [String: String] = [:], _ body: (PlatformTestService, Client, CallOptions) async throws -> T
) async throws -> T {
  try await PlatformTestService.run(
    CodeSandboxService(), configure: { $0.environment = Environment(settings) }
  ) { service in
    try await body(service, Client(channel: service.client), try await service.options(for: UUID()))
  }
}

func run(
  _ client: Client, _ options: CallOptions, _ language: Platform_Codesandbox_V1_Language, _ code: String,
  _ configure: (inout Platform_Codesandbox_V1_ExecuteCodeRequest) -> Void = { _ in }
) async throws -> Platform_Codesandbox_V1_CodeExecution {
  var request = Platform_Codesandbox_V1_ExecuteCodeRequest.with {
    $0.language = language
    $0.code = code
  }
  configure(&request)
  return try await client.executeCode(request, options: options)
}

@Suite("Code sandbox: running programs")
struct ExecutionTests {
  @Test("Each language prints, reads stdin, exits non-zero and throws")
  func languages() async throws {
    try await withSandbox { _, client, options in
      let cases: [(Platform_Codesandbox_V1_Language, String, String)] = [
        (.python, "import sys\nprint('hello', sys.stdin.read().strip())", "import sys\nsys.exit(3)"),
        (.javascript, "const s = require('fs').readFileSync(0, 'utf8').trim(); console.log('hello', s)", "process.exit(3)"),
        (.typescript, "const s: string = require('fs').readFileSync(0, 'utf8').trim(); console.log('hello', s)", "process.exit(3)"),
      ]
      for (language, echo, exit) in cases {
        let printed = try await run(client, options, language, echo) { $0.stdin = "world\n" }
        #expect(printed.status == .completed && printed.stdout == "hello world\n" && printed.exitCode == 0, "\(language): \(printed)")
        #expect(printed.terminationReason == .exited && printed.securityScore == 100)
        let exited = try await run(client, options, language, exit)
        #expect(exited.status == .failed && exited.exitCode == 3 && exited.terminationReason == .exited, "\(language): \(exited)")
      }
      let raised = try await run(client, options, .python, "raise ValueError('boom')")
      #expect(raised.status == .failed && raised.exitCode == 1 && raised.stderr.contains("ValueError: boom"))
      let thrown = try await run(client, options, .javascript, "throw new Error('boom')")
      #expect(thrown.status == .failed && thrown.exitCode == 1 && thrown.stderr.contains("Error: boom"))
    }
  }
}
