public import Foundation
public import GRPCRuntime
public import PlatformCore
internal import PlatformProtos
internal import SwiftProtobuf

/// Asks the persona service, as the caller (their credentials are forwarded by the channel),
/// whether a persona exists and the caller may read it.
public struct PersonaServiceDirectory: PersonaDirectory {
  let client: Platform_Persona_V1_PersonaServiceClient
  /// The longest a check may take (less when the caller's own deadline is nearer).
  let timeout: Duration

  public init(channel: any RPCChannel, timeout: Duration = .seconds(5)) {
    self.client = Platform_Persona_V1_PersonaServiceClient(channel: channel)
    self.timeout = timeout
  }

  public func checkReadable(_ personaID: UUID) async throws(AgentError) {
    do {
      // Bounded by the caller's own deadline too (the runtime sees to that).
      _ = try await self.client.getPersona(
        .with { $0.id = personaID.lowercasedString }, options: CallOptions(timeout: self.timeout, idempotent: true))
    } catch let error as RPCError {
      switch error.code {
      case .notFound, .invalidArgument:
        throw .invalidArgument(field: "agent.persona_id", reason: "no persona \(personaID.lowercasedString) that you can read")
      case .permissionDenied, .unauthenticated:
        throw .permissionDenied("The persona service refused to show the persona to you: \(error.message)")
      default:
        throw .unavailable("The persona service cannot check the persona now (\(error.code)); retry shortly")
      }
    } catch {
      throw .unavailable("The persona service cannot check the persona now; retry shortly")
    }
  }
}
