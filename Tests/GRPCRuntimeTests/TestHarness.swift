import GRPCRuntime
import GRPCRuntimeServices
import InteropSupport
import NIOCore
import NIOPosix
import Logging

/// Servers in tests log warnings and errors only.
let quietLogger: Logger = {
  var logger = Logger(label: "test.server")
  logger.logLevel = .warning
  return logger
}()

/// Starts a server on a free loopback port, hands a client connected to it to `body`, and stops
/// both afterwards.
func withServer<Result: Sendable>(
  services: [any RPCService] = [TestService(), EchoService()],
  interceptors: [any ServerInterceptor] = [],
  configure: (inout RPCServerConfiguration) -> Void = { _ in },
  client configureClient: (inout RPCClientConfiguration) -> Void = { _ in },
  _ body: (RPCClient, Int) async throws -> Result
) async throws -> Result {
  var configuration = RPCServerConfiguration.defaults
  configure(&configuration)
  let server = RPCServer(configuration: configuration, services: services, interceptors: interceptors, logger: quietLogger)
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.run() }
    let port = try await server.listeningPort
    var clientConfiguration = RPCClientConfiguration.defaults(targets: ["127.0.0.1:\(port)"])
    configureClient(&clientConfiguration)
    let client = try RPCClient(configuration: clientConfiguration)
    do {
      let result = try await body(client, port)
      await client.close()
      group.cancelAll()
      return result
    } catch {
      await client.close()
      group.cancelAll()
      throw error
    }
  }
}

/// Sends raw bytes to a server and collects what it answers until it closes or `timeout`.
func exchangeRawBytes(port: Int, _ chunks: [[UInt8]], timeout: TimeAmount = .seconds(2)) async throws -> (received: [UInt8], closedByServer: Bool) {
  let collector = RawCollector()
  let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
    .channelInitializer { channel in
      channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
    }
    .connect(host: "127.0.0.1", port: port).get()
  for chunk in chunks {
    try? await channel.writeAndFlush(ByteBuffer(bytes: chunk))
  }
  let closed: Bool
  do {
    try await channel.closeFuture.timeout(after: timeout, on: channel.eventLoop)
    closed = true
  } catch {
    closed = false
    try? await channel.close()
  }
  return (try await channel.eventLoop.submit { collector.bytes }.get(), closed)
}

final class RawCollector: ChannelInboundHandler, @unchecked Sendable {
  typealias InboundIn = ByteBuffer
  var bytes: [UInt8] = []

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var buffer = self.unwrapInboundIn(data)
    self.bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
  }
}

extension EventLoopFuture {
  func timeout(after amount: TimeAmount, on loop: any EventLoop) async throws {
    let promise = loop.makePromise(of: Void.self)
    let timer = loop.scheduleTask(in: amount) { promise.fail(ChannelError.connectTimeout(amount)) }
    self.whenComplete { _ in
      timer.cancel()
      promise.succeed(())
    }
    try await promise.futureResult.get()
  }
}

/// The HTTP/2 client connection preface and an empty SETTINGS frame.
let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]

/// An HTTP/2 frame.
func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
  let length = UInt32(payload.count)
  return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags,
          UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
}
