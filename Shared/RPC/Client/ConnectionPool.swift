internal import NIOCore
internal import NIOPosix
internal import NIOSSL
internal import Synchronization
#if canImport(Glibc)
internal import Glibc
#endif

/// One open connection as the pool sees it.
struct PooledConnection: Sendable {
  let channel: any Channel
  let handler: NIOLoopBound<ClientConnectionHandler>
  let status: ConnectionStatus

  var isUsable: Bool { self.status.acceptsCalls.load(ordering: .relaxed) && self.channel.isActive }
  var load: Int { self.status.activeStreams.load(ordering: .relaxed) }
  var hasFreeStream: Bool { self.load < self.status.maxConcurrentStreams.load(ordering: .relaxed) }
}

/// The connections of a client: for each resolved address up to `maxConnectionsPerAddress`
/// connections, opened on demand when the existing ones have no free stream, picked
/// round-robin across addresses, reconnected with exponential backoff.
final class ConnectionPool: Sendable {
  private struct Subchannel {
    var endpoint: Endpoint
    var address: SocketAddress { self.endpoint.address }
    var connections: [PooledConnection] = []
    var connecting: Task<Void, any Error>?
    var failures = 0
    var retryAt: ContinuousClock.Instant?
    var lastError: String?
  }

  private struct State {
    var subchannels: [Subchannel] = []
    var resolvedAt: ContinuousClock.Instant?
    var resolving: Task<[Endpoint], any Error>?
    var next = 0
    var closed = false
  }

  private let configuration: RPCClientConfiguration
  private let group: any EventLoopGroup
  private let sslContext: NIOSSLContext?
  private let state = Mutex(State())

  init(configuration: RPCClientConfiguration, group: any EventLoopGroup) throws {
    self.configuration = configuration
    self.group = group
    self.sslContext = try configuration.tls.map { tls in
      var tls = tls
      tls.applicationProtocols = ["h2"]
      return try NIOSSLContext(configuration: tls)
    }
  }

  /// A connection with a stream reserved for one call (its active count already includes it).
  func acquire() async throws -> PooledConnection {
    try await self.resolveIfNeeded()
    for _ in 0..<8 {
      enum Step {
        case use(PooledConnection)
        case wait(Task<Void, any Error>)
        case fail(RPCError)
      }
      let step = self.state.withLock { state -> Step in
        if state.closed { return .fail(RPCError(.unavailable, "The client is closed")) }
        let now = ContinuousClock.now
        let count = state.subchannels.count
        var leastLoaded: (PooledConnection, Int)?
        var connectingTask: Task<Void, any Error>?
        var lastError: String?
        for offset in 0..<count {
          let index = (state.next + offset) % count
          state.subchannels[index].connections.removeAll { !$0.isUsable }
          let subchannel = state.subchannels[index]
          let best = subchannel.connections.min { $0.load < $1.load }
          if let best, best.hasFreeStream {
            state.next = (index + 1) % count
            best.status.activeStreams.add(1, ordering: .relaxed)
            return .use(best)
          }
          if let best, leastLoaded == nil || best.load < leastLoaded!.1 { leastLoaded = (best, best.load) }
          lastError = subchannel.lastError ?? lastError
          if let task = subchannel.connecting {
            connectingTask = connectingTask ?? task
            continue
          }
          let canOpen = subchannel.connections.count < self.configuration.maxConnectionsPerAddress
          let backingOff = subchannel.retryAt.map { $0 > now } ?? false
          if canOpen && !backingOff {
            let task = self.connect(subchannelAt: index, endpoint: subchannel.endpoint)
            state.subchannels[index].connecting = task
            connectingTask = connectingTask ?? task
          }
        }
        if let (connection, _) = leastLoaded, connectingTask == nil {
          // Every connection is at the server's stream limit and no more may be opened: nghttp2
          // queues the stream until one finishes, which is what the server asked for.
          connection.status.activeStreams.add(1, ordering: .relaxed)
          return .use(connection)
        }
        if let connectingTask { return .wait(connectingTask) }
        return .fail(RPCError(.unavailable, "No connection to \(self.configuration.targets.joined(separator: ",")): \(lastError ?? "backing off")"))
      }
      switch step {
      case .use(let connection):
        return connection
      case .fail(let error):
        // A later call re-resolves: the addresses may have changed.
        self.state.withLock { $0.resolvedAt = nil }
        throw error
      case .wait(let task):
        _ = try? await task.value
      }
    }
    throw RPCError(.unavailable, "Could not obtain a connection")
  }

