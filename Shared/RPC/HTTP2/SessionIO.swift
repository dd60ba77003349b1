internal import CNGHTTP2
internal import NIOCore

/// Moves bytes between a channel and an nghttp2 session; shared by server and client
/// connections.
enum SessionIO {
  /// The session options of both sides: window updates follow consumption by the reader of
  /// each stream, so a slow reader applies backpressure instead of letting data pile up.
  nonisolated(unsafe) static let options: OpaquePointer = {
    var option: OpaquePointer?
    nghttp2_option_new(&option)
    nghttp2_option_set_no_auto_window_update(option, 1)
    // The server applies its own rapid-reset rule (ServerConnectionHandler.clientReset).
    nghttp2_option_set_stream_reset_rate_limit(option, UInt64(Int64.max), UInt64(Int64.max))
    return option!
  }()

  enum FlushOutcome {
    /// Everything was written, or the channel stopped being writable.
    case flushed
    /// nghttp2 failed: the connection must close.
    case failed
    /// Neither side has anything more to say (after GOAWAY and the last stream): close.
    case finished
  }

  /// Feeds received bytes to the session; false on a fatal HTTP/2 error (bad preface, flood,
  /// protocol violation), after which nghttp2 has queued a GOAWAY where it could.
  static func receive(_ buffer: ByteBuffer, into session: OpaquePointer) -> (ok: Bool, error: String) {
    let result = buffer.withUnsafeReadableBytes { bytes in
      nghttp2_session_mem_recv(session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
    }
    guard result < 0 else { return (true, "") }
    return (false, String(cString: nghttp2_strerror(Int32(result))))
  }

  /// Writes what nghttp2 has to send, in buffers of up to 64 KiB, then flushes. Stops while
  /// the channel is not writable (the caller flushes again when it is), so output stays in the
  /// streams' bounded buffers rather than piling up in the socket's.
  static func flush(_ session: OpaquePointer, context: ChannelHandlerContext) -> FlushOutcome {
    var buffer: ByteBuffer?
    while context.channel.isWritable {
      var pointer: UnsafePointer<UInt8>?
      let count = nghttp2_session_mem_send(session, &pointer)
      if count < 0 { return .failed }
      if count == 0 { break }
      if buffer == nil { buffer = context.channel.allocator.buffer(capacity: max(count, 1024)) }
      buffer!.writeBytes(UnsafeRawBufferPointer(start: pointer, count: count))
      if buffer!.readableBytes >= 64 * 1024 {
        context.write(NIOAny(buffer!), promise: nil)
        buffer = nil
      }
    }
    if let buffer { context.write(NIOAny(buffer), promise: nil) }
    context.flush()
    if nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 {
      return .finished
    }
    return .flushed
  }
}
