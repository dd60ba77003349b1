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
    @Option(help: "The language (default: from the file's extension).") var language: Language?
    @Option(help: "A file given to the program as stdin.") var stdinFile: String?
    @Option(help: "The program's time limit in milliseconds (the service's default when not given).") var timeLimitMs: Int32?

    enum Language: String, CaseIterable, ExpressibleByArgument {
      case python, javascript, typescript

      var proto: Platform_Codesandbox_V1_Language {
        switch self {
        case .python: .python
        case .javascript: .javascript
        case .typescript: .typescript
        }
      }

      /// The language of a file name's extension.
      init?(fileExtension: String) {
        switch fileExtension.lowercased() {
        case "py": self = .python
        case "js", "mjs": self = .javascript
        case "ts": self = .typescript
        default: return nil
        }
      }
    }

    /// The sandbox's caps (code_sandbox.proto, ExecuteCodeRequest): checked before reading.
    static let maxCodeBytes = 256 * 1024
    static let maxStdinBytes = 1024 * 1024

    func run() async throws {
      guard let language = self.language ?? Language(fileExtension: URL(fileURLWithPath: self.file).pathExtension) else {
        throw ValidationError("Cannot tell the language of \(self.file): give --language python|javascript|typescript")
      }
      let code = try Input.text(self.file, maxBytes: Self.maxCodeBytes)
      let stdin = try self.stdinFile.map { try Input.text($0, maxBytes: Self.maxStdinBytes) } ?? ""
      let request = Platform_Codesandbox_V1_ExecuteCodeRequest.with {
        $0.language = language.proto
        $0.code = code
        $0.stdin = stdin
        if let limit = self.timeLimitMs { $0.limits.timeoutMs = limit }
      }
      let completed = try await Session.with(self.global) { session in
        let client = Platform_Codesandbox_V1_CodeSandboxServiceClient(channel: try session.channel(.codeSandbox))
        return try await session.call(long: true) { options in
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
                Output.write(chunk.data, to: chunk.stream == .stderr ? .standardError : .standardOutput)
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
  }
}
