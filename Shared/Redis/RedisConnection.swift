internal import Logging
internal import NIOConcurrencyHelpers
internal import NIOCore
internal import NIOPosix
internal import NIOSSL
internal import Synchronization

/// One connection to Redis. Commands from any thread are encoded into an outbox and written
/// together once per event-loop turn (automatic pipelining); replies are matched to commands in
/// the order they were written, and when anything breaks that order (a timeout, a protocol
/// error, a closed socket) the connection is closed and every command on it fails: a reply is
/// never handed to the wrong command.
final class RedisConnection: Sendable {
  let channel: any Channel
  private let handler: NIOLoopBound<RedisChannelHandler>
  private let outbox: NIOLockedValueBox<Outbox>
  private let health: ConnectionHealth

  private struct Outbox {
    var bytes: ByteBuffer?
    var waiters: [ReplyWaiter] = []
    var flushScheduled = false
    var closed = false
  }

  private init(channel: any Channel, handler: NIOLoopBound<RedisChannelHandler>, health: ConnectionHealth) {
    self.channel = channel
    self.handler = handler
    self.health = health
    self.outbox = NIOLockedValueBox(Outbox())
  }

  /// Whether commands can still go out on it: open, and not failed (a TLS channel stays active
  /// for a while after a failure, until its close_notify exchange gives up).
  var isActive: Bool { self.channel.isActive && !self.health.broken.load(ordering: .relaxed) }

  /// Queues `command`; the future completes with its reply (an error reply too).
  func send(_ command: RedisCommand) -> EventLoopFuture<RESPValue> {
    let promise = self.channel.eventLoop.makePromise(of: RESPValue.self)
    self.enqueue(CollectionOfOne(command), .one(promise))
    return promise.futureResult
  }

  /// Queues `commands` in order; the future completes with all their replies, in order, once
  /// the last has come (error replies in place).
  func send(_ commands: [RedisCommand]) -> EventLoopFuture<[RESPValue]> {
    let promise = self.channel.eventLoop.makePromise(of: [RESPValue].self)
    if commands.isEmpty {
      promise.succeed([])
    } else {
      self.enqueue(commands, .many(commands.count, promise))
    }
    return promise.futureResult
  }

  private func enqueue(_ commands: some Collection<RedisCommand>, _ waiter: ReplyWaiter) {
    let scheduleFlush = self.outbox.withLockedValue { outbox -> Bool? in
      if outbox.closed { return nil }
      var bytes = outbox.bytes ?? self.channel.allocator.buffer(capacity: 256)
      outbox.bytes = nil  // keep the buffer uniquely referenced while writing into it
      for command in commands { command.encode(into: &bytes) }
      outbox.bytes = bytes
      outbox.waiters.append(waiter)
      defer { outbox.flushScheduled = true }
      return !outbox.flushScheduled
    }
    switch scheduleFlush {
    case nil:
      waiter.fail(RedisError(.connectionClosed, "The Redis connection is closed"))
    case true?:
      self.channel.eventLoop.execute { self.flush() }
    case false?:
      break
    }
  }

  /// Writes what the outbox holds; runs on the event loop.
  private func flush() {
    let (bytes, waiters) = self.outbox.withLockedValue { outbox in
      defer {
        outbox.bytes = nil
        outbox.waiters.removeAll(keepingCapacity: true)
        outbox.flushScheduled = false
      }
      return (outbox.bytes, outbox.waiters)
    }
    guard let bytes, !waiters.isEmpty else { return }
    self.handler.value.written(waiters)
    self.channel.writeAndFlush(bytes, promise: nil)
  }

  /// Closes the connection; queued commands fail with `connectionClosed`.
  func close() {
    self.channel.close(mode: .all, promise: nil)
  }

  private func markClosed() {
    let orphans = self.outbox.withLockedValue { outbox in
      outbox.closed = true
      defer { outbox.waiters = [] }
      return outbox.waiters
    }
    for waiter in orphans { waiter.fail(RedisError(.connectionClosed, "The Redis connection closed")) }
  }

