public import CoreMetrics
public import Logging
public import NIOCore
public import NIOPosix
internal import NIOSSL
internal import Synchronization
public import Tracing

/// A pooled, pipelining Redis client.
///
/// Commands go out on `poolSize` connections, round-robin; each connection carries any number
/// of commands at once and writes those queued in one event-loop turn together. Every command
/// has a timeout. A lost connection is reopened on the next command; while Redis cannot be
/// reached, connection attempts back off exponentially and commands fail at once with
/// `RedisError.Code.unavailable` instead of waiting, so callers can fall back (a cache reads the
/// database instead). One warning is logged when Redis becomes unreachable and one notice when
/// it is back, not one per command.
public final class RedisClient: Sendable {
  public let configuration: RedisConfiguration
  let group: any EventLoopGroup
  let sslContext: NIOSSLContext?
  let logger: Logger
  private let state: Mutex<State>
  let metrics: RedisMetrics
  /// Records each command as a client span (its name, never its arguments); nil: no spans.
  let tracer: (any Tracer)?

  private enum Slot {
    case idle
    case connecting(Task<RedisConnection, any Error>)
    case ready(RedisConnection)
  }

  private struct State {
    var slots: [Slot]
    var next = 0
    var closed = false
    /// Consecutive failed connection attempts; 0 while Redis is reachable.
    var failures = 0
    var retryAt: ContinuousClock.Instant?
    var lastError: RedisError?
    var outageSince: ContinuousClock.Instant?
  }

  /// - Parameters:
  ///   - configuration: where Redis is, pool size, timeouts and limits.
  ///   - group: the event loops connections run on (default NIO's singleton group).
  ///   - logger: outages and recoveries are logged here.
  ///   - metrics: where commands, errors and outages are counted (default the process's
  ///     `MetricsSystem`).
  ///   - tracer: records every command as a span under the current one (default none).
  /// - Throws: when the TLS configuration is invalid.
  public init(
    configuration: RedisConfiguration,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    logger: Logger,
    metrics: any MetricsFactory = MetricsSystem.factory,
    tracer: (any Tracer)? = nil
  ) throws {
    self.configuration = configuration
    self.tracer = tracer
    self.metrics = RedisMetrics(factory: metrics)
    self.group = group
    self.logger = logger
    self.sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
    self.state = Mutex(State(slots: Array(repeating: .idle, count: max(configuration.poolSize, 1))))
  }

  /// Sends `command` and returns its reply.
  /// - Throws: `RedisError`: `.server` for an error reply, `.unavailable` when no connection
  ///   can be had, `.timeout`, `.connectionClosed` or `.protocolViolation` when the connection
  ///   failed with the command on it (it may or may not have run).
  public func send(_ command: RedisCommand) async throws -> RESPValue {
    let name = command.name
    self.metrics.sent(name)
    let span = self.tracer == nil ? nil : self.startSpan(name)
    do {
      let connection = try await self.connection()
      let reply = try await connection.send(command).get()
      if case .error(let message) = reply { throw RedisError(.server, message) }
      span?.end()
      return reply
    } catch {
      self.metrics.failed(error)
      span?.finish(failedWith: error)
      throw error
    }
  }

