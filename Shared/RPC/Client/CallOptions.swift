public import SwiftProtobuf

/// Per-call options of a client call.
public struct CallOptions: Sendable {
  /// The call fails with DEADLINE_EXCEEDED after this long; sent to the server as
  /// `grpc-timeout`. A call made while handling a server call is bounded by that call's
  /// remaining time as well. Default: nil.
  public var timeout: Duration?
  /// Custom metadata sent with the request headers. Default: empty.
  public var metadata: Metadata
  /// Compresses request messages. Default: `.identity`.
  public var compression: MessageEncoding
  /// Whether the call may be retried when it fails with UNAVAILABLE (the server may have run
  /// it). Calls the server never started (refused or cut off by GOAWAY) are retried regardless.
  /// Default: false.
  public var idempotent: Bool

  public init(
    timeout: Duration? = nil,
    metadata: Metadata = [:],
    compression: MessageEncoding = .identity,
    idempotent: Bool = false
  ) {
    self.timeout = timeout
    self.metadata = metadata
    self.compression = compression
    self.idempotent = idempotent
  }

  public static var defaults: CallOptions { CallOptions() }
}

/// What a client interceptor may change before a call starts.
public struct ClientCallHead: Sendable {
  public let method: MethodDescriptor
  public var metadata: Metadata
  public var timeout: Duration?
}

/// Runs before every call a client makes: forwards credentials, injects trace context, bounds
/// deadlines. Interceptors run in order; keep them cheap (they run on every call).
public protocol ClientInterceptor: Sendable {
  func prepare(_ head: inout ClientCallHead)
}

/// Bounds each call by the remaining time of the server call being handled (if any), so
/// deadlines travel through a chain of services. Installed by default.
public struct DeadlinePropagationInterceptor: ClientInterceptor {
  public init() {}

  public func prepare(_ head: inout ClientCallHead) {
    guard let remaining = ServerContext.current?.remainingTime else { return }
    if let timeout = head.timeout, timeout <= remaining { return }
    head.timeout = remaining
  }
}

/// The single response of a unary or client-streaming call with its metadata.
public struct ClientResponse<Message: Sendable>: Sendable {
  public var message: Message
  public var initialMetadata: Metadata
  public var trailingMetadata: Metadata
}

/// The calls a typed (generated) client makes; implemented by `RPCClient`.
public protocol RPCChannel: Sendable {
  /// A unary call, with the response metadata.
  func unaryCall<Request: Message & Sendable, Response: Message & Sendable>(
    _ method: MethodDescriptor, request: Request, options: CallOptions
  ) async throws -> ClientResponse<Response>

  func serverStreaming<Request: Message & Sendable, Response: Message & Sendable, Result: Sendable>(
    _ method: MethodDescriptor, request: Request, options: CallOptions,
    responses: (ClientResponseStream<Response>) async throws -> Result
  ) async throws -> Result

  /// A client-streaming call, with the response metadata.
  func clientStreamingCall<Request: Message & Sendable, Response: Message & Sendable>(
    _ method: MethodDescriptor, options: CallOptions,
    requests: @Sendable (RequestStreamWriter<Request>) async throws -> Void
  ) async throws -> ClientResponse<Response>

  func bidirectionalStreaming<Request: Message & Sendable, Response: Message & Sendable, Result: Sendable>(
    _ method: MethodDescriptor, options: CallOptions,
    requests: @escaping @Sendable (RequestStreamWriter<Request>) async throws -> Void,
    responses: (ClientResponseStream<Response>) async throws -> Result
  ) async throws -> Result
}

extension RPCChannel {
  /// A unary call's response message.
  public func unary<Request: Message & Sendable, Response: Message & Sendable>(
    _ method: MethodDescriptor, request: Request, options: CallOptions
  ) async throws -> Response {
    let response: ClientResponse<Response> = try await self.unaryCall(method, request: request, options: options)
    return response.message
  }

  /// A client-streaming call's response message.
  public func clientStreaming<Request: Message & Sendable, Response: Message & Sendable>(
    _ method: MethodDescriptor, options: CallOptions,
    requests: @Sendable (RequestStreamWriter<Request>) async throws -> Void
  ) async throws -> Response {
    let response: ClientResponse<Response> = try await self.clientStreamingCall(method, options: options, requests: requests)
    return response.message
  }
}