  /// Opens a connection and runs the handshake: `AUTH` (when configured), `SELECT` (when the
  /// database is not 0) and `PING`, so that a connection handed out is known to work.
  /// - Parameter onPush: receives pub/sub messages (`message` arrays) instead of the command
  ///   queue; set only for subscriber connections. Called on the event loop; returning false
  ///   closes the connection (the receiver cannot keep up).
  static func connect(
    configuration: RedisConfiguration,
    sslContext: NIOSSLContext?,
    group: any EventLoopGroup,
    onPush: (@Sendable (RESPValue) -> Bool)? = nil
  ) async throws -> RedisConnection {
    let parser = RESPParser(maxReplyBytes: configuration.maxReplyBytes, maxDepth: configuration.maxReplyDepth)
    let timeout = TimeAmount(configuration.commandTimeout)
    let connectTimeout = TimeAmount(configuration.connectTimeout)
    let host = configuration.host
    let health = ConnectionHealth()
    let channel: any Channel
    do {
      channel = try await ClientBootstrap(group: group)
        .connectTimeout(connectTimeout)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            if let sslContext {
              let isIP = (try? SocketAddress(ipAddress: host, port: 0)) != nil
              try channel.pipeline.syncOperations.addHandler(
                NIOSSLClientHandler(context: sslContext, serverHostname: isIP ? nil : host))
            }
            try channel.pipeline.syncOperations.addHandler(
              RedisChannelHandler(parser: parser, commandTimeout: timeout, health: health, onPush: onPush))
          }
        }
        .connect(host: host, port: configuration.port)
        .get()
    } catch {
      throw RedisError(.unavailable, "Cannot connect to \(configuration.description): \(error)")
    }
    let handler: NIOLoopBound<RedisChannelHandler>
    do {
      handler = try await channel.eventLoop.submit {
        NIOLoopBound(try channel.pipeline.syncOperations.handler(type: RedisChannelHandler.self), eventLoop: channel.eventLoop)
      }.get()
    } catch {
      channel.close(promise: nil)
      throw RedisError(.unavailable, "\(configuration.description) closed the connection as it opened")
    }
    let connection = RedisConnection(channel: channel, handler: handler, health: health)
    channel.closeFuture.whenComplete { _ in connection.markClosed() }

    var handshake: [RedisCommand] = []
    if let password = configuration.password {
      if let username = configuration.username {
        handshake.append(RedisCommand("AUTH", .string(username), .string(password)))
      } else {
        handshake.append(RedisCommand("AUTH", .string(password)))
      }
    }
    if configuration.database != 0 {
      handshake.append(RedisCommand("SELECT", .integer(Int64(configuration.database))))
    }
    handshake.append(RedisCommand("PING"))
    do {
      for (command, reply) in zip(handshake, try await connection.send(handshake).get()) {
        if case .error(let message) = reply {
          throw RedisError(.unavailable, "\(configuration.description) refused \(command.name): \(message)")
        }
      }
    } catch let error as RedisError where error.code == .unavailable {
      connection.close()
      throw error
    } catch {
      connection.close()
      throw RedisError(.unavailable, "\(configuration.description) failed the handshake: \(error)")
    }
    return connection
  }
}

