public import Logging
public import NIOCore
internal import NIOPosix
internal import NIOSSL
public import ServiceLifecycle
internal import Synchronization

/// What every connection of a server shares.
final class ServerShared: Sendable {
  let configuration: RPCServerConfiguration
  /// The methods, each with its interceptor chain.
  let router: RPCRouter
  let logger: Logger
  let connections = ConnectionRegistry()

  init(configuration: RPCServerConfiguration, router: RPCRouter, interceptors: [any ServerInterceptor], logger: Logger) {
    self.configuration = configuration
    self.router = router.intercepted(by: interceptors)
    self.logger = logger
  }
}

/// The open connections of a server, so shutdown can reach each on its event loop.
final class ConnectionRegistry: Sendable {
  private struct State {
    var connections: [ObjectIdentifier: NIOLoopBound<ServerConnectionHandler>] = [:]
    var waiters: [CheckedContinuation<Void, Never>] = []
  }
  private let state = Mutex(State())

  func register(_ connection: ServerConnectionHandler, eventLoop: any EventLoop) {
    let bound = NIOLoopBound(connection, eventLoop: eventLoop)
    self.state.withLock { $0.connections[ObjectIdentifier(connection)] = bound }
  }

  func unregister(_ connection: ServerConnectionHandler) {
    let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
      state.connections[ObjectIdentifier(connection)] = nil
      guard state.connections.isEmpty else { return [] }
      defer { state.waiters = [] }
      return state.waiters
    }
    for waiter in waiters { waiter.resume() }
  }

  var count: Int { self.state.withLock { $0.connections.count } }

  /// Runs `body` on every connection's event loop.
  func forEach(_ body: @escaping @Sendable (ServerConnectionHandler) -> Void) {
    let connections = self.state.withLock { Array($0.connections.values) }
    for connection in connections {
      connection.eventLoop.execute { body(connection.value) }
    }
  }

  /// Returns once every connection has closed.
  func waitUntilEmpty() async {
    await withCheckedContinuation { continuation in
      let done = self.state.withLock { state -> Bool in
        if state.connections.isEmpty { return true }
        state.waiters.append(continuation)
        return false
      }
      if done { continuation.resume() }
    }
  }
}

/// A gRPC server over HTTP/2 (libnghttp2) on swift-nio.
///
/// `run()` binds, serves until its task is cancelled or a graceful shutdown is triggered
/// (swift-service-lifecycle: SIGTERM), and then drains: every connection gets a GOAWAY, calls
/// in flight finish within `shutdownGracePeriod`, and the remaining connections are closed.
///
/// ```swift
/// let server = RPCServer(configuration: .defaults { $0.port = 50052 }, services: [MyService()])
/// try await server.run()
/// ```
public final class RPCServer: Service, Sendable {
  private let shared: ServerShared
  private let group: any EventLoopGroup
  private let bound = Mutex<BoundState>(.idle([]))

  private enum BoundState {
    case idle([CheckedContinuation<SocketAddress, any Error>])
    case listening(SocketAddress)
    case stopped
  }

  /// - Parameters:
  ///   - configuration: address, TLS and limits.
  ///   - services: the services to serve.
  ///   - interceptors: run around every call they intercept, first to last.
  ///   - logger: connection-level events (debug) and failures.
  ///   - eventLoopGroup: defaults to `RuntimeEventLoops.shared` (one loop per usable CPU).
  public init(
    configuration: RPCServerConfiguration = .defaults,
    services: [any RPCService],
    interceptors: [any ServerInterceptor] = [],
    logger: Logger = Logger(label: "rpc.server"),
    eventLoopGroup: any EventLoopGroup = RuntimeEventLoops.shared
  ) {
    self.shared = ServerShared(
      configuration: configuration, router: RPCRouter(services: services),
      interceptors: interceptors, logger: logger)
    self.group = eventLoopGroup
  }

  /// The address the server listens on, once `run()` has bound it.
  public var listeningAddress: SocketAddress {
    get async throws {
      try await withCheckedThrowingContinuation { continuation in
        let ready = self.bound.withLock { state -> Result<SocketAddress, any Error>? in
          switch state {
          case .idle(var waiters):
            waiters.append(continuation)
            state = .idle(waiters)
            return nil
          case .listening(let address):
            return .success(address)
          case .stopped:
            return .failure(RPCError(.unavailable, "The server is not running"))
          }
        }
        if let ready { continuation.resume(with: ready) }
      }
    }
  }

  /// The port the server listens on, once `run()` has bound it.
  public var listeningPort: Int {
    get async throws { try await self.listeningAddress.port ?? 0 }
  }

  public func run() async throws {
    let shared = self.shared
    let sslContext = try shared.configuration.tls.map { tls -> NIOSSLContext in
      var tls = tls
      tls.applicationProtocols = ["h2"]
      return try NIOSSLContext(configuration: tls)
    }
    let channel: any Channel
    do {
      channel = try await ServerBootstrap(group: self.group)
        .serverChannelOption(.backlog, value: 1024)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelOption(.maxMessagesPerRead, value: 16)
        .childChannelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            if let sslContext {
              try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
            }
            try channel.pipeline.syncOperations.addHandler(ServerConnectionHandler(shared: shared))
          }
        }
        .bind(host: shared.configuration.host, port: shared.configuration.port)
        .get()
    } catch {
      self.markStopped(error: error)
      throw error
    }
    self.markListening(channel.localAddress!)
    shared.logger.info("serving gRPC", metadata: ["address": "\(channel.localAddress!)", "tls": "\(sslContext != nil)"])

    await withTaskCancellationHandler {
      await withGracefulShutdownHandler {
        try? await channel.closeFuture.get()
      } onGracefulShutdown: {
        channel.close(promise: nil)
      }
    } onCancel: {
      channel.close(promise: nil)
    }
    // The listener is closed: drain the connections.
    if Task.isCancelled {
      shared.connections.forEach { $0.forceClose() }
    } else {
      shared.connections.forEach { $0.beginGracefulShutdown() }
    }
    await shared.connections.waitUntilEmpty()
    self.markStopped(error: nil)
    shared.logger.info("gRPC server stopped")
  }

  private func markListening(_ address: SocketAddress) {
    let waiters = self.bound.withLock { state -> [CheckedContinuation<SocketAddress, any Error>] in
      guard case .idle(let waiters) = state else { return [] }
      state = .listening(address)
      return waiters
    }
    for waiter in waiters { waiter.resume(returning: address) }
  }

  private func markStopped(error: (any Error)?) {
    let waiters = self.bound.withLock { state -> [CheckedContinuation<SocketAddress, any Error>] in
      defer { state = .stopped }
      guard case .idle(let waiters) = state else { return [] }
      return waiters
    }
    for waiter in waiters { waiter.resume(throwing: error ?? RPCError(.unavailable, "The server stopped")) }
  }
}
