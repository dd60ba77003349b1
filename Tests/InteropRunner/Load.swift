internal import ArgumentParser
internal import GRPCRuntime
internal import InteropSupport
internal import NIOPosix
internal import Synchronization
internal import Foundation
internal import SwiftProtobuf

/// Mixed gRPC traffic against `rpc-interop server`, for the soak benchmark: unary Echo calls,
/// server-streaming and bidirectional calls, calls cancelled mid-stream and calls whose deadline
/// expires mid-stream, in fixed proportions.
///
/// With `--rate` the load is an open loop: call *i* is due at start + i / rate whatever happened
/// to the calls before it, and its latency counts from that due time, so a stalled server shows
/// as latency instead of as fewer calls (coordinated omission). Without `--rate` it is a closed
/// loop of `--concurrency` callers, which measures the peak rate.
///
/// Every `--window` seconds it prints one JSON line: the window's calls by kind and outcome, the
/// achieved rate, and p50/p99 latency of the calls that should succeed.
struct Load: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "load", abstract: "Mixed unary and streaming traffic at a fixed rate (or a closed loop), one JSON line per window.")
  @Option(help: "The server's port (loopback).") var port: Int
  @Option(help: "Calls per second (open loop); 0 runs a closed loop of --concurrency callers.") var rate = 0
  @Option(help: "Closed loop: callers. Open loop: the most calls in flight (more are counted as 'overloaded', not sent).")
  var concurrency = 64
  @Option(help: "Seconds to run.") var duration = 10
  @Option(help: "Seconds per reported window.") var window = 10
  @Option(help: "Connections the client may open.") var connections = 4
  @Option(help: "Percent of calls of each kind: unary, server streaming, bidirectional, cancelled mid-stream, deadline expiring mid-stream.")
  var mix = "unary=60,server=15,bidi=15,cancel=5,deadline=5"

  static let pacingTick = Duration.microseconds(500)

  func run() async throws {
    let kinds = try CallKind.parse(mix: self.mix)
    var configuration = RPCClientConfiguration.defaults(targets: ["127.0.0.1:\(self.port)"])
    configuration.maxConnectionsPerAddress = self.connections
    let client = try RPCClient(configuration: configuration)
    let calls = LoadCalls(client: client)
    let stats = LoadStatistics()
    // The calls run on an event loop of the client's group (its only one under `taskset -c`
    // of one CPU), as a server handler's calls do: no thread hop between a call's task and its
    // connection.
    let executor = EventLoopTaskExecutor(eventLoop: RuntimeEventLoops.shared.next())
    let start = ContinuousClock.now
    let end = start + .seconds(self.duration)

    try await withThrowingDiscardingTaskGroup { group in
      group.addTask {
        var windowStart = start
        while windowStart < end {
          let windowEnd = min(windowStart + .seconds(self.window), end)
          try await Task.sleep(until: windowEnd)
          printLine(stats.takeWindow(seconds: (windowEnd - start).seconds, length: (windowEnd - windowStart).seconds))
          windowStart = windowEnd
        }
      }
      if self.rate > 0 {
        let interval = Duration.seconds(1) / self.rate
        var index = 0
        var random = SplitMix(seed: 1)
        while true {
          let now = ContinuousClock.now
          // Start every call that is due: after a late wake-up the ones missed go out at once,
          // with their latency counted from when they were due.
          while start + interval * index <= now {
            let due = start + interval * index
            index += 1
            guard due < end else { break }
            let kind = kinds.pick(&random)
            guard stats.beginCall(limit: self.concurrency) else {
              stats.record(kind, .overloaded, latency: nil)
              continue
            }
            group.addTask(executorPreference: executor) {
              let outcome = await calls.run(kind)
              stats.endCall()
              stats.record(kind, outcome, latency: ContinuousClock.now - due)
            }
          }
          let next = start + interval * index
          if next >= end { break }
          // Woken at most every `pacingTick`, whatever the rate: a wake-up per call (a timer, a
          // thread switch) cost more CPU than the call at 10,000 calls a second. The calls of a
          // tick go out together, their latency still counted from when each was due.
          try await Task.sleep(until: max(next, now + Self.pacingTick), tolerance: .microseconds(50))
        }
      } else {
        for caller in 0..<self.concurrency {
          group.addTask(executorPreference: executor) {
            var random = SplitMix(seed: UInt64(caller + 1))
            while ContinuousClock.now < end {
              let kind = kinds.pick(&random)
              let began = ContinuousClock.now
              let outcome = await calls.run(kind)
              stats.record(kind, outcome, latency: ContinuousClock.now - began)
            }
          }
        }
      }
    }
    await client.close()
  }
}