  private func connect(subchannelAt index: Int, endpoint: Endpoint) -> Task<Void, any Error> {
    let address = endpoint.address
    return Task {
      do {
        let connection = try await self.openConnection(to: endpoint)
        self.state.withLock { state in
          guard index < state.subchannels.count, state.subchannels[index].address == address else { return }
          state.subchannels[index].connections.append(connection)
          state.subchannels[index].connecting = nil
          state.subchannels[index].failures = 0
          state.subchannels[index].retryAt = nil
          state.subchannels[index].lastError = nil
          if state.closed { connection.channel.close(promise: nil) }
        }
      } catch {
        self.state.withLock { state in
          guard index < state.subchannels.count, state.subchannels[index].address == address else { return }
          state.subchannels[index].connecting = nil
          state.subchannels[index].failures += 1
          state.subchannels[index].retryAt = .now + self.backoff(failures: state.subchannels[index].failures)
          state.subchannels[index].lastError = "\(error)"
        }
        throw error
      }
    }
  }

  /// gRPC's connection backoff: initial × multiplier^(failures-1), capped, with jitter.
  private func backoff(failures: Int) -> Duration {
    let backoff = self.configuration.backoff
    var seconds = Double(backoff.initial.components.seconds) + Double(backoff.initial.components.attoseconds) / 1e18
    let maximum = Double(backoff.maximum.components.seconds)
    for _ in 1..<max(failures, 1) { seconds = min(seconds * backoff.multiplier, maximum) }
    seconds *= 1 + Double.random(in: -backoff.jitter...backoff.jitter)
    return .milliseconds(Int64(seconds * 1000))
  }

