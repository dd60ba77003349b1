/// What the text-to-SQL service refuses or fails with; each case is one gRPC status.
public enum TextToSQLError: Error, Equatable, Sendable {
  case invalidArgument(field: String, reason: String)
  case notFound(String)
  case alreadyExists(String)
  case failedPrecondition(String)
  case unimplemented(String)
  case unavailable(String)
  case deadlineExceeded(String)
  case resourceExhausted(String)

  /// The message alone (recorded with a failed run).
  var message: String {
    switch self {
    case .invalidArgument(_, let reason): reason
    case .notFound(let why), .alreadyExists(let why), .failedPrecondition(let why), .unimplemented(let why), .unavailable(let why),
      .deadlineExceeded(let why), .resourceExhausted(let why):
      why
    }
  }

  /// The status of a target's failure.
  static func target(_ error: TargetError) -> TextToSQLError {
    switch error {
    case .unavailable(let why): .unavailable(why)
    case .refused(let why): .failedPrecondition(why)
    case .rejected(let why): .invalidArgument(field: "sql", reason: "the database refused the statement: \(why)")
    case .timedOut: .deadlineExceeded("The statement ran past its timeout and was cancelled")
    case .busy: .resourceExhausted("Too many statements are running on this database; retry shortly")
    }
  }
}
