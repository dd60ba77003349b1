internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import PlatformProtos
internal import SwiftProtobuf

struct SandboxCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sandbox", abstract: "Run code in the code sandbox.", subcommands: [Run.self])

  struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run a program and stream its output as it is written.",
      discussion: """
        The language comes from the file's extension (.py, .js, .mjs, .ts) or --language. The \
        program's stdout and stderr go to yours; a summary line goes to stderr. Exits 1 when the \
        program did not exit 0 (or was stopped by a limit).
        """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The program's file.") var file: String
    @Option(help: "python, javascript or typescript.") var language: String?
    @Option(help: "A file given to the program as stdin.") var stdinFile: String?
    @Option(help: "The program's time limit in milliseconds (the service's default when not given).") var timeLimitMs: Int32?

    func run() async throws {
      let language = try self.programLanguage()
      let code = String(decoding: try Input.file(self.file), as: UTF8.self)
      let stdin = try self.stdinFile.map { String(decoding: try Input.file($0), as: UTF8.self) } ?? ""
      let request = Platform_Codesandbox_V1_ExecuteCodeRequest.with {
        $0.language = language
        $0.code = code
        $0.stdin = stdin
        if let limit = self.timeLimitMs { $0.limits.timeoutMs = limit }
      }
      let completed = try await Session.with(self.global) { session in
        let client = Platform_Codesandbox_V1_CodeSandboxServiceClient(channel: try session.channel(.codeSandbox))
        return try await session.call { options in
          try await client.streamExecution(request, options: options) { events in
            var completed: Platform_Codesandbox_V1_CodeExecution?
            for try await event in events {
              if self.global.json {
                print(try event.jsonString())
                if case .completed(let execution) = event.event { completed = execution }
                continue
              }
              switch event.event {
              case .output(let chunk):
                (chunk.stream == .stderr ? FileHandle.standardError : FileHandle.standardOutput).write(chunk.data)
              case .completed(let execution):
                completed = execution
              case .started, .none:
                break
              }
            }
            return completed
          }
        }
      }
      guard let completed else { throw CommandFailure("the sandbox ended the stream without the completed execution") }
      let exitCode = completed.hasExitCode ? "exit \(completed.exitCode)" : Format.enumName(completed.terminationReason)
      if !self.global.json {
        printError("[\(completed.id): \(Format.enumName(completed.status)), \(exitCode), \(completed.executionTimeMs) ms]")
      }
      guard completed.status == .completed, completed.hasExitCode, completed.exitCode == 0 else {
        let reason = completed.error.message.isEmpty ? exitCode : completed.error.message
        throw CommandFailure("the program did not succeed: \(reason)")
      }
    }

    func programLanguage() throws -> Platform_Codesandbox_V1_Language {
      let name = self.language ?? URL(fileURLWithPath: self.file).pathExtension.lowercased()
      switch name {
      case "python", "py": return .python
      case "javascript", "js", "mjs", "node": return .javascript
      case "typescript", "ts": return .typescript
      default:
        throw ValidationError("Cannot tell the language of \(self.file): give --language python|javascript|typescript")
      }
    }
  }
}
