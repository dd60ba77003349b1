/// The four kinds of gRPC call.
public enum RPCKind: Sendable, Hashable {
  case unary
  case serverStreaming
  case clientStreaming
  case bidirectionalStreaming

  /// Whether the client sends exactly one message.
  var hasSingleRequest: Bool { self == .unary || self == .serverStreaming }
  /// Whether the server sends exactly one message.
  var hasSingleResponse: Bool { self == .unary || self == .clientStreaming }
}

/// Names one method of a service; its `path` is the HTTP/2 `:path` of its calls.
public struct MethodDescriptor: Sendable, Hashable, CustomStringConvertible {
  /// The fully qualified service name, such as `grpc.health.v1.Health`.
  public let service: String
  /// The method name, such as `Check`.
  public let method: String
  /// The kind of call.
  public let kind: RPCKind
  /// `/service/method`.
  public let path: String

  public init(service: String, method: String, kind: RPCKind) {
    self.service = service
    self.method = method
    self.kind = kind
    self.path = "/\(service)/\(method)"
  }

  public var description: String { self.path }
}
