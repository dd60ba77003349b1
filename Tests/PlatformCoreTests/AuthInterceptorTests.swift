import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing

/// GetPersona behind the auth interceptor, answering with the caller's id.
private struct WhoAmIService: RPCService {
  func registerMethods(with router: inout RPCRouter) {
    router.registerUnary(Platform_Persona_V1_PersonaService.Method.getPersona) {
      (_: Platform_Persona_V1_GetPersonaRequest, context: ServerContext) -> Platform_Persona_V1_Persona in
      .with { $0.userID = (try? context.requireCaller().userID.uuidString.lowercased()) ?? "" }
    }
  }
}

@Suite("Auth interceptor over gRPC")
struct AuthInterceptorTests {
  @Test("A call with two authorization headers is UNAUTHENTICATED, even when both tokens are valid")
  func twoAuthorizationHeaders() async throws {
    let auth = AuthConfiguration(signingKey: .generate(id: "auth-interceptor-test"))
    let verifier = await TokenVerifier(configuration: auth)
    let interceptor = AuthInterceptor(
      verifier: verifier, policy: AccessPolicy([Platform_Persona_V1_PersonaService.Method.getPersona: "persona:read"]))
    let server = RPCServer(
      configuration: .defaults { $0.port = 0 }, services: [WhoAmIService()], interceptors: [interceptor],
      logger: TestPostgres.logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.run() }
      defer { group.cancelAll() }
      let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(try await server.listeningPort)"]))
      let personas = Platform_Persona_V1_PersonaServiceClient(channel: client)
      let issuer = try await TokenIssuer(configuration: auth)
      let alice = UUID()
      let bob = UUID()
      let aliceToken = try await issuer.issue(userID: alice, roles: [.viewer])
      let bobToken = try await issuer.issue(userID: bob, roles: [.viewer])
      func options(_ values: String...) -> CallOptions {
        var metadata = Metadata()
        for value in values { metadata.addString(value, forKey: "authorization") }
        return CallOptions(timeout: .seconds(10), metadata: metadata)
      }

      // Each alone is fine.
      #expect(
        try await personas.getPersona(.init(), options: options("Bearer \(aliceToken)")).userID
          == alice.uuidString.lowercased())
      #expect(
        try await personas.getPersona(.init(), options: options("Bearer \(bobToken)")).userID
          == bob.uuidString.lowercased())
      // Together, in either order, or the same one twice, they are refused.
      for pair in [(aliceToken, bobToken), (bobToken, aliceToken), (aliceToken, aliceToken)] {
        let message = await expectStatus(.unauthenticated) {
          try await personas.getPersona(.init(), options: options("Bearer \(pair.0)", "Bearer \(pair.1)"))
        }
        #expect(message.contains("more than one"), "\(message)")
      }
      await expectStatus(.unauthenticated) {
        try await personas.getPersona(.init(), options: options("Bearer \(aliceToken)", "Basic dXNlcjpwYXNz"))
      }
      await client.close()
    }
  }
}
