internal import CNGHTTP2
internal import Logging
internal import NIOCore

/// One server connection: owns an nghttp2 server session, feeds it the bytes the channel reads,
/// writes what it produces, and runs the gRPC protocol on its streams.
///
/// Everything here runs on the channel's event loop. Handlers run in their own tasks and reach
/// back through `NIOLoopBound` hops (`ServerCall`).
final class ServerConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  let shared: ServerShared
  private var session: OpaquePointer?
  private var context: ChannelHandlerContext?
  private var loopBoundSelf: NIOLoopBound<ServerConnectionHandler>?
  private(set) var streams: [Int32: ServerStream] = [:]
  private var peer = "unknown"
  private var flushScheduled = false
  private var readingInput = false

  private var idleTimer: Scheduled<Void>?
  private var keepaliveTimer: Scheduled<Void>?
  private var keepaliveTimeout: Scheduled<Void>?
  private var ageTimer: Scheduled<Void>?
  private var graceTimer: Scheduled<Void>?
  private enum Lifecycle {
    case active
    /// A GOAWAY shutdown notice was sent; the final GOAWAY follows the PING ack.
    case noticeSent
    /// The final GOAWAY was sent; the connection closes when its last stream does.
    case draining
    case closed
  }
  private var lifecycle = Lifecycle.active
  /// Runs handler tasks on this connection's event loop (nil: the global executor).
  private var taskExecutor: EventLoopTaskExecutor?
  /// Rapid-reset defence: in the current one-second window, the streams the client opened and
  /// those it reset before they had any response.
  private var windowStreams = 0
  private var windowEarlyResets = 0
  private var resetWindowStart = NIODeadline.now()

  init(shared: ServerShared) {
    self.shared = shared
  }

  /// The channel's loop, kept after the context is dropped (handlerRemoved).
  private(set) var eventLoop: (any EventLoop)!

  // MARK: Channel events

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    self.eventLoop = context.eventLoop
    self.loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
    if self.shared.configuration.handlerExecution == .eventLoop {
      self.taskExecutor = EventLoopTaskExecutor(eventLoop: context.eventLoop)
    }
    if let address = context.channel.remoteAddress {
      switch address {
      case .v4(let v4): self.peer = "ipv4:\(v4.host):\(address.port ?? 0)"
      case .v6(let v6): self.peer = "ipv6:[\(v6.host)]:\(address.port ?? 0)"
      case .unixDomainSocket: self.peer = "unix:\(address.pathname ?? "")"
      }
    }
    let configuration = self.shared.configuration
    var session: OpaquePointer?
    let status = nghttp2_session_server_new2(
      &session, ServerConnectionHandler.callbacks, Unmanaged.passUnretained(self).toOpaque(),
      SessionIO.options)
    precondition(status == 0, "nghttp2 could not create a server session")
    self.session = session
    HTTP2Settings(
      maxConcurrentStreams: configuration.maxConcurrentStreams,
      initialWindowSize: configuration.initialStreamWindowSize,
      maxFrameSize: configuration.maxFrameSize,
      maxHeaderListSize: configuration.maxHeaderListSize,
      enablePush: false
    ).submit(to: session!, connectionWindowSize: configuration.connectionWindowSize)
    self.shared.connections.register(self, eventLoop: context.eventLoop)
    self.armIdleTimer()
    self.armKeepalive()
    if let age = configuration.maxConnectionAge {
      self.ageTimer = self.schedule(in: age) { $0.beginGracefulShutdown() }
    }
    if context.channel.isActive { self.flush() }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.tearDown()
    // The context holds this handler: keeping it would keep both alive for good.
    self.context = nil
  }

  func channelActive(context: ChannelHandlerContext) {
    self.flush()
    context.fireChannelActive()
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.tearDown()
    context.fireChannelInactive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard let session = self.session else { return }
    self.readingInput = true
    let (ok, error) = SessionIO.receive(self.unwrapInboundIn(data), into: session)
    self.readingInput = false
    if !ok {
      self.shared.logger.debug("closing connection after HTTP/2 error", metadata: ["peer": "\(self.peer)", "error": "\(error)"])
      self.flush()
      self.close()
    }
  }

  func channelReadComplete(context: ChannelHandlerContext) {
    self.flush()
    context.fireChannelReadComplete()
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    if context.channel.isWritable { self.flush() }
    context.fireChannelWritabilityChanged()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    self.shared.logger.debug("connection error", metadata: ["peer": "\(self.peer)", "error": "\(error)"])
    self.close()
  }

  private func close() {
    guard let context = self.context, self.lifecycle != .closed else { return }
    self.lifecycle = .closed
    context.close(promise: nil)
  }

  /// Cancels every call and frees the session; safe to call more than once.
  private func tearDown() {
    guard let session = self.session else { return }
    self.lifecycle = .closed
    for stream in self.streams.values {
      self.abandon(stream, because: RPCError(.cancelled, "The connection closed"))
    }
    self.streams.removeAll()
    for timer in [self.idleTimer, self.keepaliveTimer, self.keepaliveTimeout, self.ageTimer, self.graceTimer] {
      timer?.cancel()
    }
    nghttp2_session_del(session)
    self.session = nil
    // The loop-bound reference to self would keep this handler alive forever.
    self.loopBoundSelf = nil
    self.shared.connections.unregister(self)
  }

  // MARK: Output

  /// Writes everything nghttp2 has to send; called after input is processed and after calls
  /// queue output.
  func flush() {
    self.flushScheduled = false
    guard let session = self.session, let context = self.context, context.channel.isActive else { return }
    switch SessionIO.flush(session, context: context) {
    case .flushed: break
    case .failed, .finished: self.close()
    }
  }

  /// Flushes once the current batch of event-loop work is done, so output queued by many calls
  /// goes out in one write.
  func scheduleFlush() {
    guard !self.flushScheduled, !self.readingInput, let loopBoundSelf else { return }
    self.flushScheduled = true
    self.eventLoop.execute { loopBoundSelf.value.flush() }
  }

  private func schedule(in delay: Duration, _ body: @escaping (ServerConnectionHandler) -> Void) -> Scheduled<Void>? {
    guard let loopBoundSelf else { return nil }
    let body = NIOLoopBound(body, eventLoop: self.eventLoop)
    return self.eventLoop.scheduleTask(in: delay.timeAmount) { body.value(loopBoundSelf.value) }
  }

  // MARK: Stream events (from nghttp2 callbacks)

  fileprivate func beginStream(_ id: Int32) -> Int32 {
    guard let session = self.session else { return NG.callbackFailure }
    let stream = ServerStream(id: id, connection: self, maxMessageSize: self.shared.configuration.maxReceiveMessageSize)
    self.streams[id] = stream
    self.windowStreams += 1
    nghttp2_session_set_stream_user_data(session, id, Unmanaged.passUnretained(stream).toOpaque())
    self.idleTimer?.cancel()
    self.idleTimer = nil
    return 0
  }

  fileprivate func stream(_ id: Int32) -> ServerStream? {
    guard let session = self.session,
      let pointer = nghttp2_session_get_stream_user_data(session, id)
    else { return nil }
    return Unmanaged<ServerStream>.fromOpaque(pointer).takeUnretainedValue()
  }

  fileprivate func header(
    _ stream: ServerStream,
    name: UnsafePointer<UInt8>, nameLength: Int,
    value: UnsafePointer<UInt8>, valueLength: Int
  ) {
    stream.headerBytes += nameLength + valueLength + 32
    if stream.headerBytes > self.shared.configuration.maxHeaderListSize {
      stream.headersTooLarge = true
      return
    }
    if name[0] == UInt8(ascii: ":") {
      if bytesEqual(name, nameLength, ":path") {
        stream.routedMethod = self.shared.router.method(forPath: UnsafeRawBufferPointer(start: value, count: valueLength))
        if stream.routedMethod == nil { stream.unroutedPath = String(value, length: valueLength) }
      } else if bytesEqual(name, nameLength, ":method") {
        stream.isPost = bytesEqual(value, valueLength, "POST")
      }
      return
    }
    switch nameLength {
    case 2 where bytesEqual(name, nameLength, "te"):
      stream.hasTETrailers = bytesEqual(value, valueLength, "trailers")
    case 12 where bytesEqual(name, nameLength, "content-type"):
      stream.contentType = Self.checkContentType(value, valueLength)
    case 12 where bytesEqual(name, nameLength, "grpc-timeout"):
      stream.timeoutHeader = String(value, length: valueLength)
    case 13 where bytesEqual(name, nameLength, "grpc-encoding"):
      stream.encodingHeader = String(value, length: valueLength)
    case 20 where bytesEqual(name, nameLength, "grpc-accept-encoding"):
      stream.acceptsGzip = MessageEncoding.acceptsGzip(UnsafeBufferPointer(start: value, count: valueLength))
    default:
      stream.metadata.append(name: name, nameLength: nameLength, value: value, valueLength: valueLength)
    }
  }

  /// `application/grpc`, optionally `+proto` and parameters; `application/grpc+json` and other
  /// codecs are not served.
  private static func checkContentType(_ value: UnsafePointer<UInt8>, _ length: Int) -> ServerStream.ContentTypeCheck {
    guard bytesHavePrefix(value, length, "application/grpc") else { return .unsupported }
    let rest = String(value + 16, length: length - 16)
    if rest.isEmpty || rest.hasPrefix(";") || rest == "+proto" || rest.hasPrefix("+proto;") {
      return .grpc
    }
    return .unsupported
  }

  /// The request headers are complete: validate them, route the call and, for the streaming
  /// request kinds, start the handler.
  fileprivate func requestHead(_ stream: ServerStream) {
    if stream.headersTooLarge {
      self.rejectHead(stream, RPCError(.resourceExhausted, "Request headers exceed \(self.shared.configuration.maxHeaderListSize) bytes"))
      return
    }
    guard stream.isPost else {
      self.rejectHead(stream, RPCError(.internal, "gRPC requires the POST method"), httpStatus: "405")
      return
    }
    switch stream.contentType {
    case .grpc: break
    case .missing, .unsupported:
      self.rejectHead(stream, RPCError(.internal, "Unsupported content-type: gRPC requires application/grpc"), httpStatus: "415")
      return
    }
    guard stream.hasTETrailers else {
      self.rejectHead(stream, RPCError(.internal, "gRPC requires the header te: trailers"))
      return
    }
    guard let method = stream.routedMethod else {
      self.rejectHead(stream, Self.unimplemented(path: stream.unroutedPath ?? "", router: self.shared.router))
      return
    }
    var receiveEncoding = MessageEncoding.identity
    if let header = stream.encodingHeader {
      guard let encoding = MessageEncoding(headerValue: header) else {
        self.rejectHead(stream, RPCError(.unimplemented, "Unsupported grpc-encoding '\(header)'"), acceptEncoding: true)
        return
      }
      receiveEncoding = encoding
    }
    let received = ContinuousClock.now
    var deadline: ContinuousClock.Instant?
    if let header = stream.timeoutHeader {
      guard let timeout = Timeout.parse(header) else {
        self.rejectHead(stream, RPCError(.internal, "Malformed grpc-timeout '\(header)'"))
        return
      }
      deadline = received + timeout
      stream.deadlineTimer = self.schedule(in: timeout) { connection in
        connection.deadlineExceeded(stream)
      }
    }
    stream.method = method
    stream.codec = MessageCodec(
      receiveEncoding: receiveEncoding,
      compressSent: self.shared.configuration.compressResponses && receiveEncoding == .gzip && stream.acceptsGzip,
      maxReceiveMessageSize: self.shared.configuration.maxReceiveMessageSize,
      maxMessageDepth: self.shared.configuration.maxMessageDepth, receivesRequests: true)
    stream.context = ServerContext(
      method: method.descriptor, receivedHeaders: stream.metadata, received: received, deadline: deadline, peer: self.peer,
      requestEncoding: receiveEncoding)
    if !method.descriptor.kind.hasSingleRequest {
      let loopBoundSelf = self.loopBoundSelf!
      let id = stream.id
      stream.requests = InboundMessageQueue { consumed in
        loopBoundSelf.eventLoop.execute { loopBoundSelf.value.consume(consumed, on: id) }
      }
      self.start(stream)
    }
  }

  private static func unimplemented(path: String, router: RPCRouter) -> RPCError {
    let parts = path.split(separator: "/", omittingEmptySubsequences: true)
    if parts.count == 2, router.serviceNames.contains(String(parts[0])) {
      return RPCError(.unimplemented, "Method '\(parts[1])' is not implemented by service '\(parts[0])'")
    }
    if parts.count == 2 {
      return RPCError(.unimplemented, "Service '\(parts[0])' is not implemented")
    }
    return RPCError(.unimplemented, "Unknown path '\(path)'")
  }

  fileprivate func data(_ stream: ServerStream, _ bytes: UnsafeRawBufferPointer) {
    guard let session = self.session else { return }
    guard !stream.finished, let method = stream.method else {
      // A rejected or finished call: discard, but keep the connection window open.
      nghttp2_session_consume(session, stream.id, bytes.count)
      return
    }
    let singleRequest = method.descriptor.kind.hasSingleRequest
    var tooMany = false
    do throws(RPCError) {
      try stream.deframer.append(bytes) { message in
        if singleRequest {
          stream.requestCount += 1
          if stream.requestCount == 1 { stream.request = message } else { tooMany = true }
        } else {
          stream.requests!.push(message)
        }
      }
    } catch {
      nghttp2_session_consume(session, stream.id, bytes.count)
      self.fail(stream, error)
      return
    }
    if !singleRequest, stream.requests?.isDrained == true {
      // An unfinished message the handler is waiting for (`MessageDeframer.creditHeldBytes`).
      let credit = stream.deframer.creditHeldBytes()
      if credit > 0 { nghttp2_session_consume(session, stream.id, credit) }
    }
    if singleRequest {
      nghttp2_session_consume(session, stream.id, bytes.count)
      if tooMany {
        self.fail(stream, RPCError(.internal, "\(method.descriptor.kind) call received more than one request message"))
      }
    }
  }

  fileprivate func requestEnded(_ stream: ServerStream) {
    guard !stream.requestEnded else { return }
    stream.requestEnded = true
    guard !stream.finished, let method = stream.method else { return }
    if stream.deframer.hasPartialMessage {
      self.fail(stream, RPCError(.internal, "The request ended inside a message"))
      return
    }
    if method.descriptor.kind.hasSingleRequest {
      guard stream.request != nil else {
        self.fail(stream, RPCError(.internal, "\(method.descriptor.kind) call ended without a request message"))
        return
      }
      self.start(stream)
    } else {
      stream.requests?.finish()
    }
  }

  fileprivate func streamClosed(_ id: Int32, errorCode: UInt32) {
    guard let stream = self.streams.removeValue(forKey: id) else { return }
    if !stream.finished {
      self.abandon(stream, because: RPCError(.cancelled, "The client cancelled the call"))
    }
    stream.deadlineTimer?.cancel()
    if self.streams.isEmpty {
      switch self.lifecycle {
      case .active: self.armIdleTimer()
      case .noticeSent: break
      case .draining: self.scheduleFlush()  // nghttp2 now wants neither read nor write: closes.
      case .closed: break
      }
    }
  }

  /// A frame with END_STREAM went out: if the client is still sending, reset its half so it
  /// stops (the call is over).
  fileprivate func sentEndOfStream(_ stream: ServerStream) {
    guard !stream.requestEnded, let session = self.session else { return }
    nghttp2_submit_rst_stream(session, NG.none, stream.id, NG.noError)
  }

  // MARK: Calls

  private func start(_ stream: ServerStream) {
    guard let context = stream.context, let method = stream.method, let codec = stream.codec else { return }
    if let deadline = context.deadline, deadline <= .now {
      self.deadlineExceeded(stream)
      return
    }
    let call = ServerCall(
      context: context, method: method, codec: codec, request: stream.request,
      requests: stream.requests, acceptsGzip: stream.acceptsGzip && self.shared.configuration.compressResponses,
      stream: NIOLoopBound(stream, eventLoop: self.eventLoop))
    stream.request = nil
    // The closures are written out at each use (not one `let` passed to both): a stored closure
    // reaches the task's operation type through two conversion thunks, two more allocations a
    // call. `ServerContext.current` is bound here, synchronously, and the new task copies it: an
    // async `withValue` in the task cost it four executor checks under its status lock.
    ServerContext.$current.withValue(context) {
      if let taskExecutor = self.taskExecutor {
        // The handler starts right here, on the loop, and runs until it first suspends; a handler
        // that never does (echo, a cache hit) completes within this read, with no task switch.
        stream.task = Task.immediate(executorPreference: taskExecutor) { @Sendable in await call.run() }
      } else {
        stream.task = Task { @Sendable in await call.run() }
      }
    }
  }

  /// Ends a call early with `error`: the task (if any) is cancelled and its outcome ignored.
  private func fail(_ stream: ServerStream, _ error: RPCError) {
    guard !stream.finished else { return }
    stream.task?.cancel()
    stream.requests?.finish(throwing: error)
    self.finish(stream, status: error, trailingMetadata: error.metadata, response: nil)
  }

  private func deadlineExceeded(_ stream: ServerStream) {
    self.fail(stream, RPCError(.deadlineExceeded, "The call's deadline was exceeded"))
  }

  /// Cancels a call whose stream is gone.
  private func abandon(_ stream: ServerStream, because error: RPCError) {
    stream.finished = true
    stream.task?.cancel()
    stream.requests?.finish(throwing: error)
    stream.outbound.failWaitingWriters(error)
    stream.deadlineTimer?.cancel()
  }

  private func consume(_ count: Int, on id: Int32) {
    guard let session = self.session else { return }
    nghttp2_session_consume(session, id, count)
    // The handler has read every complete message: an unfinished one may come in whole.
    if let stream = self.streams[id], !stream.finished, stream.requests?.isDrained == true {
      let credit = stream.deframer.creditHeldBytes()
      if credit > 0 { nghttp2_session_consume(session, id, credit) }
    }
    self.scheduleFlush()
  }

  /// Queues one response message of a streaming call: true while the stream's buffer has room,
  /// false when the writer must wait for it (`waitForRoom`).
  /// - Throws: CANCELLED when the call has ended.
  func enqueue(_ payload: ByteBufferPayload, on stream: ServerStream) throws(RPCError) -> Bool {
    guard !stream.finished, self.streams[stream.id] === stream else {
      throw RPCError(.cancelled, "The call has ended")
    }
    self.sendHeadersIfNeeded(stream)
    let room = stream.outbound.append(payload, limit: self.shared.configuration.streamSendBufferLimit)
    self.resumeData(stream)
    return room
  }

  /// Resumes `writer` once the stream's buffer has room (or with CANCELLED when the call ends).
  func waitForRoom(on stream: ServerStream, _ writer: CheckedContinuation<Void, any Error>) {
    guard !stream.finished, self.streams[stream.id] === stream else {
      writer.resume(throwing: RPCError(.cancelled, "The call has ended"))
      return
    }
    stream.outbound.waitForRoom(writer, limit: self.shared.configuration.streamSendBufferLimit)
  }

  /// Ends a call: the single response (if any), then the status. A call that fails before
  /// sending anything gets a trailers-only response.
  func finish(_ stream: ServerStream, status: RPCError?, trailingMetadata: Metadata, response: ByteBufferPayload?) {
    guard !stream.finished, self.session != nil else { return }
    stream.finished = true
    stream.deadlineTimer?.cancel()
    let trailers: ServerStream.Trailers
    if status == nil && trailingMetadata.isEmpty {
      trailers = .ok
    } else {
      var list = HeaderList()
      list.addStatus(status?.code ?? .ok, message: status?.message ?? "", metadata: trailingMetadata)
      trailers = .custom(list)
    }
    if let status {
      stream.outbound.failWaitingWriters(status)
      if !stream.headersSent, case .custom(let list) = trailers {
        self.sendTrailersOnly(stream, trailers: list)
        return
      }
    }
    self.sendHeadersIfNeeded(stream)
    if let response {
      stream.outbound.append(response)
    }
    stream.trailers = trailers
    self.resumeData(stream)
  }

  private func resumeData(_ stream: ServerStream) {
    if stream.dataDeferred, let session = self.session {
      stream.dataDeferred = false
      nghttp2_session_resume_data(session, stream.id)
    }
    self.scheduleFlush()
  }

  private func sendHeadersIfNeeded(_ stream: ServerStream) {
    guard !stream.headersSent, let session = self.session else { return }
    stream.headersSent = true
    // Announcing gzip lets any message be compressed (per-message flag), as the handler decides.
    let gzip = stream.acceptsGzip && self.shared.configuration.compressResponses
    var provider = nghttp2_data_provider(
      source: nghttp2_data_source(ptr: nil), read_callback: ServerConnectionHandler.readResponseData)
    let metadata = stream.context?.initialMetadata ?? [:]
    let block = gzip ? StaticHeaderBlock.gzipResponse : StaticHeaderBlock.response
    if metadata.isEmpty {
      nghttp2_submit_response(session, stream.id, block.baseAddress, block.count, &provider)
      return
    }
    StaticHeaderBlock.with(block, metadata: metadata) { pairs, count in
      _ = nghttp2_submit_response(session, stream.id, pairs, count, &provider)
    }
  }

  private func sendTrailersOnly(_ stream: ServerStream, trailers: HeaderList) {
    guard let session = self.session else { return }
    stream.headersSent = true
    var headers = HeaderList()
    headers.add(":status", "200")
    headers.add("content-type", "application/grpc")
    // Metadata the handler set for the headers has no other way out (as grpc-go does).
    headers.add(metadata: stream.context?.initialMetadata ?? [:])
    headers.withNameValuePairs { statusPairs, statusCount in
      trailers.withNameValuePairs { trailerPairs, trailerCount in
        var all = Array(UnsafeBufferPointer(start: statusPairs, count: statusCount))
        all.append(contentsOf: UnsafeBufferPointer(start: trailerPairs, count: trailerCount))
        _ = nghttp2_submit_response(session, stream.id, all, all.count, nil)
      }
    }
    self.scheduleFlush()
  }

  /// Answers a request whose head is invalid with a trailers-only response (or an HTTP error
  /// status for requests that are not gRPC at all).
  private func rejectHead(_ stream: ServerStream, _ error: RPCError, httpStatus: StaticString = "200", acceptEncoding: Bool = false) {
    guard let session = self.session else { return }
    stream.finished = true
    stream.headersSent = true
    var headers = HeaderList()
    headers.add(":status", httpStatus)
    headers.add("content-type", "application/grpc")
    if acceptEncoding { headers.add("grpc-accept-encoding", MessageEncoding.acceptHeader) }
    headers.addStatus(error.code, message: error.message, metadata: [:])
    headers.withNameValuePairs { pairs, count in
      _ = nghttp2_submit_response(session, stream.id, pairs, count, nil)
    }
    self.scheduleFlush()
  }

  /// nghttp2 asks for response DATA: hand it buffered messages; once the call has finished and
  /// everything is out, submit the trailers and end the data without END_STREAM (the trailers
  /// carry it).
  fileprivate func readData(_ stream: ServerStream, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
    let written = stream.outbound.drain(into: buffer, capacity: length, limit: self.shared.configuration.streamSendBufferLimit)
    if stream.outbound.isEmpty, let trailers = stream.trailers, let session = self.session {
      stream.trailers = nil
      flags.pointee |= NG.dataFlagEOF | NG.dataFlagNoEndStream
      switch trailers {
      case .ok:
        let block = StaticHeaderBlock.okTrailers
        nghttp2_submit_trailer(session, stream.id, block.baseAddress, block.count)
      case .custom(let list):
        list.withNameValuePairs { pairs, count in
          _ = nghttp2_submit_trailer(session, stream.id, pairs, count)
        }
      }
      return written
    }
    if written == 0 {
      stream.dataDeferred = true
      return NG.deferred
    }
    return written
  }

  // MARK: Connection management

  /// Rapid-reset defence (CVE-2023-44487): an attacker resets every stream it opens, before any
  /// response, to make the server start work it never has to finish; a real client cancels a
  /// minority of its calls, at whatever rate it makes them. So within a one-second window, once
  /// more than `minEarlyResets` streams were reset before their response began, and they are more
  /// than half of the streams opened in the window, the client gets GOAWAY ENHANCE_YOUR_CALM.
  /// (nghttp2's own limiter, a fixed 33 resets a second after a burst of 1,000, is off: it ended
  /// the connections of busy clients that cancel 5% of their calls, with INTERNAL_ERROR.)
  fileprivate func clientReset(_ stream: ServerStream?) {
    let now = NIODeadline.now()
    if now - self.resetWindowStart > .seconds(1) {
      self.resetWindowStart = now
      self.windowStreams = 0
      self.windowEarlyResets = 0
    }
    guard let stream, !stream.headersSent else { return }
    self.windowEarlyResets += 1
    guard self.windowEarlyResets > Self.minEarlyResets, self.windowEarlyResets * 2 > self.windowStreams,
      let session = self.session
    else { return }
    self.shared.logger.debug("closing connection: rapid stream resets", metadata: ["peer": "\(self.peer)"])
    nghttp2_session_terminate_session(session, NG.enhanceYourCalm)
    self.scheduleFlush()
  }

  /// Early resets a window tolerates whatever their share.
  static let minEarlyResets = 100

  private func armIdleTimer() {
    guard let timeout = self.shared.configuration.idleTimeout else { return }
    self.idleTimer?.cancel()
    self.idleTimer = self.schedule(in: timeout) { connection in
      guard connection.streams.isEmpty else { return }
      connection.beginGracefulShutdown()
    }
  }

  private func armKeepalive() {
    guard let keepalive = self.shared.configuration.keepalive else { return }
    self.keepaliveTimer = self.schedule(in: keepalive.interval) { connection in
      connection.sendKeepalivePing(timeout: keepalive.timeout)
    }
  }

  private func sendKeepalivePing(timeout: Duration) {
    guard let session = self.session, self.lifecycle != .closed else { return }
    nghttp2_submit_ping(session, NG.none, nil)
    self.keepaliveTimeout = self.schedule(in: timeout) { connection in
      connection.shared.logger.debug("closing connection: keepalive ping timed out", metadata: ["peer": "\(connection.peer)"])
      connection.close()
    }
    self.scheduleFlush()
  }

  fileprivate func pingAcknowledged() {
    self.keepaliveTimeout?.cancel()
    self.keepaliveTimeout = nil
    if self.lifecycle == .noticeSent {
      self.sendFinalGoaway()
    } else {
      self.armKeepalive()
    }
  }

  /// Starts a graceful shutdown: a GOAWAY notice now, the final GOAWAY (with the last stream the
  /// server will process) one round trip later, then calls run to completion within the grace
  /// period and the connection closes.
  func beginGracefulShutdown() {
    guard let session = self.session, self.lifecycle == .active else { return }
    self.lifecycle = .noticeSent
    nghttp2_submit_shutdown_notice(session)
    nghttp2_submit_ping(session, NG.none, nil)
    self.graceTimer = self.schedule(in: self.shared.configuration.shutdownGracePeriod) { connection in
      connection.close()
    }
    self.scheduleFlush()
  }

  private func sendFinalGoaway() {
    guard let session = self.session else { return }
    self.lifecycle = .draining
    nghttp2_submit_goaway(session, NG.none, nghttp2_session_get_last_proc_stream_id(session), NG.noError, nil, 0)
    self.scheduleFlush()
    if self.streams.isEmpty { self.scheduleFlush() }
  }

  /// Closes at once, cancelling every call.
  func forceClose() {
    self.close()
  }

  // MARK: nghttp2 callbacks

  /// Runs `body` with the connection a callback's user data points to, without retaining it:
  /// nghttp2 calls back only from within the connection's own calls into the session, so the
  /// connection is alive throughout (a retain and a release per callback, a dozen a call, saved).
  private static func with<Result>(_ userData: UnsafeMutableRawPointer?, _ body: (ServerConnectionHandler) -> Result) -> Result {
    Unmanaged<ServerConnectionHandler>.fromOpaque(userData!)._withUnsafeGuaranteedRef(body)
  }

  nonisolated(unsafe) static let callbacks: OpaquePointer = {
    var callbacks: OpaquePointer?
    nghttp2_session_callbacks_new(&callbacks)
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
      let frame = frame!.pointee
      guard frame.hd.type == NG.headersFrame, frame.headers.cat == NG.requestCategory else { return 0 }
      return ServerConnectionHandler.with(userData) { $0.beginStream(frame.hd.stream_id) }
    }
    nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
      let frame = frame!.pointee
      guard frame.hd.type == NG.headersFrame, frame.headers.cat == NG.requestCategory else { return 0 }
      ServerConnectionHandler.with(userData) { connection in
        guard let stream = connection.stream(frame.hd.stream_id) else { return }
        connection.header(stream, name: name!, nameLength: nameLength, value: value!, valueLength: valueLength)
      }
      return 0
    }
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
      let frame = frame!.pointee
      ServerConnectionHandler.with(userData) { connection in
        switch frame.hd.type {
        case NG.headersFrame:
          guard let stream = connection.stream(frame.hd.stream_id) else { return }
          if frame.headers.cat == NG.requestCategory { connection.requestHead(stream) }
          if frame.hd.flags & NG.endStream != 0 { connection.requestEnded(stream) }
        case NG.dataFrame:
          if frame.hd.flags & NG.endStream != 0, let stream = connection.stream(frame.hd.stream_id) {
            connection.requestEnded(stream)
          }
        case NG.pingFrame:
          if frame.hd.flags & NG.ack != 0 { connection.pingAcknowledged() }
        case NG.rstStreamFrame:
          connection.clientReset(connection.stream(frame.hd.stream_id))
        default:
          break
        }
      }
      return 0
    }
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
      ServerConnectionHandler.with(userData) { connection in
        guard let stream = connection.stream(streamID) else { return }
        connection.data(stream, UnsafeRawBufferPointer(start: data, count: length))
      }
      return 0
    }
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
      let frame = frame!.pointee
      guard frame.hd.flags & NG.endStream != 0,
        frame.hd.type == NG.headersFrame || frame.hd.type == NG.dataFrame
      else { return 0 }
      ServerConnectionHandler.with(userData) { connection in
        if let stream = connection.stream(frame.hd.stream_id) { connection.sentEndOfStream(stream) }
      }
      return 0
    }
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
      ServerConnectionHandler.with(userData) { $0.streamClosed(streamID, errorCode: errorCode) }
      return 0
    }
    return callbacks!
  }()

  static let readResponseData: nghttp2_data_source_read_callback = { _, streamID, buffer, length, flags, _, userData in
    ServerConnectionHandler.with(userData) { connection in
      guard let stream = connection.stream(streamID) else { return Int(NG.temporalCallbackFailure) }
      return connection.readData(stream, into: buffer!, length: length, flags: flags!)
    }
  }
}
