public import GRPCRuntime
public import Logging

/// The outermost interceptor: every error leaving a handler becomes a precise status without
/// internals. Domain errors keep their own (`RPCErrorConvertible`); a database that cannot be
/// reached is UNAVAILABLE; a transaction rolled back by a deadlock or a serialization failure is
/// ABORTED (retry the call); anything unexpected is logged in full and answered INTERNAL with
/// the trace id, so an operator can find the log line.
public struct ErrorMappingInterceptor: SynchronousServerInterceptor {
  private let logger: Logger

  public init(logger: Logger) {
    self.logger = logger
  }

  public func failed(context: ServerContext, error: any Error) -> any Error {
    self.mapped(error, method: context.method)
  }

  private func mapped(_ error: any Error, method: MethodDescriptor) -> any Error {
    switch error {
    case let error as RPCError:
      return error
    case let error as any RPCErrorConvertible:
      return error.rpcError
    case is CancellationError:
      return RPCError(.cancelled, "The call was cancelled")
    case _ where DatabaseErrors.isCancellation(error):
      return RPCError(.cancelled, "The call was cancelled")
    default:
      break
    }
    let traceID = TraceContext.current?.traceID ?? "-"
    if DatabaseErrors.isUnavailable(error) {
      self.logger.error(
        "Database unavailable",
        metadata: ["method": "\(method.path)", "error": "\(DatabaseErrors.describe(error))"])
      return RPCError(.unavailable, "The service's database is unavailable; retry later (trace \(traceID))")
    }
    switch DatabaseErrors.sqlState(of: error) {
    case "57014":
      return RPCError(.deadlineExceeded, "The database query was cancelled (statement timeout)")
    case "40001", "40P01":
      // A serialization failure or a deadlock: the transaction was rolled back whole, and the
      // same call may well succeed when retried (gRPC's ABORTED: retry at a higher level).
      self.logger.warning(
        "Transaction aborted by a conflict", metadata: ["method": "\(method.path)", "error": "\(DatabaseErrors.describe(error))"])
      return RPCError(.aborted, "The call conflicted with a concurrent one and changed nothing; retry it (trace \(traceID))")
    default:
      break
    }
    self.logger.error(
      "Unexpected error", metadata: ["method": "\(method.path)", "error": "\(DatabaseErrors.describe(error))"])
    return RPCError(.internal, "Internal error (trace \(traceID))")
  }
}
