public import NIOSSL

/// Where an `RPCClient` connects and how it behaves. Every field has a safe default.
public struct RPCClientConfiguration: Sendable {
  /// The servers: `host:port` entries; a host name is resolved to all its addresses, and calls
  /// are spread over them round-robin.
  public var targets: [String]
  /// TLS with ALPN `h2`; nil speaks h2c with prior knowledge. Default: nil.
  public var tls: TLSConfiguration?
  /// The name checked against the server's certificate and sent as `:authority`; defaults to
  /// the target's host.
  public var serverHostname: String?
  /// The largest response message accepted. Default: 4 MiB.
  public var maxReceiveMessageSize: Int
  /// How deep a response message may nest (decoding recurses once per level); deeper ones
  /// fail the call with INTERNAL. Default: 100.
  public var maxMessageDepth: Int
  /// Connections opened per address when the existing ones have no free stream. Default: 4.
  public var maxConnectionsPerAddress: Int
  /// `SETTINGS_INITIAL_WINDOW_SIZE` for responses. Default: 1 MiB.
  public var initialStreamWindowSize: Int
  /// The connection's receive window. Default: 8 MiB.
  public var connectionWindowSize: Int
  /// `SETTINGS_MAX_HEADER_LIST_SIZE` for responses. Default: 16 KiB.
  public var maxHeaderListSize: Int
  /// How long a connection attempt may take. Default: 5 s.
  public var connectTimeout: Duration
  /// Reconnection backoff after failed attempts (gRPC's connection-backoff algorithm).
  public var backoff: Backoff
  /// Retries of idempotent calls that failed with UNAVAILABLE.
  public var retry: RetryPolicy
  /// Bytes a stream's request buffer may hold before a streaming writer's `write` waits.
  /// Default: 64 KiB.
  public var streamSendBufferLimit: Int
  /// Run before every call, in order. Default: deadline propagation.
  public var interceptors: [any ClientInterceptor]

  public struct Backoff: Sendable {
    public var initial: Duration
    public var multiplier: Double
    public var maximum: Duration
    public var jitter: Double

    public init(initial: Duration, multiplier: Double, maximum: Duration, jitter: Double) {
      self.initial = initial
      self.multiplier = multiplier
      self.maximum = maximum
      self.jitter = jitter
    }
  }

  public struct RetryPolicy: Sendable {
    /// Attempts in all, the first included. Default: 3.
    public var maxAttempts: Int
    public var initialBackoff: Duration
    public var maximumBackoff: Duration
    public var multiplier: Double

    public init(maxAttempts: Int, initialBackoff: Duration, maximumBackoff: Duration, multiplier: Double) {
      self.maxAttempts = maxAttempts
      self.initialBackoff = initialBackoff
      self.maximumBackoff = maximumBackoff
      self.multiplier = multiplier
    }
  }

  public static func defaults(targets: [String]) -> Self {
    Self(
      targets: targets,
      tls: nil,
      serverHostname: nil,
      maxReceiveMessageSize: 4 * 1024 * 1024,
      maxMessageDepth: 100,
      maxConnectionsPerAddress: 4,
      initialStreamWindowSize: 1024 * 1024,
      connectionWindowSize: 8 * 1024 * 1024,
      maxHeaderListSize: 16 * 1024,
      connectTimeout: .seconds(5),
      backoff: Backoff(initial: .seconds(1), multiplier: 1.6, maximum: .seconds(120), jitter: 0.2),
      retry: RetryPolicy(maxAttempts: 3, initialBackoff: .milliseconds(100), maximumBackoff: .seconds(2), multiplier: 2),
      streamSendBufferLimit: 64 * 1024,
      interceptors: [DeadlinePropagationInterceptor()]
    )
  }

  public static func defaults(targets: [String], configure: (inout Self) -> Void) -> Self {
    var configuration = Self.defaults(targets: targets)
    configure(&configuration)
    return configuration
  }
}
