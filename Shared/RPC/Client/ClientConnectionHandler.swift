internal import CNGHTTP2
internal import NIOCore
internal import Synchronization

/// What the pool learns from a connection: its stream limit and whether it still takes calls.
final class ConnectionStatus: Sendable {
  /// The server's `SETTINGS_MAX_CONCURRENT_STREAMS` (100 until its SETTINGS arrive, as nghttp2
  /// assumes).
  let maxConcurrentStreams = Atomic<Int>(100)
  let activeStreams = Atomic<Int>(0)
  /// False after a GOAWAY or once the connection closed: new calls go elsewhere.
  let acceptsCalls = Atomic<Bool>(true)
}

/// One client connection: owns an nghttp2 client session and runs calls as its streams.
final class ClientConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  let configuration: RPCClientConfiguration
  let authority: String
  let scheme: StaticString
  let status: ConnectionStatus
  private var session: OpaquePointer?
  private var context: ChannelHandlerContext?
  private var loopBoundSelf: NIOLoopBound<ClientConnectionHandler>?
  private var streams: [Int32: ClientStream] = [:]
  private var flushScheduled = false
  private var readingInput = false

  init(configuration: RPCClientConfiguration, authority: String, secure: Bool, status: ConnectionStatus) {
    self.configuration = configuration
    self.authority = authority
    self.scheme = secure ? "https" : "http"
    self.status = status
  }

  /// The channel's loop, kept after the context is dropped (handlerRemoved).
  private(set) var eventLoop: (any EventLoop)!

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    self.eventLoop = context.eventLoop
    self.loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
    var session: OpaquePointer?
    let result = nghttp2_session_client_new2(
      &session, Self.callbacks, Unmanaged.passUnretained(self).toOpaque(), SessionIO.options)
    precondition(result == 0, "nghttp2 could not create a client session")
    self.session = session
    HTTP2Settings(
      maxConcurrentStreams: 100,
      initialWindowSize: self.configuration.initialStreamWindowSize,
      maxFrameSize: 16 * 1024,
      maxHeaderListSize: self.configuration.maxHeaderListSize,
      enablePush: false
    ).submit(to: session!, connectionWindowSize: self.configuration.connectionWindowSize)
    if context.channel.isActive { self.flush() }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.tearDown(RPCError(.unavailable, "The connection closed"))
    // The context holds this handler: keeping it would keep both alive for good.
    self.context = nil
  }

  func channelActive(context: ChannelHandlerContext) {
    self.flush()
    context.fireChannelActive()
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.tearDown(RPCError(.unavailable, "The connection to the server was lost"))
    context.fireChannelInactive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard let session = self.session else { return }
    self.readingInput = true
    let (ok, _) = SessionIO.receive(self.unwrapInboundIn(data), into: session)
    self.readingInput = false
    if !ok {
      self.flush()
      context.close(promise: nil)
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
    self.tearDown(RPCError(.unavailable, "Connection error: \(error)"))
    context.close(promise: nil)
  }

  private func tearDown(_ error: RPCError) {
    self.status.acceptsCalls.store(false, ordering: .relaxed)
    guard let session = self.session else { return }
    for stream in self.streams.values {
      stream.complete(.failure(error))
    }
    self.streams.removeAll()
    nghttp2_session_del(session)
    self.session = nil
    // The loop-bound reference to self would keep this handler alive forever.
    self.loopBoundSelf = nil
  }

  // MARK: Output

  func flush() {
    self.flushScheduled = false
    guard let session = self.session, let context = self.context, context.channel.isActive else { return }
    switch SessionIO.flush(session, context: context) {
    case .flushed: break
    case .failed, .finished: context.close(promise: nil)
    }
  }

  func scheduleFlush() {
    guard !self.flushScheduled, !self.readingInput, let loopBoundSelf else { return }
    self.flushScheduled = true
    self.eventLoop.execute { loopBoundSelf.value.flush() }
  }

  // MARK: Calls

  /// Starts a call: submits its headers and, when given, its first (or only) request message.
  func start(
    _ stream: ClientStream,
    head: ClientCallHead,
    compression: MessageEncoding,
    firstMessage: ByteBufferPayload?,
    endOfRequests: Bool
  ) {
    guard let session = self.session, !stream.finished else {
      self.status.activeStreams.subtract(1, ordering: .relaxed)
      stream.complete(.failure(RPCError(.unavailable, "The connection is closed")), unprocessed: true)
      return
    }
    stream.connection = self
    var headers = HeaderList()
    headers.add(":method", "POST")
    headers.add(":scheme", self.scheme)
    headers.add(":path", head.method.path)
    headers.add(":authority", self.authority)
    headers.add("content-type", "application/grpc")
    headers.add("te", "trailers")
    headers.add("user-agent", "grpc-swift-platform/1.0")
    if let timeout = head.timeout { headers.add("grpc-timeout", Timeout.encode(timeout)) }
    if compression == .gzip { headers.add("grpc-encoding", "gzip") }
    headers.add("grpc-accept-encoding", MessageEncoding.acceptHeader)
    headers.add(metadata: head.metadata)
    if let firstMessage {
      stream.outbound.append(firstMessage)
    }
    stream.requestsFinished = endOfRequests
    var provider = nghttp2_data_provider(
      source: nghttp2_data_source(ptr: nil), read_callback: Self.readRequestData)
    let id = headers.withNameValuePairs { pairs, count in
      nghttp2_submit_request(session, nil, pairs, count, &provider, Unmanaged.passUnretained(stream).toOpaque())
    }
    guard id > 0 else {
      self.status.acceptsCalls.store(false, ordering: .relaxed)
      self.status.activeStreams.subtract(1, ordering: .relaxed)
      stream.complete(.failure(RPCError(.unavailable, "The connection takes no new calls")), unprocessed: true)
      return
    }
    stream.id = id
    self.streams[id] = stream
    if let timeout = head.timeout, let loopBoundSelf {
      let boundStream = NIOLoopBound(stream, eventLoop: self.eventLoop)
      stream.deadlineTimer = self.eventLoop.scheduleTask(in: timeout.timeAmount) {
        loopBoundSelf.value.cancel(boundStream.value, RPCError(.deadlineExceeded, "The call's deadline was exceeded"))
      }
    }
    self.scheduleFlush()
  }

  /// Cancels a call: RST_STREAM(CANCEL) to the server, `error` to the caller.
  func cancel(_ stream: ClientStream, _ error: RPCError) {
    guard !stream.finished else { return }
    stream.complete(.failure(error))
    if stream.id > 0, let session = self.session {
      nghttp2_submit_rst_stream(session, NG.none, stream.id, NG.cancel)
      self.scheduleFlush()
    }
  }

  /// Queues one request message: true while the stream's buffer has room, false when the writer
  /// must wait for it (`waitForRoom`).
  /// - Throws: the call's end when it has ended.
  func enqueue(_ payload: ByteBufferPayload, on stream: ClientStream) throws(RPCError) -> Bool {
    guard !stream.finished, !stream.requestsFinished, self.session != nil else {
      throw stream.endedError
    }
    let room = stream.outbound.append(payload, limit: self.configuration.streamSendBufferLimit)
    self.resumeData(stream)
    return room
  }

  /// Resumes `writer` once the stream's buffer has room (or with the call's end).
  func waitForRoom(on stream: ClientStream, _ writer: CheckedContinuation<Void, any Error>) {
    guard !stream.finished, !stream.requestsFinished, self.session != nil else {
      writer.resume(throwing: stream.endedError)
      return
    }
    stream.outbound.waitForRoom(writer, limit: self.configuration.streamSendBufferLimit)
  }

  func endRequests(_ stream: ClientStream) {
    guard !stream.finished, !stream.requestsFinished else { return }
    stream.requestsFinished = true
    self.resumeData(stream)
  }

  private func resumeData(_ stream: ClientStream) {
    if stream.dataDeferred, stream.id > 0, let session = self.session {
      stream.dataDeferred = false
      nghttp2_session_resume_data(session, stream.id)
    }
    self.scheduleFlush()
  }

  fileprivate func readData(_ stream: ClientStream, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
    let written = stream.outbound.drain(into: buffer, capacity: length, limit: self.configuration.streamSendBufferLimit)
    if stream.outbound.isEmpty && stream.requestsFinished {
      flags.pointee |= NG.dataFlagEOF
      return written
    }
    if written == 0 {
      stream.dataDeferred = true
      return NG.deferred
    }
    return written
  }

  // MARK: Response events

  fileprivate func stream(_ id: Int32) -> ClientStream? {
    guard let session = self.session, let pointer = nghttp2_session_get_stream_user_data(session, id) else { return nil }
    return Unmanaged<ClientStream>.fromOpaque(pointer).takeUnretainedValue()
  }

  fileprivate func header(
    _ stream: ClientStream,
    name: UnsafePointer<UInt8>, nameLength: Int,
    value: UnsafePointer<UInt8>, valueLength: Int
  ) {
    stream.headerBytes += nameLength + valueLength + 32
    guard stream.headerBytes <= self.configuration.maxHeaderListSize else {
      if stream.localError == nil {
        stream.localError = RPCError(.resourceExhausted, "Response headers exceed \(self.configuration.maxHeaderListSize) bytes")
      }
      return
    }
    if bytesEqual(name, nameLength, ":status") {
      stream.httpStatus = Int(String(value, length: valueLength))
    } else if bytesEqual(name, nameLength, "grpc-status") {
      stream.statusCode = StatusCode(wireValue: Int(String(value, length: valueLength)) ?? StatusCode.unknown.rawValue)
    } else if bytesEqual(name, nameLength, "grpc-message") {
      stream.statusMessage = PercentEncoding.decode(String(value, length: valueLength))
    } else if bytesEqual(name, nameLength, "content-type") {
      stream.contentTypeValid = bytesHavePrefix(value, valueLength, "application/grpc")
    } else if bytesEqual(name, nameLength, "grpc-encoding") {
      stream.responseCompressed = bytesEqual(value, valueLength, "gzip")
      if !stream.responseCompressed && !bytesEqual(value, valueLength, "identity") && stream.localError == nil {
        stream.localError = RPCError(.internal, "The server used an unsupported grpc-encoding")
      }
    } else {
      let key = String(name, length: nameLength)
      guard !Metadata.isReserved(key),
        let entry = Metadata.decodedEntry(key: key, value: Substring(String(value, length: valueLength)))
      else { return }
      if stream.inTrailers || stream.statusCode != nil {
        stream.trailingMetadata.append(entry)
      } else {
        stream.initialMetadata.append(entry)
      }
    }
  }

  fileprivate func responseHeadersEnded(_ stream: ClientStream, category: nghttp2_headers_category) {
    if category == NG.responseCategory {
      if stream.statusCode != nil {
        // Trailers-only: the metadata seen belongs to the trailers.
        stream.trailingMetadata.append(contentsOf: stream.initialMetadata)
        stream.initialMetadata = Metadata()
      }
      stream.head.initialMetadata = stream.initialMetadata
      stream.inTrailers = true
    }
  }

  fileprivate func data(_ stream: ClientStream, _ bytes: UnsafeRawBufferPointer) {
    guard let session = self.session else { return }
    defer { if stream.responses == nil || stream.finished { nghttp2_session_consume(session, stream.id, bytes.count) } }
    guard !stream.finished, stream.localError == nil else { return }
    let streaming = stream.responses
    var error: RPCError?
    do throws(RPCError) {
      try stream.deframer.append(bytes) { message in
        if message.compressed && !stream.responseCompressed {
          error = RPCError(.internal, "Compressed response without a grpc-encoding")
          return
        }
        stream.responseCount += 1
        if let streaming {
          streaming.push(message)
        } else if stream.responseCount == 1 {
          stream.singleResponse = message
        } else {
          error = RPCError(.internal, "More than one response message for a \(stream.method.kind) call")
        }
      }
    } catch let thrown {
      error = thrown
    }
    if let error {
      self.cancel(stream, error)
    } else if let streaming, streaming.isDrained {
      // An unfinished message the caller is waiting for (`MessageDeframer.creditHeldBytes`).
      let credit = stream.deframer.creditHeldBytes()
      if credit > 0 { nghttp2_session_consume(session, stream.id, credit) }
    }
  }

  fileprivate func streamClosed(_ id: Int32, errorCode: UInt32) {
    guard let stream = self.streams.removeValue(forKey: id) else { return }
    self.status.activeStreams.subtract(1, ordering: .relaxed)
    guard !stream.finished else { return }
    let unprocessed = stream.httpStatus == nil && (errorCode == NG.refusedStream || errorCode == NG.noError)
    stream.complete(self.outcome(of: stream, errorCode: errorCode), unprocessed: unprocessed)
  }

  private func outcome(of stream: ClientStream, errorCode: UInt32) -> Result<ClientCallOutcome, RPCError> {
    if let error = stream.localError { return .failure(error) }
    guard let code = stream.statusCode else {
      if let httpStatus = stream.httpStatus, httpStatus != 200 {
        return .failure(RPCError(StatusCode(httpStatus: httpStatus), "HTTP status \(httpStatus) without a gRPC status"))
      }
      switch errorCode {
      case NG.refusedStream:
        return .failure(RPCError(.unavailable, "The server refused the stream"))
      case NG.cancel:
        return .failure(RPCError(.cancelled, "The server cancelled the call"))
      case NG.noError where stream.httpStatus == nil:
        return .failure(RPCError(.unavailable, "The server closed the stream before responding"))
      case NG.noError:
        return .failure(RPCError(.internal, "The server ended the call without a status"))
      default:
        return .failure(RPCError(.internal, "The server reset the stream (HTTP/2 error \(errorCode))"))
      }
    }
    guard code == .ok else {
      return .failure(RPCError(code, stream.statusMessage, metadata: stream.trailingMetadata))
    }
    if !stream.contentTypeValid {
      return .failure(RPCError(.internal, "The response's content-type is not application/grpc"))
    }
    if stream.deframer.hasPartialMessage {
      return .failure(RPCError(.internal, "The response ended inside a message"))
    }
    if stream.method.kind.hasSingleResponse && stream.singleResponse == nil {
      return .failure(RPCError(.internal, "The server sent no response message"))
    }
    return .success(ClientCallOutcome(
      message: stream.singleResponse, initialMetadata: stream.initialMetadata,
      trailingMetadata: stream.trailingMetadata))
  }

  /// New calls go to other connections; streams above the GOAWAY's last stream id are closed
  /// by nghttp2 as refused (and retried), the others finish here.
  fileprivate func goawayReceived() {
    self.status.acceptsCalls.store(false, ordering: .relaxed)
  }

  fileprivate func remoteSettingsChanged() {
    guard let session = self.session else { return }
    let limit = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
    self.status.maxConcurrentStreams.store(Int(min(limit, UInt32(Int32.max))), ordering: .relaxed)
  }

  fileprivate func consume(_ count: Int, on id: Int32) {
    guard let session = self.session else { return }
    nghttp2_session_consume(session, id, count)
    // The caller has read every complete message: an unfinished one may come in whole.
    if let stream = self.streams[id], !stream.finished, stream.responses?.isDrained == true {
      let credit = stream.deframer.creditHeldBytes()
      if credit > 0 { nghttp2_session_consume(session, id, credit) }
    }
    self.scheduleFlush()
  }

  func makeResponseQueue(for idBox: NIOLoopBound<ClientStream>) -> InboundMessageQueue {
    // A connection already torn down: the call fails in `start`, nothing will be consumed.
    guard let loopBoundSelf = self.loopBoundSelf else { return InboundMessageQueue { _ in } }
    return InboundMessageQueue { consumed in
      loopBoundSelf.eventLoop.execute {
        let stream = idBox.value
        if stream.id > 0 { loopBoundSelf.value.consume(consumed, on: stream.id) }
      }
    }
  }

  // MARK: nghttp2 callbacks

  private static func connection(_ userData: UnsafeMutableRawPointer?) -> ClientConnectionHandler {
    Unmanaged<ClientConnectionHandler>.fromOpaque(userData!).takeUnretainedValue()
  }

  nonisolated(unsafe) static let callbacks: OpaquePointer = {
    var callbacks: OpaquePointer?
    nghttp2_session_callbacks_new(&callbacks)
    nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
      let frame = frame!.pointee
      guard frame.hd.type == NG.headersFrame else { return 0 }
      let connection = ClientConnectionHandler.connection(userData)
      guard let stream = connection.stream(frame.hd.stream_id) else { return 0 }
      connection.header(stream, name: name!, nameLength: nameLength, value: value!, valueLength: valueLength)
      return 0
    }
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
      let frame = frame!.pointee
      let connection = ClientConnectionHandler.connection(userData)
      switch frame.hd.type {
      case NG.headersFrame:
        if let stream = connection.stream(frame.hd.stream_id) {
          connection.responseHeadersEnded(stream, category: frame.headers.cat)
        }
      case NG.settingsFrame:
        if frame.hd.flags & NG.ack == 0 { connection.remoteSettingsChanged() }
      case NG.goawayFrame:
        connection.goawayReceived()
      default:
        break
      }
      return 0
    }
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
      let connection = ClientConnectionHandler.connection(userData)
      guard let stream = connection.stream(streamID) else { return 0 }
      connection.data(stream, UnsafeRawBufferPointer(start: data, count: length))
      return 0
    }
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
      ClientConnectionHandler.connection(userData).streamClosed(streamID, errorCode: errorCode)
      return 0
    }
    return callbacks!
  }()

  static let readRequestData: nghttp2_data_source_read_callback = { _, streamID, buffer, length, flags, _, userData in
    let connection = ClientConnectionHandler.connection(userData)
    guard let stream = connection.stream(streamID) else { return Int(NG.temporalCallbackFailure) }
    return connection.readData(stream, into: buffer!, length: length, flags: flags!)
  }
}
