public import GRPCRuntime

/// What can go wrong with a persona request; each case maps to one precise gRPC status.
public enum PersonaError: Error, Equatable, Sendable, RPCErrorConvertible {
  /// A request field is missing or malformed; `field` is its path, such as `persona.name`.
  case invalidArgument(field: String, reason: String)
  /// The template does not parse.
  case templateSyntax(line: Int, column: Int, reason: String)
  /// Render variables fail the persona's schema; every violation is named.
  case variablesRejected([SchemaViolation])
  case notFound
  /// Another user's public persona: visible, but not theirs to change.
  case notOwner
  /// The persona changed since the caller read it.
  case versionMismatch(expected: Int, current: Int)
  /// Rendering would exceed the output cap.
  case renderTooLarge(limit: Int)
  /// The judge model could not be reached.
  case judgeUnavailable(String)
  /// A create's request id was used by a persona that has been deleted since.
  case requestIDOfDeletedPersona

  public var rpcError: RPCError {
    switch self {
    case .invalidArgument(let field, let reason):
      RPCError(.invalidArgument, "\(field): \(reason)")
    case .templateSyntax(let line, let column, let reason):
      RPCError(.invalidArgument, "persona.template: line \(line), column \(column): \(reason)")
    case .variablesRejected(let violations):
      RPCError(.invalidArgument, violations.map(\.description).joined(separator: "; "))
    case .notFound:
      RPCError(.notFound, "Persona not found")
    case .notOwner:
      RPCError(.permissionDenied, "Only the persona's owner may change it")
    case .versionMismatch(let expected, let current):
      RPCError(.failedPrecondition, "version: the persona is at version \(current), not \(expected); read it again")
    case .renderTooLarge(let limit):
      RPCError(.resourceExhausted, "The rendered text would exceed \(limit) characters")
    case .judgeUnavailable(let reason):
      RPCError(.unavailable, "The judge model is unavailable: \(reason)")
    case .requestIDOfDeletedPersona:
      RPCError(.failedPrecondition, "request_id: the persona this request id created has been deleted; use a new request id")
    }
  }
}