/// Matches replies to the commands written on one channel, in order, and fails them all when
/// the order can no longer be trusted.
final class RedisChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer

  private struct Pending {
    var waiter: ReplyWaiter
    var writtenAt: NIODeadline
  }

  private var parser: RESPParser
  private let commandTimeout: TimeAmount
  private let health: ConnectionHealth
  private let onPush: (@Sendable (RESPValue) -> Bool)?
  private var received: ByteBuffer?
  /// The replies so far of the oldest pending waiter, when it waits for several.
  private var batch: [RESPValue] = []
  private var pending = CircularBuffer<Pending>(initialCapacity: 16)
  private var timeoutCheck: RepeatedTask?
  private var failure: RedisError?

  init(parser: RESPParser, commandTimeout: TimeAmount, health: ConnectionHealth, onPush: (@Sendable (RESPValue) -> Bool)?) {
    self.parser = parser
    self.commandTimeout = commandTimeout
    self.health = health
    self.onPush = onPush
  }

  /// Waiters of commands just written, in order.
  func written(_ waiters: [ReplyWaiter]) {
    guard self.failure == nil else {
      for waiter in waiters { waiter.fail(self.failure!) }
      return
    }
    let now = NIODeadline.now()
    for waiter in waiters { self.pending.append(Pending(waiter: waiter, writtenAt: now)) }
  }

  func handlerAdded(context: ChannelHandlerContext) {
    // The oldest command is checked a few times per timeout: Redis answers in order, so when
    // it is overdue everything behind it is stuck too.
    let interval = max(TimeAmount.nanoseconds(self.commandTimeout.nanoseconds / 4), .milliseconds(5))
    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    self.timeoutCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
      let (handler, context) = bound.value
      handler.checkTimeout(context: context)
    }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.timeoutCheck?.cancel()
    self.timeoutCheck = nil
    self.closed()
  }

  private func checkTimeout(context: ChannelHandlerContext) {
    guard let oldest = self.pending.first, oldest.writtenAt + self.commandTimeout <= .now() else { return }
    self.fail(
      RedisError(.timeout, "No reply from Redis within \(self.commandTimeout.nanoseconds / 1_000_000) ms"),
      context: context)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let bytes = self.unwrapInboundIn(data)
    guard self.failure == nil else { return }
    if var received = self.received {
      self.received = nil
      received.writeImmutableBuffer(bytes)
      self.received = received
    } else {
      self.received = bytes
    }
    do {
      while var buffer = self.received {
        self.received = nil
        let value = try self.parser.parse(&buffer)
        self.received = buffer.readableBytes > 0 ? buffer : nil
        guard let value else { break }
        self.deliver(value, context: context)
        if self.failure != nil { return }
      }
      if var buffer = self.received, buffer.readerIndex > 64 * 1024 {
        self.received = nil
        buffer.discardReadBytes()
        self.received = buffer
      }
    } catch let error as RESPProtocolError {
      self.fail(RedisError(.protocolViolation, error.description), context: context)
    } catch {
      self.fail(RedisError(.protocolViolation, "\(error)"), context: context)
    }
  }

  private func deliver(_ value: RESPValue, context: ChannelHandlerContext) {
    if let onPush = self.onPush, case .array(let elements?) = value, elements.first?.string == "message" {
      if !onPush(value) {
        self.fail(RedisError(.connectionClosed, "The subscriber fell behind; its messages were dropped"), context: context)
      }
      return
    }
    guard let next = self.pending.first else {
      self.fail(RedisError(.protocolViolation, "Redis sent a reply nobody asked for"), context: context)
      return
    }
    switch next.waiter {
    case .one(let promise):
      self.pending.removeFirst()
      promise.succeed(value)
    case .many(let count, let promise):
      if self.batch.isEmpty { self.batch.reserveCapacity(count) }
      self.batch.append(value)
      if self.batch.count == count {
        self.pending.removeFirst()
        let replies = self.batch
        self.batch = []
        promise.succeed(replies)
      }
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.closed()
    context.fireChannelInactive()
  }

  /// Commands pending now, and any written after this, fail.
  private func closed() {
    self.health.broken.store(true, ordering: .relaxed)
    if self.failure == nil { self.failure = RedisError(.connectionClosed, "The Redis connection closed") }
    self.received = nil
    self.failAll(self.failure!)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    self.fail(RedisError(.connectionClosed, "The Redis connection failed: \(error)"), context: context)
  }

  private func fail(_ error: RedisError, context: ChannelHandlerContext) {
    self.health.broken.store(true, ordering: .relaxed)
    if self.failure == nil { self.failure = error }
    self.received = nil
    self.failAll(error)
    context.close(promise: nil)
  }

  private func failAll(_ error: RedisError) {
    self.batch = []
    while let next = self.pending.popFirst() { next.waiter.fail(error) }
  }
}

/// Who is waiting for the replies of a write: one command, or several sent together.
enum ReplyWaiter: Sendable {
  case one(EventLoopPromise<RESPValue>)
  case many(Int, EventLoopPromise<[RESPValue]>)

  func fail(_ error: RedisError) {
    switch self {
    case .one(let promise): promise.fail(error)
    case .many(_, let promise): promise.fail(error)
    }
  }
}

/// Set by a connection's handler when it fails or closes: read by the pool from any thread.
final class ConnectionHealth: Sendable {
  let broken = Atomic(false)
}
