internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import GRPCRuntimeServices
internal import Logging
internal import SwiftProtobuf
internal import Synchronization

/// Checks that the generator measures what a server does: a server that answers after a known
/// fixed delay must show that delay at every percentile, the rate asked for must be the rate
/// sent, and a server that stalls must show the stall on every call that fell due during it
/// (a closed-loop generator would wait with it and report one slow call).
struct SelfTest: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "self-test", abstract: "Measure an in-process server with a known fixed delay and a known stall; exit non-zero if the figures are wrong.")

  @Option(help: "The server's fixed delay, in milliseconds.") var delay = 20
  @Option(help: "Calls per second.") var rate = 200.0

  func run() async throws {
    let server = DelayServer(delay: .milliseconds(self.delay))
    var logger = Logger(label: "platform-load.self-test")
    logger.logLevel = .error
    let rpc = RPCServer(configuration: .defaults { $0.host = "127.0.0.1"; $0.port = 0 }, services: [server], logger: logger)
    var failures: [String] = []
    try await withThrowingTaskGroup { group in
      group.addTask { try await rpc.run() }
      let port = try await rpc.listeningPort
      let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(port)"]))
      let health = Grpc_Health_V1_HealthClient(channel: client)
      let call: LoadCall = { _ in
        do {
          _ = try await health.check(.init(), options: CallOptions(timeout: .seconds(10)))
          return .ok
        } catch let error as RPCError {
          return error.code
        } catch {
          return .unknown
        }
      }
      let delay = Double(self.delay)

      // 1. A fixed delay: p50 and p99 within a few milliseconds above it, the rate as asked.
      let steady = LoadPlan(rate: self.rate, duration: .seconds(4), warmup: .seconds(1), maxInFlight: 1_000)
      let fixed = await OpenLoop.run(steady, call: call)
      let fixedMs = Dictionary(uniqueKeysWithValues: Report.milliseconds(fixed))
      print("fixed \(self.delay) ms delay: " + Report.milliseconds(fixed).map { "\($0.0) \(String(format: "%.2f", $0.1)) ms" }.joined(separator: " ")
        + ", \(fixed.completed) calls, achieved \(String(format: "%.1f", Double(fixed.completed) / fixed.elapsed.seconds))/s")
      failures += Self.check("fixed delay p50", fixedMs["p50"]!, within: delay...(delay + 3))
      failures += Self.check("fixed delay p99", fixedMs["p99"]!, within: delay...(delay + 10))
      failures += Self.check("calls", Double(fixed.completed), within: (self.rate * 4 - 1)...(self.rate * 4 + 1))
      failures += Self.check("achieved rate", Double(fixed.completed) / fixed.elapsed.seconds, within: (self.rate * 0.95)...(self.rate * 1.01))
      failures += Self.check("errors", Double(fixed.errors), within: 0...0)

      // 2. A stall of one second, a quarter of the way into four seconds at 100 calls a second:
      // the calls due during it wait from 1 s down to 0, so a quarter of all calls are slow,
      // spread evenly: p90 ≈ delay + 600 ms, p99 ≈ delay + 960 ms. At most 32 calls are in
      // flight, so the generator itself is held up a third of the way into the stall, like a
      // client out of connections: the calls it could not send on time must still count from
      // when they were due (timed from when they went out, p90 would be under 100 ms).
      let stallRate = 100.0
      let stallPlan = LoadPlan(rate: stallRate, duration: .seconds(4), warmup: .zero, maxInFlight: 32)
      server.stall(from: ContinuousClock.now + .milliseconds(1_010), for: .seconds(1))
      let stalled = await OpenLoop.run(stallPlan, call: call)
      let stalledMs = Dictionary(uniqueKeysWithValues: Report.milliseconds(stalled))
      print("1 s stall in 4 s: " + Report.milliseconds(stalled).map { "\($0.0) \(String(format: "%.1f", $0.1)) ms" }.joined(separator: " ")
        + ", \(stalled.late) calls sent late")
      failures += Self.check("stall p50", stalledMs["p50"]!, within: delay...(delay + 5))
      failures += Self.check("stall p90", stalledMs["p90"]!, within: (delay + 520)...(delay + 700))
      failures += Self.check("stall p99", stalledMs["p99"]!, within: (delay + 900)...(delay + 1_030))
      failures += Self.check("calls sent late (held by the in-flight limit)", Double(stalled.late), within: 50...110)
      failures += Self.check("stall max", stalledMs["p100"]!, within: (delay + 950)...(delay + 1_100))

      await client.close()
      group.cancelAll()
    }
    if failures.isEmpty {
      print("platform-load self-test: passed")
    } else {
      print("platform-load self-test: FAILED\n  " + failures.joined(separator: "\n  "))
      throw ExitCode(1)
    }
  }

  static func check(_ name: String, _ value: Double, within range: ClosedRange<Double>) -> [String] {
    range.contains(value) ? [] : ["\(name): \(String(format: "%.2f", value)) not in \(range.lowerBound)…\(range.upperBound)"]
  }
}

/// gRPC health whose Check answers after a fixed delay, or after a stall ends.
final class DelayServer: Grpc_Health_V1_HealthHandler {
  let delay: Duration
  private let stallWindow = Mutex<Range<ContinuousClock.Instant>?>(nil)

  init(delay: Duration) { self.delay = delay }

  func stall(from start: ContinuousClock.Instant, for length: Duration) {
    self.stallWindow.withLock { $0 = start..<(start + length) }
  }

  func check(_ request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
    let arrived = ContinuousClock.now
    let resume = self.stallWindow.withLock { window in window.map { $0.contains(arrived) ? $0.upperBound : arrived } } ?? arrived
    try await Task.sleep(until: resume + self.delay, tolerance: .microseconds(100))
    return .with { $0.status = .serving }
  }

  func watch(
    _ request: Grpc_Health_V1_HealthCheckRequest, responses: ResponseStreamWriter<Grpc_Health_V1_HealthCheckResponse>, context: ServerContext
  ) async throws {
    throw RPCError(.unimplemented, "Only Check")
  }
}
