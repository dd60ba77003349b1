public import Foundation
internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import NIOSSL

/// One HTTP/1.1 request at a time to a URL the egress policy allows: the host is resolved and
/// checked (`EgressPolicy.resolve`), and the connection goes to that checked address, never to
/// the name again (no DNS rebinding); TLS still verifies the certificate against the name.
/// Responses are bounded in bytes and time. For model providers, callbacks, web search and
/// workflow http nodes: a request a second at most per caller, so no pooling.
///
/// async-http-client, which the design names for outbound HTTP, resolves and connects by name
/// inside its pool; checking the address it will use is not possible from outside it.
public struct EgressHTTPClient: Sendable {
  public let policy: EgressPolicy
  public let maxResponseBytes: Int

  public init(policy: EgressPolicy, maxResponseBytes: Int = 8 << 20) {
    self.policy = policy
    self.maxResponseBytes = maxResponseBytes
  }

  public struct Response: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: Data
  }

  public enum Failure: Error, Equatable, CustomStringConvertible {
    case invalidURL(String)
    case refused(EgressPolicy.Refusal)
    case timedOut
    case tooLarge(Int)
    case connection(String)

    public var description: String {
      switch self {
      case .invalidURL(let why): "The URL is not usable: \(why)"
      case .refused(let refusal): refusal.description
      case .timedOut: "The request timed out"
      case .tooLarge(let limit): "The response is larger than \(limit) bytes"
      case .connection(let why): "The request failed: \(why)"
      }
    }
  }

  /// A response whose body arrives as it is read: the status and headers first, then `body`,
  /// which ends at the end of the response and throws when the connection drops before it, the
  /// time limit passes or the body grows past `maxResponseBytes`. Ending the iteration early (or
  /// cancelling its task) closes the connection.
  public struct StreamedResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: AsyncThrowingStream<[UInt8], any Error>

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
      self.headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
  }

  /// Sends one request and reads the whole response.
  public func send(
    _ method: String, _ url: URL, headers: [(String, String)] = [], body: Data = Data(), timeout: Duration
  ) async throws(Failure) -> Response {
    let response = try await self.open(method, url, headers: headers, body: body, timeout: timeout)
    var collected: [UInt8] = []
    do {
      for try await part in response.body { collected += part }
    } catch {
      throw Self.failure(error)
    }
    return Response(status: response.status, headers: response.headers, body: Data(collected))
  }

  /// Sends one request and returns once the response's head has arrived; `timeout` bounds the
  /// whole exchange, body included.
  public func open(
    _ method: String, _ url: URL, headers: [(String, String)] = [], body: Data = Data(), timeout: Duration
  ) async throws(Failure) -> StreamedResponse {
    guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty else {
      throw .invalidURL("only http and https URLs with a host")
    }
    let port = url.port ?? (scheme == "https" ? 443 : 80)
    let address: SocketAddress
    do {
      address = try await self.policy.resolve(host: host, port: port)
    } catch {
      throw .refused(error)
    }
    var path = url.path.isEmpty ? "/" : url.path
    if let query = url.query { path += "?" + query }
    var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
    // An IPv6 literal goes in brackets (RFC 9110 §7.2).
    let authority = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    head.headers.add(name: "Host", value: url.port.map { "\(authority):\($0)" } ?? authority)
    head.headers.add(name: "Content-Length", value: String(body.count))
    head.headers.add(name: "Connection", value: "close")
    for (name, value) in headers { head.headers.add(name: name, value: value) }
    let tls: NIOSSLContext?
    do {
      tls = scheme == "https" ? try NIOSSLContext(configuration: .makeClientConfiguration()) : nil
    } catch {
      throw .connection("TLS could not be set up")
    }
    let loop = MultiThreadedEventLoopGroup.singleton.any()
    let headPromise = loop.makePromise(of: HTTPResponseHead.self)
    let (stream, continuation) = AsyncThrowingStream.makeStream(of: [UInt8].self, throwing: (any Error).self)
    let limit = self.maxResponseBytes
    let serverName = (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    let bootstrap = ClientBootstrap(group: loop)
      .connectTimeout(.milliseconds(Int64(min(timeout, .seconds(10)).wholeMilliseconds)))
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls {
            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
          }
          try channel.pipeline.syncOperations.addHTTPClientHandlers()
          try channel.pipeline.syncOperations.addHandler(ResponseReader(head: headPromise, body: continuation, limit: limit))
        }
      }
    let channel: any Channel
    do {
      channel = try await bootstrap.connect(to: address).get()
    } catch {
      headPromise.fail(error)
      continuation.finish(throwing: Failure.connection("could not connect to \(host)"))
      throw .connection("could not connect to \(host)")
    }
    let timer = loop.scheduleTask(in: .milliseconds(Int64(timeout.wholeMilliseconds))) {
      headPromise.fail(Failure.timedOut)
      continuation.finish(throwing: Failure.timedOut)
      channel.close(promise: nil)
    }
    continuation.onTermination = { _ in
      timer.cancel()
      channel.close(promise: nil)
    }
    var buffer = channel.allocator.buffer(capacity: body.count)
    buffer.writeBytes(body)
    channel.write(HTTPClientRequestPart.head(head), promise: nil)
    channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    do {
      let responseHead = try await withTaskCancellationHandler {
        try await headPromise.futureResult.get()
      } onCancel: {
        headPromise.fail(CancellationError())
        continuation.finish(throwing: CancellationError())
      }
      return StreamedResponse(
        status: Int(responseHead.status.code), headers: responseHead.headers.map { ($0.name, $0.value) }, body: stream)
    } catch {
      continuation.finish()
      throw Self.failure(error)
    }
  }

  static func failure(_ error: any Error) -> Failure {
    if let failure = error as? Failure { return failure }
    if error is CancellationError { return .connection("cancelled") }
    return .connection("\(error)")
  }
}

/// Hands on one response: its head to a promise, its body parts to a stream (up to `limit`
/// bytes), then closes the connection. A connection that ends before the response does throws.
private final class ResponseReader: ChannelInboundHandler {
  typealias InboundIn = HTTPClientResponsePart

  private let head: EventLoopPromise<HTTPResponseHead>
  private let body: AsyncThrowingStream<[UInt8], any Error>.Continuation
  private let limit: Int
  private var received = 0

  init(head: EventLoopPromise<HTTPResponseHead>, body: AsyncThrowingStream<[UInt8], any Error>.Continuation, limit: Int) {
    self.head = head
    self.body = body
    self.limit = limit
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch self.unwrapInboundIn(data) {
    case .head(let head):
      self.head.succeed(head)
    case .body(let buffer):
      self.received += buffer.readableBytes
      guard self.received <= self.limit else {
        self.body.finish(throwing: EgressHTTPClient.Failure.tooLarge(self.limit))
        context.close(promise: nil)
        return
      }
      self.body.yield(Array(buffer.readableBytesView))
    case .end:
      self.body.finish()
      context.close(promise: nil)
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    self.head.fail(error)
    self.body.finish(throwing: EgressHTTPClient.Failure.connection("\(error)"))
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    let closed = EgressHTTPClient.Failure.connection("the server closed the connection before the response ended")
    self.head.fail(closed)
    self.body.finish(throwing: closed)
    context.fireChannelInactive()
  }
}
