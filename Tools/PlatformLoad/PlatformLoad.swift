internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import GRPCRuntimeServices
internal import PlatformProtos
internal import SwiftProtobuf
internal import Synchronization

/// A fixed-rate (open-loop) load generator for any unary RPC of the platform's services,
/// on our own client. Latency counts from each call's intended send time, so a stalled server
/// is not hidden by a generator that waited for it (coordinated omission; wrk2, ghz).
@main
struct PlatformLoad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "platform-load",
    abstract: "Fixed-rate gRPC load against one RPC of a platform service, with percentiles from an HdrHistogram.",
    discussion: """
      Exit codes: 0 when every objective (--p50 … --max-errors) is met, 2 when one is not, \
      1 when the load could not run. Scenario files: Tools/PlatformLoad/Scenarios.
      """,
    subcommands: [Run.self, Methods.self, SelfTest.self],
    defaultSubcommand: Run.self
  )

  /// Every unary method of the platform's services (and gRPC health), by `service/method`.
  static let callers: [String: UnaryMethodCaller] = {
    let all = [
      Platform_Agent_V1_AuthService.unaryCallers, Platform_Agent_V1_UserService.unaryCallers,
      Platform_Agent_V1_AgentService.unaryCallers, Platform_Agent_V1_ExecutionService.unaryCallers,
      Platform_Persona_V1_PersonaService.unaryCallers, Platform_Codesandbox_V1_CodeSandboxService.unaryCallers,
      Platform_Texttosql_V1_DatabaseService.unaryCallers, Platform_Texttosql_V1_QueryService.unaryCallers,
      Platform_Knowledge_V1_KnowledgeService.unaryCallers, Platform_Workflow_V1_WorkflowService.unaryCallers,
      Grpc_Health_V1_Health.unaryCallers,
    ].joined()
    return Dictionary(uniqueKeysWithValues: all.map { ("\($0.method.service)/\($0.method.method)", $0) })
  }()
}

struct Methods: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "methods", abstract: "List the RPCs platform-load can call.")

  func run() {
    for name in PlatformLoad.callers.keys.sorted() { print(name) }
  }
}

/// A scenario file: the options of one run, which flags on the command line override.
struct Scenario: Decodable {
  var address: String?
  var method: String?
  /// The request template: a JSON object, or a string when a placeholder stands where JSON
  /// needs a value (`"top_k": {{n}}`).
  var data: TemplateSource?
  var variables: [[String: VariableValue]]?
  var rate: Double?
  var duration: String?
  var warmup: String?
  var connections: Int?
  var maxInFlight: Int?
  var timeout: String?
  var metadata: [String: String]?
  var objectives: [String: VariableValue]?

  enum CodingKeys: String, CodingKey {
    case address, method, data, variables, rate, duration, warmup, connections, timeout, metadata, objectives
    case maxInFlight = "max_in_flight"
  }

  struct TemplateSource: Decodable {
    var text: String
    init(from decoder: any Swift.Decoder) throws {
      let container = try decoder.singleValueContainer()
      if let text = try? container.decode(String.self) {
        self.text = text
      } else {
        let object = try container.decode(JSONObject.self)
        self.text = String(decoding: try JSONSerialization.data(withJSONObject: object.value, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
      }
    }
  }

  struct VariableValue: Decodable {
    var text: String
    init(from decoder: any Swift.Decoder) throws {
      let container = try decoder.singleValueContainer()
      if let string = try? container.decode(String.self) { self.text = string }
      else if let int = try? container.decode(Int.self) { self.text = String(int) }
      else { self.text = String(try container.decode(Double.self)) }
    }
  }
}

/// Any JSON value, for a scenario's `data` object.
struct JSONObject: Decodable {
  var value: Any

  init(from decoder: any Swift.Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() { self.value = NSNull() }
    else if let bool = try? container.decode(Bool.self) { self.value = bool }
    else if let int = try? container.decode(Int.self) { self.value = int }
    else if let double = try? container.decode(Double.self) { self.value = double }
    else if let string = try? container.decode(String.self) { self.value = string }
    else if let array = try? container.decode([JSONObject].self) { self.value = array.map(\.value) }
    else { self.value = try container.decode([String: JSONObject].self).mapValues(\.value) }
  }
}

struct Run: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "run", abstract: "Send one RPC at a fixed rate and report latency percentiles.")

  @Option(help: "A scenario file (JSON): defaults for every option below.") var scenario: String?
  @Option(help: "The server, host:port (default 127.0.0.1:50052).") var address: String?
  @Option(help: "The RPC, as package.Service/Method (see `platform-load methods`).") var method: String?
  @Option(help: "The request in protobuf JSON, with placeholders {{n}} {{uuid}} {{random}} {{var.NAME}} {{env.NAME}}.") var data: String?
  @Option(help: "A file holding the request template (instead of --data).") var dataFile: String?
  @Option(help: "A JSON array of objects: request n fills {{var.NAME}} from element n mod count.") var variables: String?
  @Option(help: "Calls per second (open loop).") var rate: Double?
  @Option(help: "How long to measure, e.g. 30s.") var duration: String?
  @Option(help: "Calls sent but not measured first, e.g. 2s.") var warmup: String?
  @Option(help: "Connections the calls are spread over, round-robin.") var connections: Int?
  @Option(help: "The most calls in flight; a call due while all are busy waits, timed from when it was due.") var maxInFlight: Int?
  @Option(help: "Each call's deadline, e.g. 10s.") var timeout: String?
  @Option(name: .customLong("metadata"), help: "key=value request metadata (repeatable).") var metadataPairs: [String] = []
  @Option(help: "Objective: the 50th percentile at most this, e.g. 2ms.") var p50: String?
  @Option(help: "Objective for the 90th percentile.") var p90: String?
  @Option(help: "Objective for the 99th percentile.") var p99: String?
  @Option(help: "Objective for the 99.9th percentile.") var p999: String?
  @Option(help: "Objective: at most this many failed calls.") var maxErrors: Int?
  @Flag(help: "Print the report as one JSON object.") var json = false
  @Flag(help: "Check the options and print the first request as the server would get it, without sending anything.") var dryRun = false

