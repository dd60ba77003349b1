public import Logging
internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import Synchronization

/// The admin port (HTTP/1.1, `ADMIN_PORT`): `/metrics` (Prometheus text), `/healthz` (the
/// process is up) and `/readyz` (the same verdict as gRPC health: 200 SERVING, 503 otherwise;
/// then the service's `HealthDetails`, a `name: value` line each).
/// GET and HEAD only; anything else is 404 or 405. Built on swift-nio's HTTP/1 codec.
public final class AdminServer: Sendable {
  private let host: String
  private let port: Int
  private let metrics: PlatformMetrics
  private let ready: @Sendable () -> Bool
  private let details: HealthDetails
  private let logger: Logger
  private let channel = Mutex<(any Channel)?>(nil)

  public init(
    host: String, port: Int, metrics: PlatformMetrics, details: HealthDetails = HealthDetails(), logger: Logger,
    ready: @escaping @Sendable () -> Bool
  ) {
    self.details = details
    self.host = host
    self.port = port
    self.metrics = metrics
    self.ready = ready
    self.logger = logger
  }

  /// Binds the port (a port in use fails start-up here) and returns it.
  public func bind() async throws -> Int {
    let metrics = self.metrics
    let ready = self.ready
    let details = self.details
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.backlog, value: 64)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
          try channel.pipeline.syncOperations.addHandler(AdminHandler(metrics: metrics, ready: ready, details: details))
        }
      }
      .bind(host: self.host, port: self.port)
      .get()
    self.channel.withLock { $0 = channel }
    let port = channel.localAddress?.port ?? self.port
    self.logger.info("Admin port serving /metrics, /healthz, /readyz", metadata: ["address": "\(self.host):\(port)"])
    return port
  }

  /// Serves until the task is cancelled; `bind()` first.
  public func serve() async throws {
    guard let channel = self.channel.withLock({ $0 }) else { return }
    try await withTaskCancellationHandler {
      try await channel.closeFuture.get()
    } onCancel: {
      channel.close(promise: nil)
    }
  }
}

private final class AdminHandler: ChannelInboundHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  private let metrics: PlatformMetrics
  private let ready: @Sendable () -> Bool
  private let details: HealthDetails
  private var request: HTTPRequestHead?

  init(metrics: PlatformMetrics, ready: @escaping @Sendable () -> Bool, details: HealthDetails) {
    self.details = details
    self.metrics = metrics
    self.ready = ready
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch self.unwrapInboundIn(data) {
    case .head(let head):
      self.request = head
    case .body:
      break  // no endpoint takes a body
    case .end:
      guard let head = self.request else { return }
      self.request = nil
      self.respond(to: head, context: context)
    }
  }

  private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
    let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
    var status = HTTPResponseStatus.ok
    var contentType = "text/plain; charset=utf-8"
    var body: [UInt8]
    if head.method != .GET && head.method != .HEAD {
      status = .methodNotAllowed
      body = Array("GET or HEAD\n".utf8)
    } else {
      switch path {
      case "/metrics":
        contentType = "text/plain; version=0.0.4; charset=utf-8"
        body = self.metrics.exposition()
      case "/healthz":
        body = Array("ok\n".utf8)
      case "/readyz":
        let isReady = self.ready()
        status = isReady ? .ok : .serviceUnavailable
        body = Array(((isReady ? "SERVING\n" : "NOT_SERVING\n") + self.details.text).utf8)
      default:
        status = .notFound
        body = Array("not found: /metrics, /healthz, /readyz\n".utf8)
      }
    }
    var headers = HTTPHeaders()
    headers.add(name: "content-type", value: contentType)
    headers.add(name: "content-length", value: String(body.count))
    let keepAlive = head.isKeepAlive
    if !keepAlive { headers.add(name: "connection", value: "close") }
    context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
    if head.method != .HEAD {
      context.write(self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
    }
    let done = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
    if !keepAlive {
      let channel = context.channel
      done.whenComplete { _ in channel.close(promise: nil) }
    }
  }
}
