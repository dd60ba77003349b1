public import GRPCRuntime
public import Testing

/// Runs `body`, expecting it to fail with `code`; returns the status message.
@discardableResult
public func expectStatus<T>(
  _ code: StatusCode,
  _ comment: Comment? = nil,
  sourceLocation: SourceLocation = #_sourceLocation,
  _ body: () async throws -> T
) async -> String {
  do {
    _ = try await body()
    Issue.record("expected \(code), the call succeeded. \(comment?.rawValue ?? "")", sourceLocation: sourceLocation)
    return ""
  } catch let error as RPCError {
    #expect(error.code == code, "\(error.message) \(comment?.rawValue ?? "")", sourceLocation: sourceLocation)
    return error.message
  } catch {
    Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    return ""
  }
}
