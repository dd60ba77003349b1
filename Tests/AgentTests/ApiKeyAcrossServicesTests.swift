import Agent
import Foundation
import GRPCRuntime
import Persona
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing

@Suite("API keys across services")
struct ApiKeyAcrossServicesTests {
  /// The agent service and persona, persona asking the agent about keys (cached 1 s here).
  func withAgentAndPersona(
    _ body: (Platform_Agent_V1_AuthServiceClient, Platform_Persona_V1_PersonaServiceClient) async throws -> Void
  ) async throws {
    try await withAgent { agentService, auth in
      try await PlatformTestService.run(
        PersonaService(),
        configure: {
          $0.peers[.agent] = "127.0.0.1:\(agentService.port)"
          $0.environment = Environment(["API_KEY_CACHE_SECONDS": "1"])
        }
      ) { personaService in
        try await body(auth, Platform_Persona_V1_PersonaServiceClient(channel: personaService.client))
      }
    }
  }

  static func withKey(_ key: String, scheme: Bool = false) -> CallOptions {
    var metadata = Metadata()
    if scheme { metadata.addString("ApiKey \(key)", forKey: "authorization") } else { metadata.addString(key, forKey: "x-api-key") }
    return CallOptions(timeout: .seconds(30), metadata: metadata)
  }

  @Test("A key works in another service (x-api-key or authorization: ApiKey) with its permissions; revoked, it stops within the cache time")
  func keyInPersona() async throws {
    try await withAgentAndPersona { auth, personas in
      let (options, _) = try await signedInUser(auth)
      let key = try await auth.createApiKey(.with { $0.name = "reader" }, options: options)
      let listed = try await personas.listPersonas(.init(), options: Self.withKey(key.secret))
      #expect(listed.personas.isEmpty)
      _ = try await personas.listPersonas(.init(), options: Self.withKey(key.secret, scheme: true))
      // A viewer's key: no persona:write.
      await expectStatus(.permissionDenied) {
        try await personas.createPersona(.with { $0.persona = .with { $0.name = "x"; $0.template = "hi" } }, options: Self.withKey(key.secret))
      }
      await expectStatus(.unauthenticated) { try await personas.listPersonas(.init(), options: Self.withKey("pk_live_garbage")) }
      var both = Self.withKey(key.secret)
      both.metadata.addString("Bearer x.y.z", forKey: "authorization")
      await expectStatus(.unauthenticated) { try await personas.listPersonas(.init(), options: both) }

      _ = try await auth.revokeApiKey(.with { $0.id = key.apiKey.id }, options: options)
      let clock = ContinuousClock()
      let revoked = clock.now
      var refused = false
      while !refused && clock.now - revoked < .seconds(5) {
        do {
          _ = try await personas.listPersonas(.init(), options: Self.withKey(key.secret))
          try await Task.sleep(for: .milliseconds(100))
        } catch let error as RPCError where error.code == .unauthenticated {
          refused = true
        }
      }
      #expect(refused, "a revoked key still worked 5 s later")
    }
  }

  @Test("A key's own rate limit applies (RESOURCE_EXHAUSTED with a pushback); a key cannot create keys")
  func keyLimits() async throws {
    try await withAgentAndPersona { auth, personas in
      let (options, _) = try await signedInUser(auth)
      let key = try await auth.createApiKey(.with {
        $0.name = "slow"
        $0.rateLimitPerMinute = 3
      }, options: options)
      for _ in 0..<3 { _ = try await personas.listPersonas(.init(), options: Self.withKey(key.secret)) }
      let limited = await expectStatus(.resourceExhausted) { try await personas.listPersonas(.init(), options: Self.withKey(key.secret)) }
      #expect(limited?.metadata.firstString(forKey: "grpc-retry-pushback-ms") != nil)
      let all = try await auth.createApiKey(.with { $0.name = "agent" }, options: options)
      await expectStatus(.permissionDenied) { try await auth.createApiKey(.with { $0.name = "from a key" }, options: Self.withKey(all.secret)) }
    }
  }
}
