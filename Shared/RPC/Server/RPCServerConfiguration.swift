public import NIOSSL
internal import NIOCore

/// How an `RPCServer` listens and the limits it enforces. Every field has a safe default.
public struct RPCServerConfiguration: Sendable {
  /// The address to bind. Default: `127.0.0.1`.
  public var host: String
  /// The port to bind; 0 picks a free one (see `RPCServer.listeningPort`). Default: 0.
  public var port: Int
  /// TLS with ALPN `h2`; nil serves h2c with prior knowledge. Default: nil.
  public var tls: TLSConfiguration?
  /// The largest message accepted, compressed or not; larger ones end the call with
  /// RESOURCE_EXHAUSTED. Default: 4 MiB.
  public var maxReceiveMessageSize: Int
  /// How deep a received message may nest, counted in messages, itself included (messages
  /// within messages, such as
  /// `google.protobuf.Value`s in lists in `Value`s); deeper ones end the call with
  /// INVALID_ARGUMENT. Decoding recurses once per level on the connection's thread, so this is
  /// what keeps a small request from overflowing its stack. Default: 100 (swift-protobuf's and
  /// grpc-java's default).
  public var maxMessageDepth: Int
  /// `SETTINGS_MAX_CONCURRENT_STREAMS`: calls a client may run at once on one connection.
  /// Default: 100.
  public var maxConcurrentStreams: Int
  /// `SETTINGS_MAX_HEADER_LIST_SIZE`: larger request headers end the call with
  /// RESOURCE_EXHAUSTED. Default: 16 KiB.
  public var maxHeaderListSize: Int
  /// `SETTINGS_INITIAL_WINDOW_SIZE`, the per-stream receive window. Default: 1 MiB.
  public var initialStreamWindowSize: Int
  /// The connection's receive window. Default: 8 MiB.
  public var connectionWindowSize: Int
  /// `SETTINGS_MAX_FRAME_SIZE`. Default: 16 KiB.
  public var maxFrameSize: Int
  /// A connection with no call for this long is closed with GOAWAY. Default: 5 minutes.
  public var idleTimeout: Duration?
  /// Keepalive PINGs: sent after `interval` and the connection closed if no ack comes within
  /// `timeout`. Default: every 2 hours, 20 s timeout.
  public var keepalive: Keepalive?
  /// Connections are asked to go away (GOAWAY) after this age, so clients re-resolve and load
  /// spreads over new servers. Default: nil (no limit).
  public var maxConnectionAge: Duration?
  /// How long calls may run after a GOAWAY for age or shutdown before the connection is
  /// closed. Default: 10 s.
  public var shutdownGracePeriod: Duration
  /// Bytes a stream's response buffer may hold before a streaming handler's `write` waits.
  /// Default: 64 KiB.
  public var streamSendBufferLimit: Int
  /// Whether responses are gzip-compressed when the request was. Default: true.
  public var compressResponses: Bool
  /// Where handler tasks run. Default: `.eventLoop`.
  public var handlerExecution: HandlerExecution

  /// Where handler tasks run.
  public enum HandlerExecution: Sendable {
    /// On the connection's event loop (`EventLoopTaskExecutor`): no thread hop per call; for
    /// handlers that await I/O and do little computation, which is every service here.
    case eventLoop
    /// On Swift's global concurrent executor: for handlers that compute for long.
    case globalExecutor
  }

  public struct Keepalive: Sendable {
    public var interval: Duration
    public var timeout: Duration

    public init(interval: Duration, timeout: Duration) {
      self.interval = interval
      self.timeout = timeout
    }
  }

  public static var defaults: Self {
    Self(
      host: "127.0.0.1",
      port: 0,
      tls: nil,
      maxReceiveMessageSize: 4 * 1024 * 1024,
      maxMessageDepth: 100,
      maxConcurrentStreams: 100,
      maxHeaderListSize: 16 * 1024,
      initialStreamWindowSize: 1024 * 1024,
      connectionWindowSize: 8 * 1024 * 1024,
      maxFrameSize: 16 * 1024,
      idleTimeout: .seconds(300),
      keepalive: Keepalive(interval: .seconds(7200), timeout: .seconds(20)),
      maxConnectionAge: nil,
      shutdownGracePeriod: .seconds(10),
      streamSendBufferLimit: 64 * 1024,
      compressResponses: true,
      handlerExecution: .eventLoop
    )
  }

  public static func defaults(configure: (inout Self) -> Void) -> Self {
    var configuration = Self.defaults
    configure(&configuration)
    return configuration
  }
}

extension Duration {
  var timeAmount: TimeAmount {
    let (seconds, attoseconds) = self.components
    return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
  }
}
