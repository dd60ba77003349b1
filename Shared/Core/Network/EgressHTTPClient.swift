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

  /// Sends one request and reads the whole response.
  public func send(
    _ method: String, _ url: URL, headers: [(String, String)] = [], body: Data = Data(), timeout: Duration
  ) async throws(Failure) -> Response {
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
    let group = MultiThreadedEventLoopGroup.singleton
    let loop = group.any()
    let promise = loop.makePromise(of: Response.self)
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
          try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise, limit: limit))
        }
      }
    let channel: any Channel
    do {
      channel = try await bootstrap.connect(to: address).get()
    } catch {
      promise.fail(error)
      throw .connection("could not connect to \(host)")
    }
    let timer = loop.scheduleTask(in: .milliseconds(Int64(timeout.wholeMilliseconds))) {
      promise.fail(Failure.timedOut)
      channel.close(promise: nil)
    }
    defer { timer.cancel() }
    var buffer = channel.allocator.buffer(capacity: body.count)
    buffer.writeBytes(body)
    channel.write(HTTPClientRequestPart.head(head), promise: nil)
    channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    do {
      return try await promise.futureResult.get()
    } catch let failure as Failure {
      throw failure
    } catch {
      throw .connection("\(error)")
    }
  }
}

/// Collects one response, up to `limit` bytes of body, then closes the connection.
private final class ResponseCollector: ChannelInboundHandler {
  typealias InboundIn = HTTPClientResponsePart

  private let promise: EventLoopPromise<EgressHTTPClient.Response>
  private let limit: Int
  private var head: HTTPResponseHead?
  private var body: [UInt8] = []

  init(promise: EventLoopPromise<EgressHTTPClient.Response>, limit: Int) {
    self.promise = promise
    self.limit = limit
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch self.unwrapInboundIn(data) {
    case .head(let head):
      self.head = head
    case .body(let buffer):
      guard self.body.count + buffer.readableBytes <= self.limit else {
        self.promise.fail(EgressHTTPClient.Failure.tooLarge(self.limit))
        context.close(promise: nil)
        return
      }
      self.body += buffer.readableBytesView
    case .end:
      if let head = self.head {
        self.promise.succeed(
          EgressHTTPClient.Response(status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: Data(self.body)))
      } else {
        self.promise.fail(EgressHTTPClient.Failure.connection("no response"))
      }
      context.close(promise: nil)
    }
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    self.promise.fail(error)
    context.close(promise: nil)
  }

  func channelInactive(context: ChannelHandlerContext) {
    self.promise.fail(EgressHTTPClient.Failure.connection("the server closed the connection"))
    context.fireChannelInactive()
  }
}