/// The kinds of call the load mixes.
enum CallKind: String, CaseIterable, Sendable {
  /// platform.echo.v1.EchoService/Echo.
  case unary
  /// StreamingOutputCall: 10 responses of 100 bytes.
  case server
  /// FullDuplexCall: 5 requests, each answered by one 100-byte response.
  case bidi
  /// StreamingOutputCall of 10 responses 5 ms apart, cancelled by the client after the second.
  case cancel
  /// StreamingOutputCall of 5 responses 10 ms apart with a 20 ms deadline: DEADLINE_EXCEEDED.
  case deadline

  struct Mix {
    /// Each kind `percent` times: a uniform pick from it follows the mix.
    var table: [CallKind]

    func pick(_ random: inout SplitMix) -> CallKind {
      self.table[Int(random.next() % UInt64(self.table.count))]
    }
  }

  static func parse(mix: String) throws -> Mix {
    var table: [CallKind] = []
    for part in mix.split(separator: ",") {
      let pair = part.split(separator: "=")
      guard pair.count == 2, let kind = CallKind(rawValue: String(pair[0])), let percent = Int(pair[1]), percent >= 0 else {
        throw ValidationError("Bad --mix entry '\(part)': want KIND=PERCENT with KIND one of \(allCases.map(\.rawValue))")
      }
      table += Array(repeating: kind, count: percent)
    }
    guard !table.isEmpty else { throw ValidationError("--mix selects no calls") }
    return Mix(table: table)
  }
}

/// How one call ended.
enum CallOutcome: Hashable, Sendable {
  /// The call did what its kind expects (for `cancel` and `deadline`, ended as intended).
  case expected
  /// Not sent: too many calls in flight.
  case overloaded
  /// Anything else, by status.
  case failed(StatusCode)

  var name: String {
    switch self {
    case .expected: "ok"
    case .overloaded: "overloaded"
    case .failed(let code): "\(code)"
    }
  }
}

/// The calls themselves.
struct LoadCalls: Sendable {
  let echo: Platform_Echo_V1_EchoServiceClient
  let test: Grpc_Testing_TestServiceClient

  init(client: RPCClient) {
    self.echo = Platform_Echo_V1_EchoServiceClient(channel: client)
    self.test = Grpc_Testing_TestServiceClient(channel: client)
  }

  private static let reported = Atomic<Int>(0)

  /// The first few failures, on standard error.
  static func report(_ error: RPCError) {
    guard Self.reported.add(1, ordering: .relaxed).newValue <= 5 else { return }
    FileHandle.standardError.write(Data("call failed: \(error)\n".utf8))
  }

  private static func streaming(count: Int, size: Int32, intervalMicroseconds: Int32 = 0) -> Grpc_Testing_StreamingOutputCallRequest {
    .with {
      $0.responseParameters = Array(repeating: .with { $0.size = size; $0.intervalUs = intervalMicroseconds }, count: count)
    }
  }