  /// Sends `commands` together on one connection, in order, and returns their replies in the
  /// same order; error replies are returned in place, not thrown.
  /// - Throws: `RedisError` when the connection fails (none of the replies are returned then).
  public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
    guard !commands.isEmpty else { return [] }
    var start = commands.startIndex
    while start < commands.endIndex {
      let name = commands[start].name
      let end = commands[start...].firstIndex { $0.name != name } ?? commands.endIndex
      self.metrics.sent(name, count: end - start)
      start = end
    }
    let span = self.tracer == nil ? nil : self.startSpan("PIPELINE")
    span?.attributes["db.operation.batch.size"] = Int64(commands.count)
    do {
      let connection = try await self.connection()
      let replies = try await connection.send(commands).get()
      span?.end()
      return replies
    } catch {
      self.metrics.failed(error)
      span?.finish(failedWith: error)
      throw error
    }
  }

  private func startSpan(_ operation: String) -> (any Span)? {
    guard let tracer = self.tracer else { return nil }
    let span = tracer.startSpan(operation, context: InstrumentationContext.current ?? .topLevel, ofKind: .client)
    span.updateAttributes { attributes in
      attributes["db.system.name"] = "redis"
      attributes["db.operation.name"] = operation
      attributes["db.namespace"] = "\(self.configuration.database)"
    }
    return span
  }

  /// Closes every connection; commands in flight fail with `.connectionClosed`, later ones with
  /// `.closed`.
  public func close() async {
    var (connections, tasks) = self.state.withLock { state -> ([RedisConnection], [Task<RedisConnection, any Error>]) in
      state.closed = true
      var connections: [RedisConnection] = []
      var tasks: [Task<RedisConnection, any Error>] = []
      for slot in state.slots {
        switch slot {
        case .ready(let connection): connections.append(connection)
        case .connecting(let task): tasks.append(task)
        case .idle: break
        }
      }
      state.slots = state.slots.map { _ in .idle }
      return (connections, tasks)
    }
    for task in tasks {
      if let connection = try? await task.value { connections.append(connection) }
    }
    for connection in connections {
      connection.close()
      try? await connection.channel.closeFuture.get()
    }
  }

  /// Whether the last connection attempt succeeded (false during an outage).
  public var isReachable: Bool {
    self.state.withLock { $0.failures == 0 }
  }

  /// A working connection, round-robin over the pool.
  func connection() async throws -> RedisConnection {
    enum Step {
      case use(RedisConnection)
      case wait(Task<RedisConnection, any Error>)
      case fail(RedisError)
    }
    let step = self.state.withLock { state -> Step in
      if state.closed { return .fail(RedisError(.closed, "The Redis client is closed")) }
      let count = state.slots.count
      var connecting: Task<RedisConnection, any Error>?
      for offset in 0..<count {
        let index = (state.next + offset) % count
        if case .ready(let connection) = state.slots[index] {
          if connection.isActive {
            state.next = (index + 1) % count
            return .use(connection)
          }
          state.slots[index] = .idle
        }
        switch state.slots[index] {
        case .connecting(let task):
          connecting = connecting ?? task
        case .idle:
          if let retryAt = state.retryAt, retryAt > .now { continue }
          let task = Task { try await self.open(slot: index) }
          state.slots[index] = .connecting(task)
          // While backing off, only the next attempt is started; nobody waits for it.
          if state.failures > 0 { state.retryAt = .now + self.backoff(failures: state.failures) }
          connecting = connecting ?? task
        case .ready:
          break
        }
      }
      // A first connection, or a reconnect after a connection was lost, is worth waiting for;
      // during an outage commands fail at once.
      if let connecting, state.failures == 0 { return .wait(connecting) }
      return .fail(
        RedisError(.unavailable, "Redis is unavailable: \(state.lastError?.message ?? "connecting")"))
    }
    switch step {
    case .use(let connection): return connection
    case .wait(let task): return try await task.value
    case .fail(let error): throw error
    }
  }

  private func open(slot index: Int) async throws -> RedisConnection {
    do {
      let connection = try await RedisConnection.connect(
        configuration: self.configuration, sslContext: self.sslContext, group: self.group)
      let (keep, outage) = self.state.withLock { state -> (Bool, Duration?) in
        guard !state.closed else { return (false, nil) }
        state.slots[index] = .ready(connection)
        let outage = state.outageSince.map { ContinuousClock.now - $0 }
        state.failures = 0
        state.retryAt = nil
        state.lastError = nil
        state.outageSince = nil
        return (true, outage)
      }
      guard keep else {
        connection.close()
        throw RedisError(.closed, "The Redis client is closed")
      }
      if let outage {
        self.logger.notice(
          "Redis is reachable again", metadata: ["redis": "\(self.configuration.description)", "outage": "\(outage)"])
      }
      return connection
    } catch let error as RedisError {
      let first = self.state.withLock { state -> Bool in
        if case .connecting = state.slots[index] { state.slots[index] = .idle }
        guard !state.closed else { return false }
        state.failures += 1
        state.retryAt = .now + self.backoff(failures: state.failures)
        state.lastError = error
        if state.outageSince == nil {
          state.outageSince = .now
          return true
        }
        return false
      }
      if first {
        self.metrics.outages.increment()
        self.logger.warning(
          "Redis is unreachable; commands fail fast until it is back",
          metadata: ["redis": "\(self.configuration.description)", "error": "\(error.message)"])
      }
      throw error
    }
  }

  /// initial × 2^(failures-1), capped at the maximum, ±20% jitter.
  func backoff(failures: Int) -> Duration {
    let (initial, maximum) = self.configuration.reconnectBackoff
    var wait = initial
    for _ in 1..<max(failures, 1) where wait < maximum { wait *= 2 }
    return min(wait, maximum) * Double.random(in: 0.8...1.2)
  }
}

extension Span {
  fileprivate func finish(failedWith error: any Error) {
    let code = (error as? RedisError).map { "\($0.code)" } ?? "other"
    self.attributes["error.type"] = code
    self.setStatus(SpanStatus(code: .error, message: code))
    self.end()
  }
}
