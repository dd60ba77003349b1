public import GRPCRuntime

/// An error whose refusal the domain has written to the audit log itself (a failed login, a
/// reused refresh token), so `RefusalAuditInterceptor` does not write it again.
public protocol SelfAuditedError: Error {
  var isAudited: Bool { get }
}

/// Queues a `refused` audit event for every call of an audited service (`AccessPolicy.auditedServices`)
/// that its handler refuses: a status that blames the caller, not the server. Installed after
/// `AuthInterceptor`, which audits its own refusals. The event names the caller (or
/// `anonymous`), the method, the status, the message and the peer, never the request.
public struct RefusalAuditInterceptor: SynchronousServerInterceptor {
  private let audit: AuditRecorder
  private let services: Set<String>

  /// The statuses that refuse a caller.
  public static let refusals: Set<StatusCode> = [
    .invalidArgument, .notFound, .alreadyExists, .permissionDenied, .resourceExhausted, .failedPrecondition, .outOfRange,
    .unauthenticated,
  ]

  public init(audit: AuditRecorder, services: Set<String>) {
    self.audit = audit
    self.services = services
  }

  public func interceptor(for method: MethodDescriptor) -> (any ServerInterceptor)? {
    self.services.contains(method.service) ? self : nil
  }

  public func failed(context: ServerContext, error: any Error) -> any Error {
    if (error as? any SelfAuditedError)?.isAudited != true {
      let status = RPCError(mapping: error)
      if Self.refusals.contains(status.code) {
        self.audit.record(
          AuditEvent(
            subject: context.caller?.userID.lowercasedString ?? "anonymous", resource: context.method.path, action: "refused",
            decision: .deny, detail: ["status": "\(status.code)", "reason": status.message, "peer": context.peer]))
      }
    }
    return error
  }
}
