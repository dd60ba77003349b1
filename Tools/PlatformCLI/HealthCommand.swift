internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import GRPCRuntimeServices

/// gRPC health checks (`grpc.health.v1.Health/Check` of the server as a whole). No credentials:
/// `platform health --address 127.0.0.1:50052` is the containers' healthcheck.
struct Health: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Check the services' gRPC health (every service, or one).",
    discussion: """
      Exits 0 when every service checked is SERVING; else the status code of a failed check \
      (14 UNAVAILABLE when nothing answers, 4 DEADLINE_EXCEEDED), or 1 when one answered \
      NOT_SERVING. Each check takes at most --timeout seconds (default 3).
      """)

  @OptionGroup var global: GlobalOptions
  @Argument(help: "One service: agent, persona, code-sandbox, text-to-sql, knowledge or workflow.")
  var service: ServiceName?
  @Option(help: ArgumentHelp("Check the server at this address only.", valueName: "host:port"))
  var address: String?

  struct Outcome: Sendable {
    var name: String
    var address: String
    var status: String
    /// 0 SERVING; a status code; 1 for an answer other than SERVING.
    var exitCode: Int32
  }

  func run() async throws {
    let targets: [(name: String, address: String)] =
      if let address { [(self.service?.rawValue ?? "", address)] } else {
        (self.service.map { [$0] } ?? ServiceName.allCases).map { ($0.rawValue, $0.address) }
      }
    let timeout = self.global.callTimeout ?? .seconds(3)
    let outcomes = try await Session.with(self.global) { session in
      try await withThrowingTaskGroup(of: (Int, Outcome).self) { group in
        for (index, target) in targets.enumerated() {
          // A health check is tried once and fails fast: no retries, no waiting to connect
          // longer than the check may take.
          let client = try session.channel(target.address) {
            $0.retry.maxAttempts = 1
            $0.connectTimeout = min(timeout, .seconds(5))
          }
          group.addTask {
            (index, await Self.check(client, name: target.name, address: target.address, timeout: timeout))
          }
        }
        var outcomes = [Outcome?](repeating: nil, count: targets.count)
        for try await (index, outcome) in group { outcomes[index] = outcome }
        return outcomes.compactMap { $0 }
      }
    }

    if self.global.json {
      for outcome in outcomes {
        let object: [String: String] = ["service": outcome.name, "address": outcome.address, "status": outcome.status]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
      }
    } else if self.address != nil, let outcome = outcomes.first, outcome.exitCode > 1 {
      // One address: a failed check is the usual one error line.
      PlatformExit.fail(code: outcome.exitCode, outcome.status)
    } else if self.address != nil, let outcome = outcomes.first {
      print(outcome.status)
    } else {
      var table = Table("SERVICE", "ADDRESS", "STATUS", maxCellWidth: 100)
      for outcome in outcomes { table.append(outcome.name, outcome.address, outcome.status) }
      table.print()
    }
    if let failed = outcomes.first(where: { $0.exitCode != 0 }) {
      throw ExitCode(failed.exitCode)
    }
  }

  static func check(_ client: RPCClient, name: String, address: String, timeout: Duration) async -> Outcome {
    let health = Grpc_Health_V1_HealthClient(channel: client)
    do {
      let response = try await health.check(.init(), options: CallOptions(timeout: timeout))
      let status = Format.enumName(response.status)
      return Outcome(name: name, address: address, status: status, exitCode: response.status == .serving ? 0 : 1)
    } catch let error as RPCError {
      return Outcome(name: name, address: address, status: "\(error.code): \(error.message)", exitCode: Int32(error.code.rawValue))
    } catch {
      return Outcome(name: name, address: address, status: "UNKNOWN: \(error)", exitCode: Int32(StatusCode.unknown.rawValue))
    }
  }
}
