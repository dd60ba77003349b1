import Agent
import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformRedis
import PlatformTesting
import PostgresNIO
import Testing

@Suite("Sessions across a Redis outage")
struct SessionOutageTests {
  @Test("A logout while Redis is down is acknowledged, queued, and ends the session once Redis is back (its data kept)")
  func logoutDuringOutage() async throws {
    // Redis that keeps its data across a kill (append-only file, fsync on every write).
    let redisServer = try await RedisTestServer(configuration: ["appendonly yes", "appendfsync always"])
    try await PlatformTestService.run(
      AgentService(passwordParameters: testHashing),
      configure: { configuration in
        configuration.environment = Environment(["AGENT_LOGIN_ATTEMPTS_PER_PEER": "100000"])
        configuration.redis = try! RedisConfiguration(url: redisServer.url)
        configuration.redis.reconnectBackoff = (.milliseconds(20), .milliseconds(200))
      }
    ) { service in
      let auth = Platform_Agent_V1_AuthServiceClient(channel: service.client)
      let (options, userID) = try await signedInUser(auth)
      _ = try await auth.getCurrentUser(.init(), options: options)

      redisServer.kill()
      // Valid tokens are accepted during the outage (SESSION_CHECK_REDIS_DOWN=allow), and the
      // logout is acknowledged.
      _ = try await auth.logout(.init(), options: options)
      var queued = 0
      let rows = try await service.database.query(
        "SELECT count(*)::int FROM jobs WHERE type = 'session.revoke' AND payload->>'user_id' = \(userID)",
        logger: TestPostgres.quietLogger)
      for try await (count,) in rows.decode((Int,).self) { queued = count }
      #expect(queued == 1)

      try await redisServer.start()
      // The session came back with Redis; the queued revocation must end it.
      let clock = ContinuousClock()
      let start = clock.now
      var refused = false
      while !refused && clock.now - start < .seconds(15) {
        do {
          _ = try await auth.getCurrentUser(.init(), options: options)
          try await Task.sleep(for: .milliseconds(200))
        } catch let error as RPCError where error.code == .unauthenticated {
          refused = true
        } catch {
          try await Task.sleep(for: .milliseconds(200))
        }
      }
      #expect(refused, "the token still worked 15 s after Redis came back")
    }
  }

  @Test("A queued revocation with a session id leaves a newer sign-in alone")
  func revocationKeepsNewerSession() async throws {
    let redisServer = try await RedisTestServer()
    var configuration = try RedisConfiguration(url: redisServer.url)
    configuration.reconnectBackoff = (.milliseconds(20), .milliseconds(200))
    let redis = try RedisClient(configuration: configuration, logger: TestPostgres.quietLogger)
    let sessions = SessionStore(redis: redis)
    let user = UUID()
    try await sessions.create(Session(userID: user, email: "a@example.com", roles: ["viewer"], permissions: [], sessionID: "new"))
    #expect(try await sessions.revoke(user, sessionID: "old") == false)
    #expect(try await sessions.isLive(user, sessionID: "new"))
    #expect(try await sessions.revoke(user, sessionID: "new"))
    #expect(try await sessions.isLive(user, sessionID: "new") == false)
    await redis.close()
  }
}
