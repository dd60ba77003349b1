/// A gRPC status code, as carried in the `grpc-status` trailer.
public enum StatusCode: Int, Sendable, Hashable, CustomStringConvertible {
  case ok = 0
  case cancelled = 1
  case unknown = 2
  case invalidArgument = 3
  case deadlineExceeded = 4
  case notFound = 5
  case alreadyExists = 6
  case permissionDenied = 7
  case resourceExhausted = 8
  case failedPrecondition = 9
  case aborted = 10
  case outOfRange = 11
  case unimplemented = 12
  case `internal` = 13
  case unavailable = 14
  case dataLoss = 15
  case unauthenticated = 16

  /// The code for a `grpc-status` value; values outside the known range are `unknown`, as the
  /// specification requires.
  init(wireValue: Int) {
    self = StatusCode(rawValue: wireValue) ?? .unknown
  }

  /// Maps an HTTP status received instead of a gRPC response, as gRPC's http-grpc-status-mapping
  /// document prescribes.
  init(httpStatus: Int) {
    switch httpStatus {
    case 400: self = .internal
    case 401: self = .unauthenticated
    case 403: self = .permissionDenied
    case 404: self = .unimplemented
    case 429, 502, 503, 504: self = .unavailable
    default: self = .unknown
    }
  }

  public var description: String {
    switch self {
    case .ok: "OK"
    case .cancelled: "CANCELLED"
    case .unknown: "UNKNOWN"
    case .invalidArgument: "INVALID_ARGUMENT"
    case .deadlineExceeded: "DEADLINE_EXCEEDED"
    case .notFound: "NOT_FOUND"
    case .alreadyExists: "ALREADY_EXISTS"
    case .permissionDenied: "PERMISSION_DENIED"
    case .resourceExhausted: "RESOURCE_EXHAUSTED"
    case .failedPrecondition: "FAILED_PRECONDITION"
    case .aborted: "ABORTED"
    case .outOfRange: "OUT_OF_RANGE"
    case .unimplemented: "UNIMPLEMENTED"
    case .internal: "INTERNAL"
    case .unavailable: "UNAVAILABLE"
    case .dataLoss: "DATA_LOSS"
    case .unauthenticated: "UNAUTHENTICATED"
    }
  }
}

/// An error with a gRPC status: thrown by handlers to end a call with that status, and thrown by
/// the client when a call ends with a status other than OK.
public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The status code; never `.ok`.
  public var code: StatusCode
  /// A message for a developer, sent as `grpc-message`.
  public var message: String
  /// Trailing metadata sent (server) or received (client) with the status.
  public var metadata: Metadata

  public init(_ code: StatusCode, _ message: String = "", metadata: Metadata = [:]) {
    self.code = code
    self.message = message
    self.metadata = metadata
  }

  public var description: String {
    self.message.isEmpty ? "\(self.code)" : "\(self.code): \(self.message)"
  }
}

/// An error that knows which gRPC status it stands for. Domain errors conform so the server maps
/// them precisely instead of answering UNKNOWN.
public protocol RPCErrorConvertible: Error {
  var rpcError: RPCError { get }
}

extension RPCError {
  /// The status for any error thrown out of a handler: `RPCError` and `RPCErrorConvertible` keep
  /// their status, cancellation becomes CANCELLED, anything else UNKNOWN without its description
  /// (which may hold internals that must not reach a caller).
  public init(mapping error: any Error) {
    switch error {
    case let error as RPCError:
      self = error
    case let error as any RPCErrorConvertible:
      self = error.rpcError
    case is CancellationError:
      self = RPCError(.cancelled, "The call was cancelled")
    default:
      self = RPCError(.unknown, "The server failed to handle the call")
    }
  }
}