  func run() async throws {
    let scenario = try self.scenario.map { path in
      try JSONDecoder().decode(Scenario.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    } ?? Scenario()
    let environment = ProcessInfo.processInfo.environment

    guard let methodName = self.method ?? scenario.method else { throw ValidationError("--method is required (or a scenario's \"method\")") }
    let name = methodName.hasPrefix("/") ? String(methodName.dropFirst()) : methodName
    guard let caller = PlatformLoad.callers[name] else {
      throw ValidationError("Unknown unary method '\(methodName)'; `platform-load methods` lists them")
    }
    let variables: [[String: String]]
    if let path = self.variables {
      variables = try RequestTemplate.variables(json: Data(contentsOf: URL(fileURLWithPath: path)))
    } else {
      variables = (scenario.variables ?? []).map { $0.mapValues(\.text) }
    }
    let source = try self.dataFile.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? self.data ?? scenario.data?.text ?? "{}"
    let template = try RequestTemplate(source, variables: variables, environment: environment)
    // The first request must parse: a template error shows before any load is sent.
    let first = try caller.request(json: template.render(number: 0))
    if self.dryRun {
      print("\(name): \(try first.jsonString())")
      return
    }

    func duration(_ flag: String?, _ fromScenario: String?, _ fallback: String, _ name: String) throws -> Duration {
      let text = flag ?? fromScenario ?? fallback
      guard let value = parseDuration(text) else { throw ValidationError("--\(name): '\(text)' is not a duration (5ms, 1.5s, 2m)") }
      return value
    }
    let plan = LoadPlan(
      rate: self.rate ?? scenario.rate ?? 100,
      duration: try duration(self.duration, scenario.duration, "10s", "duration"),
      warmup: try duration(self.warmup, scenario.warmup, "1s", "warmup"),
      maxInFlight: self.maxInFlight ?? scenario.maxInFlight ?? 1_000)
    guard plan.rate > 0, plan.rate <= 1_000_000 else { throw ValidationError("--rate must be in (0, 1000000]") }
    guard plan.maxInFlight > 0 else { throw ValidationError("--max-in-flight must be positive") }
    let timeout = try duration(self.timeout, scenario.timeout, "10s", "timeout")

    var objectives = Objectives(maxErrors: self.maxErrors ?? scenario.objectives?["max_errors"].flatMap { Int($0.text) })
    for (percentile, flag, key) in [(50.0, self.p50, "p50"), (90, self.p90, "p90"), (99, self.p99, "p99"), (99.9, self.p999, "p999")] {
      guard let text = flag ?? scenario.objectives?[key]?.text else { continue }
      guard let bound = parseDuration(text) else { throw ValidationError("--\(key): '\(text)' is not a duration") }
      objectives.percentiles.append((percentile, bound))
    }

    var callOptions = CallOptions(timeout: timeout)
    var metadata = scenario.metadata ?? [:]
    for pair in self.metadataPairs {
      guard let equals = pair.firstIndex(of: "=") else { throw ValidationError("--metadata '\(pair)': want key=value") }
      metadata[String(pair[..<equals]).lowercased()] = String(pair[pair.index(after: equals)...])
    }
    if metadata["x-api-key"] == nil, metadata["authorization"] == nil, let key = environment["PLATFORM_API_KEY"] {
      metadata["x-api-key"] = key
    }
    for (key, value) in metadata { callOptions.metadata.addString(value, forKey: key) }
    let options = callOptions

    let address = self.address ?? scenario.address ?? "127.0.0.1:50052"
    let connections = max(1, self.connections ?? scenario.connections ?? 1)
    let clients = try (0..<connections).map { _ in
      try RPCClient(configuration: .defaults(targets: [address]) { $0.maxConnectionsPerAddress = 1 })
    }
    let constant = template.isConstant ? first : nil
    let result = await OpenLoop.run(plan) { number in
      do {
        let request = try constant ?? caller.request(json: template.render(number: number))
        _ = try await caller.call(request, on: clients[number % clients.count], options: options)
        return .ok
      } catch let error as RPCError {
        Failures.report(error)
        return error.code
      } catch {
        Failures.report(error)
        return .unknown
      }
    }
    for client in clients { await client.close() }

    let violations = objectives.violations(of: result)
    print(self.json
      ? Report.json(result, method: name, plan: plan, violations: violations)
      : Report.human(result, method: name, plan: plan, violations: violations))
    if !violations.isEmpty { throw ExitCode(2) }
  }
}

/// The first few failures, on standard error: a run of errors is usually one cause.
enum Failures {
  private static let reported = Mutex(0)

  static func report(_ error: any Error) {
    guard reported.withLock({ count in count += 1; return count <= 5 }) else { return }
    FileHandle.standardError.write(Data("call failed: \(error)\n".utf8))
  }
}