  func run(_ kind: CallKind) async -> CallOutcome {
    let timeout = CallOptions(timeout: .seconds(10))
    do {
      switch kind {
      case .unary:
        let response = try await self.echo.echo(.with { $0.text = "hello" }, options: timeout)
        return response.text == "hello" ? .expected : .failed(.dataLoss)
      case .server:
        let count = try await self.test.streamingOutputCall(Self.streaming(count: 10, size: 100), options: timeout) { responses in
          var count = 0
          for try await response in responses where response.payload.body.count == 100 { count += 1 }
          return count
        }
        return count == 10 ? .expected : .failed(.dataLoss)
      case .bidi:
        let count = try await self.test.fullDuplexCall(options: timeout) { requests in
          for _ in 0..<5 { try await requests.write(Self.streaming(count: 1, size: 100)) }
        } responses: { responses in
          var count = 0
          for try await response in responses where response.payload.body.count == 100 { count += 1 }
          return count
        }
        return count == 5 ? .expected : .failed(.dataLoss)
      case .cancel:
        // Leaving the responses closure early cancels the call (RST_STREAM CANCEL).
        let count = try await self.test.streamingOutputCall(
          Self.streaming(count: 10, size: 100, intervalMicroseconds: 5_000), options: timeout
        ) { responses in
          var count = 0
          for try await _ in responses {
            count += 1
            if count == 2 { break }
          }
          return count
        }
        return count == 2 ? .expected : .failed(.dataLoss)
      case .deadline:
        _ = try await self.test.streamingOutputCall(
          Self.streaming(count: 5, size: 100, intervalMicroseconds: 10_000), options: CallOptions(timeout: .milliseconds(20))
        ) { responses in
          for try await _ in responses {}
        }
        return .failed(.ok)
      }
    } catch let error as RPCError {
      if kind == .deadline && error.code == .deadlineExceeded { return .expected }
      LoadCalls.report(error)
      return .failed(error.code)
    } catch {
      return .failed(.unknown)
    }
  }
}

/// Counts and latencies of the current window.
final class LoadStatistics: Sendable {
  private struct Window {
    var outcomes: [CallKind: [String: Int]] = [:]
    /// Latencies (ns) of calls that should succeed and did: every kind but `cancel` and `deadline`.
    var latencies: [Int64] = []
    var unaryLatencies: [Int64] = []
  }

  private let window = Mutex(Window())
  private let inFlight = Atomic<Int>(0)

  func beginCall(limit: Int) -> Bool {
    if self.inFlight.add(1, ordering: .relaxed).newValue <= limit { return true }
    self.inFlight.subtract(1, ordering: .relaxed)
    return false
  }

  func endCall() {
    self.inFlight.subtract(1, ordering: .relaxed)
  }

  func record(_ kind: CallKind, _ outcome: CallOutcome, latency: Duration?) {
    self.window.withLock { window in
      window.outcomes[kind, default: [:]][outcome.name, default: 0] += 1
      guard outcome == .expected, let latency, kind != .cancel, kind != .deadline else { return }
      let nanoseconds = latency.nanoseconds
      window.latencies.append(nanoseconds)
      if kind == .unary { window.unaryLatencies.append(nanoseconds) }
    }
  }

  /// The window as one JSON line, and a new window.
  func takeWindow(seconds: Double, length: Double) -> String {
    var taken = self.window.withLock { window in
      defer { window = Window() }
      return window
    }
    taken.latencies.sort()
    taken.unaryLatencies.sort()
    let calls = taken.outcomes.values.reduce(0) { $0 + $1.values.reduce(0, +) }
    let failed = taken.outcomes.values.reduce(0) { $0 + $1.filter { $0.key != "ok" }.values.reduce(0, +) }
    func percentile(_ sorted: [Int64], _ fraction: Double) -> Double {
      guard !sorted.isEmpty else { return 0 }
      let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)
      return Double(sorted[max(index, 0)]) / 1e6
    }
    let line: [String: Any] = [
      "t": seconds,
      "calls": calls,
      "rate": Double(calls) / max(length, 0.001),
      "failed": failed,
      "outcomes": Dictionary(uniqueKeysWithValues: taken.outcomes.map { ($0.key.rawValue, $0.value) }),
      "p50_ms": percentile(taken.latencies, 0.50),
      "p99_ms": percentile(taken.latencies, 0.99),
      "unary_p50_ms": percentile(taken.unaryLatencies, 0.50),
      "unary_p99_ms": percentile(taken.unaryLatencies, 0.99),
      "in_flight": self.inFlight.load(ordering: .relaxed),
    ]
    let data = (try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self)
  }
}

/// A small seeded generator, so a run's sequence of kinds is the same every time.
struct SplitMix {
  var state: UInt64

  init(seed: UInt64) { self.state = seed }

  mutating func next() -> UInt64 {
    self.state &+= 0x9E37_79B9_7F4A_7C15
    var z = self.state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

extension Duration {
  var seconds: Double {
    Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
  }

  var nanoseconds: Int64 {
    self.components.seconds * 1_000_000_000 + self.components.attoseconds / 1_000_000_000
  }
}
