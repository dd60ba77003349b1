public import SwiftProtobuf
#if canImport(Glibc)
internal import Glibc
#endif

/// A service a server can host: generated handler protocols conform by registering each of their
/// methods.
public protocol RPCService: Sendable {
  /// Registers every method of the service.
  func registerMethods(with router: inout RPCRouter)
}

/// One routable method: decodes the request, runs the handler, encodes the single response
/// (nil for kinds that stream responses). A class: every call holds it, and a reference costs
/// one retain where copying the struct's strings and closure cost five.
final class ServerMethod: Sendable {
  let descriptor: MethodDescriptor
  let invoke: @Sendable (ServerCall) async throws -> ByteBufferPayload?
  /// The interceptors its calls pass through.
  let chain: InterceptorChain

  init(
    descriptor: MethodDescriptor, chain: InterceptorChain = .empty,
    invoke: @escaping @Sendable (ServerCall) async throws -> ByteBufferPayload?
  ) {
    self.descriptor = descriptor
    self.chain = chain
    self.invoke = invoke
  }
}

/// The table of methods a server routes `:path`s to.
public struct RPCRouter: Sendable {
  private(set) var methods: [String: ServerMethod] = [:] {
    didSet { self.pathTable = self.methods.map { (Array($0.key.utf8), $0.value) } }
  }
  /// The paths as bytes: routing compares the received `:path` bytes without making a String.
  private var pathTable: [(path: [UInt8], method: ServerMethod)] = []

  public init() {}

  /// A router for every method of `services`.
  public init(services: [any RPCService]) {
    for service in services { service.registerMethods(with: &self) }
  }

  /// The descriptors of every registered method.
  public var methodDescriptors: [MethodDescriptor] {
    self.methods.values.map(\.descriptor)
  }

  /// The fully qualified names of every registered service.
  public var serviceNames: Set<String> {
    Set(self.methods.values.map(\.descriptor.service))
  }

  /// The router with each method's chain of `interceptors` (those that intercept it).
  func intercepted(by interceptors: [any ServerInterceptor]) -> RPCRouter {
    var router = self
    router.methods = self.methods.mapValues { method in
      ServerMethod(descriptor: method.descriptor, chain: InterceptorChain(interceptors, for: method.descriptor), invoke: method.invoke)
    }
    return router
  }

  func method(forPath path: UnsafeRawBufferPointer) -> ServerMethod? {
    for entry in self.pathTable where entry.path.count == path.count {
      let equal = entry.path.withUnsafeBytes { memcmp($0.baseAddress!, path.baseAddress!, path.count) == 0 }
      if equal { return entry.method }
    }
    return nil
  }

  public mutating func registerUnary<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message & Sendable>(
    _ method: MethodDescriptor,
    handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
  ) {
    self.methods[method.path] = ServerMethod(descriptor: method) { call in
      let request = try call.codec.decode(call.request!, as: Request.self)
      let response = try await handler(request, call.context)
      return try call.encode(response)
    }
  }

  public mutating func registerServerStreaming<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message & Sendable>(
    _ method: MethodDescriptor,
    handler: @escaping @Sendable (Request, ResponseStreamWriter<Response>, ServerContext) async throws -> Void
  ) {
    self.methods[method.path] = ServerMethod(descriptor: method) { call in
      let request = try call.codec.decode(call.request!, as: Request.self)
      try await handler(request, MessageWriter(sink: call), call.context)
      return nil
    }
  }

  public mutating func registerClientStreaming<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message & Sendable>(
    _ method: MethodDescriptor,
    handler: @escaping @Sendable (RequestStream<Request>, ServerContext) async throws -> Response
  ) {
    self.methods[method.path] = ServerMethod(descriptor: method) { call in
      let requests = MessageStream<Request>(queue: call.requests!, codec: call.codec)
      let response = try await handler(requests, call.context)
      return try call.encode(response)
    }
  }

  public mutating func registerBidirectionalStreaming<Request: SwiftProtobuf.Message & Sendable, Response: SwiftProtobuf.Message & Sendable>(
    _ method: MethodDescriptor,
    handler: @escaping @Sendable (RequestStream<Request>, ResponseStreamWriter<Response>, ServerContext) async throws -> Void
  ) {
    self.methods[method.path] = ServerMethod(descriptor: method) { call in
      let requests = MessageStream<Request>(queue: call.requests!, codec: call.codec)
      try await handler(requests, MessageWriter(sink: call), call.context)
      return nil
    }
  }
}
