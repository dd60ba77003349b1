/// Intercepts the calls a server handles, around the handler: authentication, tracing, metrics,
/// logging. Throwing ends the call with the error's status (see `RPCError(mapping:)`).
///
/// An interceptor that never suspends should be a `SynchronousServerInterceptor`: the server
/// runs those in the call's own frame, where each async `intercept` costs the call a frame of
/// its task and an executor check on each return.
public protocol ServerInterceptor: Sendable {
  /// What intercepts the calls of `method`: this interceptor (the default), one made for that
  /// method (holding what it would otherwise look up on every call), or nil when it has nothing
  /// to do for them (an open method's authentication). Asked once per method when the server
  /// starts.
  func interceptor(for method: MethodDescriptor) -> (any ServerInterceptor)?

  /// Handles one call. Call `next` to run the rest of the chain and the handler.
  func intercept(
    context: ServerContext,
    next: (ServerContext) async throws -> Void
  ) async throws
}

extension ServerInterceptor {
  public func interceptor(for method: MethodDescriptor) -> (any ServerInterceptor)? { self }
}

/// An interceptor that acts before and after the rest of the chain without suspending: its three
/// hooks are what `intercept` does around `next`. (Its `intercept` is written in terms of them,
/// so it means the same wherever the server runs it.)
public protocol SynchronousServerInterceptor: ServerInterceptor {
  /// Before the rest of the chain. Throwing refuses the call: the rest does not run, nor does
  /// this interceptor's `succeeded` or `failed`.
  func start(context: ServerContext) throws
  /// After the rest of the chain succeeded. Throwing fails the call after all.
  func succeeded(context: ServerContext) throws
  /// After the rest of the chain failed with `error`: the error the call fails with instead
  /// (`error` itself to pass it on).
  func failed(context: ServerContext, error: any Error) -> any Error
}

extension SynchronousServerInterceptor {
  public func start(context: ServerContext) throws {}
  public func succeeded(context: ServerContext) throws {}
  public func failed(context: ServerContext, error: any Error) -> any Error { error }

  public func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    try self.start(context: context)
    do {
      try await next(context)
    } catch {
      throw self.failed(context: context, error: error)
    }
    try self.succeeded(context: context)
  }
}

/// The interceptors one method's calls pass through, first to last, as the server runs them:
/// the synchronous ones ahead of the first that may suspend in the call's own frame (`start`,
/// `end`), the rest nested through their `intercept` (`run`).
struct InterceptorChain: Sendable {
  let leading: [any SynchronousServerInterceptor]
  let nested: [any ServerInterceptor]

  /// No interceptors.
  static let empty = InterceptorChain(leading: [], nested: [])

  private init(leading: [any SynchronousServerInterceptor], nested: [any ServerInterceptor]) {
    self.leading = leading
    self.nested = nested
  }

  /// The chain of `interceptors` for `method`: what each makes for it.
  init(_ interceptors: [any ServerInterceptor], for method: MethodDescriptor) {
    let applying = interceptors.compactMap { $0.interceptor(for: method) }
    var leading: [any SynchronousServerInterceptor] = []
    for interceptor in applying {
      guard let synchronous = interceptor as? any SynchronousServerInterceptor else { break }
      leading.append(synchronous)
    }
    self.leading = leading
    self.nested = Array(applying.dropFirst(leading.count))
  }

  /// Starts the leading interceptors, outermost first. When one refuses, those started before
  /// it see its error (`failed`, innermost first) and the error they leave is returned.
  /// (The loops index the array: iterating it copies each existential out first.)
  func start(_ context: ServerContext) -> (any Error)? {
    for index in self.leading.indices {
      do {
        try self.leading[index].start(context: context)
      } catch {
        return self.end(context, error: error, started: index)
      }
    }
    return nil
  }

  /// Ends the first `started` leading interceptors, innermost first, each seeing the outcome
  /// the ones inside it left, as nested `intercept`s would; returns the error the call fails
  /// with, nil when it succeeds.
  func end(_ context: ServerContext, error: (any Error)?, started: Int) -> (any Error)? {
    var error = error
    var index = started
    while index > 0 {
      index -= 1
      if let failure = error {
        error = self.leading[index].failed(context: context, error: failure)
      } else {
        do {
          try self.leading[index].succeeded(context: context)
        } catch let failure {
          error = failure
        }
      }
    }
    return error
  }

  /// Runs the nested interceptors from `index`, then `handler`.
  func run(from index: Int = 0, context: ServerContext, handler: (ServerContext) async throws -> Void) async throws {
    guard index < self.nested.count else {
      try await handler(context)
      return
    }
    try await self.nested[index].intercept(context: context) { context in
      try await self.run(from: index + 1, context: context, handler: handler)
    }
  }
}
