internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime

/// `platform`: the platform's services from the command line, for people and scripts.
///
/// Every command speaks gRPC to the services through our runtime's client and the generated
/// clients. Failures end the process with one line on stderr and an exit code that is the gRPC
/// status (`platform: NOT_FOUND: …` exits 5); see `PlatformExit`.
@main
struct Platform: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "platform",
    abstract: "The AI workflow platform's services from the command line.",
    discussion: """
      Services are found at AGENT_ADDR, PERSONA_ADDR, CODE_SANDBOX_ADDR, TEXT_TO_SQL_ADDR, \
      KNOWLEDGE_ADDR and WORKFLOW_ADDR (HOST:PORT; default 127.0.0.1:50051 … 50056).

      Credentials: `platform login` keeps its tokens in $XDG_CONFIG_HOME/platform/credentials.json \
      (default ~/.config/platform/; the file mode 0600) and refreshes the access token with the \
      refresh token when it expires. PLATFORM_API_KEY, when set, is sent instead (x-api-key).

      Output: tables for people; --json prints each response message as protobuf JSON, one per \
      line, for scripts.

      Exit codes: 0 success; the gRPC status code of a failed call (3 INVALID_ARGUMENT, \
      5 NOT_FOUND, 7 PERMISSION_DENIED, 14 UNAVAILABLE, 16 UNAUTHENTICATED, …), with one line \
      `platform: CODE: message` on stderr; 1 when the call succeeded but what it reports failed \
      (a program's non-zero exit, a failed run or document, an invalid workflow); 64 usage errors.

      Shell completion: platform --generate-completion-script bash|zsh|fish
      """,
    subcommands: [
      Login.self, Logout.self, WhoAmI.self, Register.self, ApiKeyCommand.self, Health.self,
      PersonaCommand.self, SandboxCommand.self, KnowledgeCommand.self, SQLCommand.self,
      AgentCommand.self, WorkflowCommand.self, AdminCommand.self,
    ]
  )

  /// Runs the command. Parsing keeps ArgumentParser's handling (usage errors exit 64 with the
  /// usage, --help, completion scripts); every error from `run()` becomes one line on stderr: a
  /// failed call exits with its status code, a `ValidationError` 64, anything else 1.
  static func main() async {
    let parsed: any ParsableCommand
    do {
      parsed = try parseAsRoot()
    } catch {
      exit(withError: error)
    }
    do {
      if var command = parsed as? any AsyncParsableCommand {
        try await command.run()
      } else {
        var command = parsed
        try command.run()
      }
    } catch let error as RPCError {
      PlatformExit.fail(code: Int32(error.code.rawValue), "\(error.code): \(error.message)")
    } catch let error as CommandFailure {
      PlatformExit.fail(code: error.exitCode, error.message)
    } catch let error as ExitCode {
      Foundation.exit(error.rawValue)
    } catch let error as ValidationError {
      PlatformExit.fail(code: 64, error.message)
    } catch where Self.exitCode(for: error) == .success {
      // ArgumentParser's own clean exits (a subcommand's --help runs as a command).
      exit(withError: error)
    } catch {
      PlatformExit.fail(code: 1, (error as? any LocalizedError)?.errorDescription ?? "\(error)")
    }
  }
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
  @Flag(help: "Print the response messages as protobuf JSON, one per line (for scripts).")
  var json = false

  @Option(help: ArgumentHelp(
      "Fail each call after this many seconds (DEADLINE_EXCEEDED; default 30 for a single call, none for streams, watches and synchronous runs).",
      valueName: "seconds"))
  var timeout: Double?

  /// The deadline of a unary call when --timeout is not given.
  static let defaultUnaryTimeout: Duration = .seconds(30)

  /// The per-call timeout, if one was given.
  var callTimeout: Duration? {
    self.timeout.map { .milliseconds(Int64(($0 * 1000).rounded())) }
  }

  func validate() throws {
    if let timeout, !(timeout > 0) { throw ValidationError("--timeout must be a positive number of seconds") }
  }
}

/// A failure that is not a call's status: the call succeeded, but what it reports failed (a
/// program that exited non-zero, a run that FAILED), or a local problem (a file not readable).
struct CommandFailure: Error {
  var message: String
  /// Default 1.
  var exitCode: Int32 = 1

  init(_ message: String, exitCode: Int32 = 1) {
    self.message = message
    self.exitCode = exitCode
  }
}

enum PlatformExit {
  /// Writes `platform: <message>` as one line on stderr and exits with `code`.
  static func fail(code: Int32, _ message: String) -> Never {
    let line = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    printError("platform: \(line)")
    Foundation.exit(code)
  }
}
