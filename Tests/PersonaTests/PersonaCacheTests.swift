import Foundation
import GRPCRuntime
import GRPCRuntimeServices
import Persona
import PlatformCore
import PlatformProtos
import PlatformRedis
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Synchronization
import Testing

/// The persona cache (`persona:{id}` in Redis) with real replicas, a real redis-server of the
/// test's own, and the rate limiter in front of the service.
@Suite("Persona cache and rate limits")
struct PersonaCacheTests {
  static func withRedis<T>(_ body: (RedisTestServer, RedisClient) async throws -> T) async throws -> T {
    let server = try await RedisTestServer()
    let redis = try RedisClient(configuration: RedisConfiguration(url: server.url), logger: TestPostgres.logger)
    do {
      let result = try await body(server, redis)
      await redis.close()
      return result
    } catch {
      await redis.close()
      throw error
    }
  }

  @Test("Two replicas sharing Redis: after an acknowledged update, neither serves the old persona")
  func replicasNeverStale() async throws {
    try await Self.withRedis { server, redis in
      try await PlatformTestService.runReplicas(PersonaService(), count: 2, configure: { $0.redis = try! RedisConfiguration(url: server.url) }) { replicas in
        let clients = replicas.map { PersonaClient(channel: $0.client) }
        let alice = UUID()
        let options = try await replicas[0].options(for: alice)
        let created = try await clients[0].createPersona(.with { $0.persona = PersonaFixture.persona("Round 0") }, options: options)
        let id = try #require(UUID(uuidString: created.id))
        var version = created.version
        for round in 1...40 {
          let writer = clients[round % 2]
          let reader = clients[(round + 1) % 2]
          // Both replicas have it cached (the reader's copy would be stale without write-through).
          _ = try await reader.getPersona(.with { $0.id = created.id }, options: options)
          let updated = try await writer.updatePersona(
            .with {
              $0.persona = .with {
                $0.id = created.id
                $0.name = "Round \(round)"
              }
              $0.updateMask = .with { $0.paths = ["name"] }
              $0.version = version
            }, options: options)
          version = updated.version
          let read = try await reader.getPersona(.with { $0.id = created.id }, options: options)
          #expect(read.name == "Round \(round)" && read.version == version, "round \(round): \(read.name) v\(read.version)")
        }
        // Gets are answered from persona:{id}: a change made behind the service's back is not seen.
        #expect(try await redis.exists(["persona:\(created.id)"]) == 1)
        try await replicas[0].database.query("UPDATE personas SET name = 'Behind its back' WHERE id = \(id)", logger: TestPostgres.logger)
        #expect(try await clients[1].getPersona(.with { $0.id = created.id }, options: options).name == "Round 40")

        // A delete on one replica is NOT_FOUND on the other at once.
        _ = try await clients[0].deletePersona(.with { $0.id = created.id }, options: options)
        await expectStatus(.notFound) { try await clients[1].getPersona(.with { $0.id = created.id }, options: options) }
        await expectStatus(.notFound) {
          try await clients[1].renderPersona(.with { $0.personaID = created.id }, options: options)
        }
      }
    }
  }

  @Test("Redis killed during 2,000 Get and Render calls: none fails; caching resumes when it is back")
  func redisOutage() async throws {
    try await Self.withRedis { server, redis in
      try await PlatformTestService.run(PersonaService(), configure: {
        $0.redis = try! RedisConfiguration(url: server.url)
        $0.redis.reconnectBackoff = (.milliseconds(50), .milliseconds(500))
      }) { service in
        let client = PersonaClient(channel: service.client)
        let options = try await service.options(for: UUID())
        let persona = try await client.createPersona(.with { $0.persona = PersonaFixture.persona("Steady") }, options: options)
        let variables = JSONValue.object(["role": .string("calm")]).protobufStruct
        let progress = Progress()
        try await withThrowingTaskGroup(of: Void.self) { group in
          for worker in 0..<8 {
            group.addTask {
              for call in 0..<250 {
                do {
                  if call % 2 == 0 {
                    _ = try await client.getPersona(.with { $0.id = persona.id }, options: options)
                  } else {
                    _ = try await client.renderPersona(.with { $0.personaID = persona.id; $0.variables = variables }, options: options)
                  }
                } catch {
                  progress.failures.withLock { $0.append("worker \(worker) call \(call): \(error)") }
                }
                progress.completed.add(1, ordering: .relaxed)
              }
            }
          }
          group.addTask {
            while progress.completed.load(ordering: .relaxed) < 500 { try await Task.sleep(for: .milliseconds(2)) }
            server.kill()
            while progress.completed.load(ordering: .relaxed) < 1500 { try await Task.sleep(for: .milliseconds(2)) }
            try await server.start()
          }
          try await group.waitForAll()
        }
        #expect(progress.failures.withLock { $0 } == [])
        #expect(progress.completed.load(ordering: .relaxed) == 2000)
        // Health stayed SERVING.
        let health = try await Grpc_Health_V1_HealthClient(channel: service.client).check(.init())
        #expect(health.status == .serving)
        // The restarted Redis is empty; the next read fills it again.
        try await eventually {
          _ = try? await client.getPersona(.with { $0.id = persona.id }, options: options)
          return (try? await redis.exists(["persona:\(persona.id)"])) == 1
        }
      }
    }
  }

