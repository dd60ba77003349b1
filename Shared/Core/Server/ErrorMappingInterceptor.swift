public import GRPCRuntime
public import Logging

/// The outermost interceptor: every error leaving a handler becomes a precise status without
/// internals. Domain errors keep their own (`RPCErrorConvertible`); a database that cannot be
/// reached is UNAVAILABLE; a transaction rolled back by a deadlock or a serialization failure is
/// ABORTED (retry the call); anything unexpected is logged in full and answered INTERNAL with
/// the trace id, so an operator can find the log line.
public struct ErrorMappingInterceptor: ServerInterceptor {
  private let logger: Logger

  public init(logger: Logger) {
    self.logger = logger
  }

  public func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    do {
      try await next(context)
    } catch let error as RPCError {
      throw error
    } catch let error as any RPCErrorConvertible {
      throw error.rpcError
    } catch is CancellationError {
      throw RPCError(.cancelled, "The call was cancelled")
    } catch where DatabaseErrors.isCancellation(error) {
      throw RPCError(.cancelled, "The call was cancelled")
    } catch {
      let traceID = TraceContext.current?.traceID ?? "-"
      if DatabaseErrors.isUnavailable(error) {
        self.logger.error(
          "Database unavailable",
          metadata: ["method": "\(context.method.path)", "error": "\(DatabaseErrors.describe(error))"])
        throw RPCError(.unavailable, "The service's database is unavailable; retry later (trace \(traceID))")
      }
      switch DatabaseErrors.sqlState(of: error) {
      case "57014":
        throw RPCError(.deadlineExceeded, "The database query was cancelled (statement timeout)")
      case "40001", "40P01":
        // A serialization failure or a deadlock: the transaction was rolled back whole, and the
        // same call may well succeed when retried (gRPC's ABORTED: retry at a higher level).
        self.logger.warning(
          "Transaction aborted by a conflict", metadata: ["method": "\(context.method.path)", "error": "\(DatabaseErrors.describe(error))"])
        throw RPCError(.aborted, "The call conflicted with a concurrent one and changed nothing; retry it (trace \(traceID))")
      default:
        break
      }
      self.logger.error(
        "Unexpected error", metadata: ["method": "\(context.method.path)", "error": "\(DatabaseErrors.describe(error))"])
      throw RPCError(.internal, "Internal error (trace \(traceID))")
    }
  }
}