  private func openConnection(to endpoint: Endpoint) async throws -> PooledConnection {
    let configuration = self.configuration
    let sslContext = self.sslContext
    // The name of the target this address came from: checked against the certificate and sent
    // as `:authority`, unless the configuration overrides it.
    let hostname = configuration.serverHostname ?? endpoint.host
    let authority = configuration.serverHostname ?? endpoint.target
    let status = ConnectionStatus()
    let channel = try await ClientBootstrap(group: self.group)
      .connectTimeout(configuration.connectTimeout.timeAmount)
      .channelOption(.socketOption(.tcp_nodelay), value: 1)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          if let sslContext {
            let isIP = (try? SocketAddress(ipAddress: hostname, port: 0)) != nil
            try channel.pipeline.syncOperations.addHandler(
              NIOSSLClientHandler(context: sslContext, serverHostname: isIP ? nil : hostname))
          }
          try channel.pipeline.syncOperations.addHandler(
            ClientConnectionHandler(configuration: configuration, authority: authority, secure: sslContext != nil, status: status))
        }
      }
      .connect(to: endpoint.address)
      .get()
    let handler = try await channel.eventLoop.submit {
      // A connection the server closed as it opened has already lost its handlers.
      guard channel.isActive, let handler = try? channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self) else {
        throw RPCError(.unavailable, "The server closed the connection as it opened")
      }
      return NIOLoopBound(handler, eventLoop: channel.eventLoop)
    }.get()
    return PooledConnection(channel: channel, handler: handler, status: status)
  }

  /// Closes every connection; calls in flight fail with UNAVAILABLE.
  func close() async {
    let channels = self.state.withLock { state -> [any Channel] in
      state.closed = true
      return state.subchannels.flatMap { $0.connections.map(\.channel) }
    }
    for channel in channels {
      try? await channel.close()
    }
  }

  // MARK: Resolution

  private func resolveIfNeeded() async throws {
    let task = self.state.withLock { state -> Task<[Endpoint], any Error>? in
      if let resolvedAt = state.resolvedAt, resolvedAt + .seconds(30) > .now, !state.subchannels.isEmpty { return nil }
      if let resolving = state.resolving { return resolving }
      let targets = self.configuration.targets
      let task = Task { try await Self.resolve(targets) }
      state.resolving = task
      return task
    }
    guard let task else { return }
    do {
      let addresses = try await task.value
      self.state.withLock { state in
        state.resolving = nil
        state.resolvedAt = .now
        // Keep the subchannels (and their connections) of addresses still present.
        var subchannels: [Subchannel] = []
        for endpoint in addresses {
          if let existing = state.subchannels.first(where: { $0.endpoint == endpoint }) {
            subchannels.append(existing)
          } else {
            subchannels.append(Subchannel(endpoint: endpoint))
          }
        }
        state.subchannels = subchannels
      }
    } catch {
      self.state.withLock { $0.resolving = nil }
      throw error
    }
  }

  static func split(_ target: String) throws -> (String, Int) {
    var host: Substring
    let portText: Substring
    if target.hasPrefix("[") {
      guard let close = target.firstIndex(of: "]") else { throw RPCError(.invalidArgument, "Bad target '\(target)'") }
      host = target[target.index(after: target.startIndex)..<close]
      portText = target[target.index(after: close)...].drop { $0 == ":" }
    } else if let colon = target.lastIndex(of: ":") {
      host = target[..<colon]
      portText = target[target.index(after: colon)...]
    } else {
      throw RPCError(.invalidArgument, "Target '\(target)' needs a port (host:port)")
    }
    if host.isEmpty { host = "127.0.0.1" }
    guard let port = Int(portText), (0...65535).contains(port) else {
      throw RPCError(.invalidArgument, "Bad port in target '\(target)'")
    }
    return (String(host), port)
  }

  /// One address to connect to, with the target (`host:port`) it was resolved from.
  struct Endpoint: Hashable, Sendable {
    var address: SocketAddress
    var target: String
    var host: String
  }

  /// Resolves every target to all its addresses (getaddrinfo, on NIO's thread pool).
  static func resolve(_ targets: [String]) async throws -> [Endpoint] {
    var addresses: [Endpoint] = []
    for target in targets {
      let (host, port) = try Self.split(target)
      if let literal = try? SocketAddress(ipAddress: host, port: port) {
        addresses.append(Endpoint(address: literal, target: target, host: host))
        continue
      }
      let resolved = try await NIOThreadPool.singleton.runIfActive { try Self.getaddrinfo(host: host, port: port) }
      addresses.append(contentsOf: resolved.map { Endpoint(address: $0, target: target, host: host) })
    }
    var unique: [Endpoint] = []
    for endpoint in addresses where !unique.contains(where: { $0.address == endpoint.address }) { unique.append(endpoint) }
    guard !unique.isEmpty else { throw RPCError(.unavailable, "No address for \(targets)") }
    return unique
  }

  private static func getaddrinfo(host: String, port: Int) throws -> [SocketAddress] {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    let status = Glibc.getaddrinfo(host, String(port), &hints, &result)
    guard status == 0, let first = result else {
      throw RPCError(.unavailable, "Could not resolve '\(host)': \(String(cString: gai_strerror(status)))")
    }
    defer { freeaddrinfo(first) }
    var addresses: [SocketAddress] = []
    var current: UnsafeMutablePointer<addrinfo>? = first
    while let info = current {
      if let address = info.pointee.ai_addr {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
          address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
            addresses.append(SocketAddress($0.pointee, host: host))
          }
        case AF_INET6:
          address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
            addresses.append(SocketAddress($0.pointee, host: host))
          }
        default:
          break
        }
      }
      current = info.pointee.ai_next
    }
    return addresses
  }
}
