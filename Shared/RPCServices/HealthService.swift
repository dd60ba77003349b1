public import GRPCRuntime
internal import Synchronization

/// `grpc.health.v1.Health`: Check and Watch for the server as a whole (service "") and for each
/// named service, with statuses the owner updates as its dependencies come and go.
public final class HealthService: Grpc_Health_V1_HealthHandler {
  public typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

  private struct State {
    var statuses: [String: Status] = ["": .serving]
    var watchers: [Int: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
    var nextWatcher = 0
  }

  private let state = Mutex(State())

  /// - Parameter services: names to report, all SERVING until changed (the server as a whole,
  ///   "", always is registered).
  public init(services: [String] = []) {
    self.state.withLock { state in
      for service in services { state.statuses[service] = .serving }
    }
  }

  /// Sets the status of `service` ("" for the whole server) and tells its watchers.
  public func setStatus(_ status: Status, forService service: String = "") {
    let continuations = self.state.withLock { state -> [AsyncStream<Status>.Continuation] in
      guard state.statuses[service] != status else { return [] }
      state.statuses[service] = status
      return state.watchers.values.filter { $0.service == service }.map(\.continuation)
    }
    for continuation in continuations { continuation.yield(status) }
  }

  /// Marks every service NOT_SERVING: at the start of a graceful shutdown, so load balancers
  /// stop sending new calls.
  public func enterShutdown() {
    let services = self.state.withLock { Array($0.statuses.keys) }
    for service in services { self.setStatus(.notServing, forService: service) }
  }

  public func status(forService service: String) -> Status? {
    self.state.withLock { $0.statuses[service] }
  }

  public func check(_ request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
    guard let status = self.status(forService: request.service) else {
      throw RPCError(.notFound, "Unknown service '\(request.service)'")
    }
    var response = Grpc_Health_V1_HealthCheckResponse()
    response.status = status
    return response
  }

  public func watch(
    _ request: Grpc_Health_V1_HealthCheckRequest,
    responses: ResponseStreamWriter<Grpc_Health_V1_HealthCheckResponse>,
    context: ServerContext
  ) async throws {
    let (changes, continuation) = AsyncStream.makeStream(of: Status.self, bufferingPolicy: .bufferingNewest(1))
    let (id, current) = self.state.withLock { state -> (Int, Status) in
      let id = state.nextWatcher
      state.nextWatcher += 1
      state.watchers[id] = (request.service, continuation)
      return (id, state.statuses[request.service] ?? .serviceUnknown)
    }
    defer { _ = self.state.withLock { $0.watchers.removeValue(forKey: id) } }
    var response = Grpc_Health_V1_HealthCheckResponse()
    response.status = current
    try await responses.write(response)
    try await withTaskCancellationHandler {
      for await status in changes {
        response.status = status
        try await responses.write(response)
      }
    } onCancel: {
      continuation.finish()
    }
  }
}
