public import GRPCRuntime

/// The refusals a service's domain throws, each with the gRPC status it is: INVALID_ARGUMENT
/// names the field, the rest say why in words a caller can act on.
public enum ServiceError: Error, Equatable, Sendable, RPCErrorConvertible {
  case invalidArgument(field: String, reason: String)
  case notFound(String)
  case alreadyExists(String)
  case failedPrecondition(String)
  case permissionDenied(String)
  case unavailable(String)
  case resourceExhausted(String)
  case unimplemented(String)

  public var rpcError: RPCError {
    switch self {
    case .invalidArgument(let field, let reason): RPCError(.invalidArgument, "\(field): \(reason)")
    case .notFound(let what): RPCError(.notFound, what)
    case .alreadyExists(let what): RPCError(.alreadyExists, what)
    case .failedPrecondition(let why): RPCError(.failedPrecondition, why)
    case .permissionDenied(let why): RPCError(.permissionDenied, why)
    case .unavailable(let why): RPCError(.unavailable, why)
    case .resourceExhausted(let why): RPCError(.resourceExhausted, why)
    case .unimplemented(let why): RPCError(.unimplemented, why)
    }
  }
}