  @Test("Over the rate limit: RESOURCE_EXHAUSTED with grpc-retry-pushback-ms; other callers and classes go on")
  func rateLimited() async throws {
    try await Self.withRedis { server, _ in
      try await PlatformTestService.run(PersonaService(), configure: {
        $0.redis = try! RedisConfiguration(url: server.url)
        $0.rateLimits = RateLimits(limits: ["read": 5, "write": 2])
      }) { service in
        let client = PersonaClient(channel: service.client)
        let alice = try await service.options(for: UUID())
        let bob = try await service.options(for: UUID())
        let persona = try await client.createPersona(.with { $0.persona = PersonaFixture.persona("Limited", isPublic: true) }, options: alice)
        for _ in 0..<5 { _ = try await client.getPersona(.with { $0.id = persona.id }, options: alice) }
        do {
          _ = try await client.getPersona(.with { $0.id = persona.id }, options: alice)
          Issue.record("the sixth read in a minute was allowed")
        } catch let error as RPCError {
          #expect(error.code == .resourceExhausted)
          let pushback = try #require(error.metadata.firstString(forKey: "grpc-retry-pushback-ms").flatMap(Int.init))
          #expect(pushback > 55_000 && pushback <= 60_000)
        }
        // Writes have their own window (one used by the create), and Bob his own.
        _ = try await client.createPersona(.with { $0.persona = PersonaFixture.persona("Second") }, options: alice)
        await expectStatus(.resourceExhausted) {
          try await client.createPersona(.with { $0.persona = PersonaFixture.persona("Third") }, options: alice)
        }
        _ = try await client.getPersona(.with { $0.id = persona.id }, options: bob)
        // Health is open and never limited.
        for _ in 0..<20 { _ = try await Grpc_Health_V1_HealthClient(channel: service.client).check(.init()) }
      }
    }
  }

  @Test("A create retried with the request id of a persona deleted since is FAILED_PRECONDITION")
  func requestIDOfDeletedPersona() async throws {
    try await PersonaFixture.run { fixture in
      let request = Platform_Persona_V1_CreatePersonaRequest.with {
        $0.persona = PersonaFixture.persona("Short-lived")
        $0.requestID = UUID().uuidString
      }
      let created = try await fixture.client.createPersona(request, options: fixture.asAlice)
      _ = try await fixture.client.deletePersona(.with { $0.id = created.id }, options: fixture.asAlice)
      let before = try await fixture.snapshot()
      let message = await expectStatus(.failedPrecondition) { try await fixture.client.createPersona(request, options: fixture.asAlice) }
      #expect(message.contains("request_id"))
      #expect(try await fixture.snapshot() == before)
    }
  }
}

final class Progress: Sendable {
  let completed = Atomic(0)
  let failures = Mutex<[String]>([])
}

/// Waits until `condition` holds, for at most `limit`.
func eventually(within limit: Duration = .seconds(5), _ condition: () async -> Bool) async throws {
  let deadline = ContinuousClock.now + limit
  while ContinuousClock.now < deadline {
    if await condition() { return }
    try await Task.sleep(for: .milliseconds(20))
  }
  Issue.record("condition not met within \(limit)")
}

@Suite("Admin port")
struct AdminPortTests {
  @Test("/metrics counts calls by method and status, cache lookups and Redis commands; /healthz and /readyz answer")
  func metrics() async throws {
    let server = try await RedisTestServer()
    try await PlatformTestService.run(PersonaService(), configure: { $0.redis = try! RedisConfiguration(url: server.url) }) { service in
      let client = PersonaClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let persona = try await client.createPersona(.with { $0.persona = PersonaFixture.persona("Measured") }, options: options)
      for _ in 0..<3 { _ = try await client.getPersona(.with { $0.id = persona.id }, options: options) }
      await expectStatus(.notFound) { try await client.getPersona(.with { $0.id = UUID().uuidString }, options: options) }

      let (status, body) = try httpRequest(port: service.adminPort, path: "/metrics")
      #expect(status == 200)
      let lines = Set(body.split(separator: "\n").map(String.init))
      let get = "/platform.persona.v1.PersonaService/GetPersona"
      #expect(lines.contains(#"rpc_server_requests_total{method="\#(get)",code="OK"} 3"#), "\(body.prefix(3000))")
      #expect(lines.contains(#"rpc_server_requests_total{method="\#(get)",code="NOT_FOUND"} 1"#))
      #expect(lines.contains(#"rpc_server_duration_seconds_count{method="\#(get)"} 4"#))
      #expect(lines.contains(#"rpc_server_in_flight{method="\#(get)"} 0.0"#) || lines.contains(#"rpc_server_in_flight{method="\#(get)"} 0"#))
      #expect(lines.contains(#"cache_lookups_total{cache="persona",result="hit"} 3"#))
      #expect(lines.contains(#"cache_lookups_total{cache="persona",result="miss"} 1"#))
      #expect(lines.contains { $0.hasPrefix(#"redis_commands_total{command="GET"}"#) })

      #expect(try httpRequest(port: service.adminPort, path: "/healthz") == (200, "ok\n"))
      #expect(try httpRequest(port: service.adminPort, path: "/readyz") == (200, "SERVING\n"))
      #expect(try httpRequest(port: service.adminPort, path: "/nope").status == 404)
      #expect(try httpRequest(port: service.adminPort, path: "/metrics", method: "POST").status == 405)
    }
  }
}
