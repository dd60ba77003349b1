import Agent
import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformRedis
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing

/// Cheap hashing for tests that are not about its cost (the service's default is OWASP's).
let testHashing = PasswordHasher.Parameters(logN: 10, blockSize: 8, parallelism: 1)

/// The agent service in-process over real gRPC, against a fresh agent_db and the local Redis.
func withAgent<T: Sendable>(
  _ settings: [String: String] = [:], _ body: (PlatformTestService, Platform_Agent_V1_AuthServiceClient) async throws -> T
) async throws -> T {
  try await PlatformTestService.run(
    AgentService(passwordParameters: testHashing),
    configure: { configuration in
      // Many logins come from 127.0.0.1 across the suite (and across runs, within a minute).
      configuration.environment = Environment(["AGENT_LOGIN_ATTEMPTS_PER_PEER": "100000"].merging(settings) { $1 })
    }
  ) { service in
    try await body(service, Platform_Agent_V1_AuthServiceClient(channel: service.client))
  }
}

@discardableResult
func expectStatus<T>(_ code: StatusCode, _ body: () async throws -> T, sourceLocation: SourceLocation = #_sourceLocation) async -> RPCError? {
  do {
    _ = try await body()
    Issue.record("expected \(code), the call succeeded", sourceLocation: sourceLocation)
  } catch let error as RPCError {
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    return error
  } catch {
    Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
  }
  return nil
}

func uniqueEmail(_ tag: String = "user") -> String { "\(tag)-\(UUID().lowercasedString.prefix(12))@example.com" }

let goodPassword = "correct horse battery staple"

func bearer(_ token: String) -> CallOptions {
  var metadata = Metadata()
  metadata.addString("Bearer \(token)", forKey: "authorization")
  return CallOptions(timeout: .seconds(30), metadata: metadata)
}

func auditActions(_ service: PlatformTestService, subject: String? = nil) async throws -> [String] {
  var actions: [String] = []
  let query: PostgresQuery =
    subject.map { "SELECT action FROM auth_audit_log WHERE subject_id = \($0) ORDER BY id" }
    ?? "SELECT action FROM auth_audit_log ORDER BY id"
  for try await (action,) in try await service.database.query(query, logger: TestPostgres.quietLogger).decode((String,).self) {
    actions.append(action)
  }
  return actions
}

@Suite("Accounts: register, login, refresh, logout")
struct AccountsTests {
  @Test("Register, log in, and call with the token: the user, a 15-minute EdDSA token any service verifies with the public key alone")
  func registerAndLogin() async throws {
    try await withAgent { service, auth in
      let email = uniqueEmail()
      let user = try await auth.register(.with {
        $0.email = "  " + email.uppercased() + " "
        $0.password = goodPassword
        $0.name = "Ada"
      })
      #expect(user.email == email && user.roles == [.viewer] && user.isActive)
      let login = try await auth.login(.with {
        $0.email = email
        $0.password = goodPassword
      })
      #expect(login.user.id == user.id && login.tokens.tokenType == "Bearer")
      #expect(login.tokens.expiresInSeconds == 900)
      #expect(login.tokens.refreshToken.hasPrefix("rt_"))
      let current = try await auth.getCurrentUser(.init(), options: bearer(login.tokens.accessToken))
      #expect(current.id == user.id && current.hasLastLoginTime)

      // Another service holds the public keys only, and accepts the token.
      let verifyOnly = AuthConfiguration(publicKeys: service.auth.publicKeys)
      let caller = try await TokenVerifier(configuration: verifyOnly).verify(login.tokens.accessToken)
      #expect(caller.userID.lowercasedString == user.id && caller.has("persona:read") && !caller.has("persona:write"))
      #expect(caller.sessionID != nil)
      #expect(try await auditActions(service, subject: user.id) == ["register", "login"])
    }
  }

  @Test("Bad input is INVALID_ARGUMENT naming the field, and creates nothing")
  func registerValidation() async throws {
    try await withAgent { service, auth in
      let cases: [(email: String, password: String, name: String, field: String)] = [
        ("not-an-address", goodPassword, "A", "email"),
        ("a'; DROP TABLE users;--@example.com", goodPassword, "A", "email"),
        ("admin@exаmple.com", goodPassword, "A", "email"),  // Cyrillic а
        ("ａdmin@example.com", goodPassword, "A", "email"),  // fullwidth
        (String(repeating: "a", count: 250) + "@example.com", goodPassword, "A", "email"),
        (uniqueEmail(), "short", "A", "password"),
        (uniqueEmail(), String(repeating: "p", count: 1 << 20), "A", "password"),
        (uniqueEmail(), goodPassword, "", "name"),
        (uniqueEmail(), goodPassword, "bell\u{7}", "name"),
      ]
      for item in cases {
        let error = await expectStatus(.invalidArgument) {
          try await auth.register(.with {
            $0.email = item.email
            $0.password = item.password
            $0.name = item.name
          })
        }
        #expect(error?.message.hasPrefix(item.field + ":") == true, "\(String(describing: error))")
      }
      let rows = try await service.database.query("SELECT count(*) FROM users", logger: TestPostgres.quietLogger)
      for try await (count,) in rows.decode((Int,).self) { #expect(count == 0) }
    }
  }

  @Test("Emails differing only in case are one account; a retried request id returns the first user")
  func oneAccountPerEmail() async throws {
    try await withAgent { _, auth in
      let email = uniqueEmail()
      let requestID = UUID().lowercasedString
      let first = try await auth.register(.with {
        $0.email = email
        $0.password = goodPassword
        $0.name = "First"
        $0.requestID = requestID
      })
      let retried = try await auth.register(.with {
        $0.email = email
        $0.password = goodPassword
        $0.name = "First"
        $0.requestID = requestID
      })
      #expect(retried.id == first.id)
      await expectStatus(.alreadyExists) {
        try await auth.register(.with {
          $0.email = email.uppercased()
          $0.password = goodPassword
          $0.name = "Second"
        })
      }
    }
  }

  @Test("A wrong password, an unknown email and garbage get the same answer; each failure is audited")
  func loginFailuresLookAlike() async throws {
    try await withAgent { service, auth in
      let email = uniqueEmail()
      let user = try await auth.register(.with {
        $0.email = email
        $0.password = goodPassword
        $0.name = "Bo"
      })
      var messages: Set<String> = []
      for (tryEmail, password) in [(email, "wrong password here"), (uniqueEmail("nobody"), goodPassword), ("not an email", goodPassword), (email, String(repeating: "x", count: 1 << 20))] {
        let error = await expectStatus(.unauthenticated) {
          try await auth.login(.with {
            $0.email = tryEmail
            $0.password = password
          })
        }
        if let error { messages.insert(error.message) }
      }
      #expect(messages == ["Invalid email or password"])
      #expect(try await auditActions(service, subject: user.id) == ["register", "login_failed", "login_failed"])
      #expect(try await auditActions(service).filter { $0 == "login_failed" }.count == 4)
    }
  }

  @Test("Refresh rotates the token; presenting a used one revokes its whole family and is audited")
  func refreshRotationAndReuse() async throws {
    try await withAgent { service, auth in
      let email = uniqueEmail()
      let user = try await auth.register(.with {
        $0.email = email
        $0.password = goodPassword
        $0.name = "Cy"
      })
      let login = try await auth.login(.with {
        $0.email = email
        $0.password = goodPassword
      })
      let first = login.tokens.refreshToken
      let second = try await auth.refreshToken(.with { $0.refreshToken = first }).tokens
      #expect(second.refreshToken != first && !second.accessToken.isEmpty)
      _ = try await auth.getCurrentUser(.init(), options: bearer(second.accessToken))
      // The first token again: a replay. Its family, the second token included, is revoked.
      await expectStatus(.unauthenticated) { try await auth.refreshToken(.with { $0.refreshToken = first }) }
      await expectStatus(.unauthenticated) { try await auth.refreshToken(.with { $0.refreshToken = second.refreshToken }) }
      await expectStatus(.unauthenticated) { try await auth.refreshToken(.with { $0.refreshToken = "rt_unknown" }) }
      await expectStatus(.unauthenticated) { try await auth.refreshToken(.with { $0.refreshToken = "" }) }
      #expect(try await auditActions(service, subject: user.id) == ["register", "login", "refresh", "refresh_reuse", "refresh_revoked"])
    }
  }

  @Test("Logout revokes the session's refresh tokens, its Redis session, and within 5 s its access tokens; it needs credentials")
  func logout() async throws {
    try await withAgent { service, auth in
      let email = uniqueEmail()
      let user = try await auth.register(.with {
        $0.email = email
        $0.password = goodPassword
        $0.name = "Di"
      })
      let login = try await auth.login(.with {
        $0.email = email
        $0.password = goodPassword
      })
      let redis = try RedisClient(configuration: try RedisConfiguration(url: PlatformTestService.redisURL), logger: TestPostgres.quietLogger)
      let userID = try #require(UUID(strict: user.id))
      #expect(try await SessionStore(redis: redis).touch(userID)?.sessionID != nil)
      _ = try await auth.getCurrentUser(.init(), options: bearer(login.tokens.accessToken))
      _ = try await auth.logout(.init(), options: bearer(login.tokens.accessToken))
      #expect(try await SessionStore(redis: redis).touch(userID) == nil)
      // The access token stops working within 5 seconds (here, and in every other service).
      let clock = ContinuousClock()
      let loggedOut = clock.now
      var refusedAfter: Duration?
      while clock.now - loggedOut < .seconds(5) {
        do {
          _ = try await auth.getCurrentUser(.init(), options: bearer(login.tokens.accessToken))
          try await Task.sleep(for: .milliseconds(100))
        } catch let error as RPCError where error.code == .unauthenticated {
          refusedAfter = clock.now - loggedOut
          break
        }
      }
      #expect(refusedAfter != nil, "the token still worked 5 s after logout")
      // The refusal is written off the call path, soon after.
      var audited = false
      for _ in 0..<50 where !audited {
        audited = try await auditActions(service, subject: user.id).contains("refused")
        if !audited { try await Task.sleep(for: .milliseconds(50)) }
      }
      #expect(audited)
      await expectStatus(.unauthenticated) { try await auth.refreshToken(.with { $0.refreshToken = login.tokens.refreshToken }) }
      await expectStatus(.unauthenticated) { try await auth.logout(.init()) }
      await redis.close()
    }
  }

  @Test("Repeated wrong passwords for one email: growing delays, then RESOURCE_EXHAUSTED with a pushback, even for the right password")
  func bruteForce() async throws {
    try await withAgent(["AGENT_LOGIN_ATTEMPTS_PER_EMAIL": "5"]) { service, auth in
      let email = uniqueEmail()
      _ = try await auth.register(.with {
        $0.email = email
        $0.password = goodPassword
        $0.name = "Ed"
      })
      let clock = ContinuousClock()
      var durations: [Duration] = []
      for attempt in 0..<5 {
        let started = clock.now
        await expectStatus(.unauthenticated) {
          try await auth.login(.with {
            $0.email = email
            $0.password = "wrong password \(attempt)"
          })
        }
        durations.append(clock.now - started)
      }
      #expect(durations[3] >= .milliseconds(250) && durations[4] >= .milliseconds(500))
      let limited = await expectStatus(.resourceExhausted) {
        try await auth.login(.with {
          $0.email = email
          $0.password = goodPassword
        })
      }
      #expect(limited?.metadata.firstString(forKey: "grpc-retry-pushback-ms").flatMap(Int.init).map { $0 > 0 } == true)
      #expect(try await auditActions(service).contains("login_limited"))
    }
  }

  @Test("Closed registration is PERMISSION_DENIED; the bootstrap admin is created once and signs in as admin")
  func closedRegistrationAndBootstrap() async throws {
    let admin = uniqueEmail("admin")
    try await withAgent(["AGENT_REGISTRATION": "closed", "BOOTSTRAP_ADMIN_EMAIL": admin, "BOOTSTRAP_ADMIN_PASSWORD": goodPassword]) {
      service, auth in
      await expectStatus(.permissionDenied) {
        try await auth.register(.with {
          $0.email = uniqueEmail()
          $0.password = goodPassword
          $0.name = "Nope"
        })
      }
      let login = try await auth.login(.with {
        $0.email = admin
        $0.password = goodPassword
      })
      #expect(login.user.roles == [.admin])
      let caller = try await TokenVerifier(configuration: service.auth).verify(login.tokens.accessToken)
      #expect(caller.has("agent:admin"))
    }
  }
}

@Suite("Password hashing")
struct PasswordHasherTests {
  @Test("scrypt PHC strings: a match, a mismatch, a tampered or foreign hash never matches; an unknown user never does")
  func hashing() async throws {
    let hasher = try PasswordHasher(parameters: testHashing)
    let hash = try await hasher.hash(goodPassword)
    #expect(hash.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
    #expect(try await hasher.verify(goodPassword, against: hash))
    #expect(try await !hasher.verify(goodPassword + " ", against: hash))
    #expect(try await hasher.hash(goodPassword) != hash)  // salted
    #expect(try await !hasher.verify(goodPassword, against: nil))
    var tampered = Array(hash)
    tampered[tampered.count - 2] = tampered[tampered.count - 2] == "A" ? "B" : "A"
    #expect(try await !hasher.verify(goodPassword, against: String(tampered)))
    for foreign in ["", "plain", "$2b$12$abcdefghijklmnopqrstuv", "$scrypt$ln=40,r=8,p=1$c2FsdA$aGFzaA", "$scrypt$ln=10,r=8$c2FsdA$aGFzaA"] {
      #expect(try await !hasher.verify(goodPassword, against: foreign))
    }
  }

  @Test("OWASP parameters (N = 2^15, r = 8, p = 3) by default")
  func defaults() {
    #expect(PasswordHasher.Parameters.owasp == PasswordHasher.Parameters(logN: 15, blockSize: 8, parallelism: 3))
    #expect(AgentService().passwordParameters == .owasp)
  }
}

@Suite("Sessions across sign-ins and refreshes")
struct SessionLifecycleTests {
  @Test("A session that expired from idleness resumes on refresh; one replaced by a newer sign-in ends its refresh tokens")
  func resumeAndReplace() async throws {
    try await withAgent { service, auth in
      let email = uniqueEmail()
      let user = try await auth.register(.with {
        $0.email = email
        $0.password = goodPassword
        $0.name = "Fay"
      })
      let userID = try #require(UUID(strict: user.id))
      let redis = try RedisClient(configuration: try RedisConfiguration(url: PlatformTestService.redisURL), logger: TestPostgres.quietLogger)
      let first = try await auth.login(.with {
        $0.email = email
        $0.password = goodPassword
      })
      // Idle for longer than the session lives: the hash is gone.
      _ = try await redis.delete(["session:\(user.id)"])
      let resumed = try await auth.refreshToken(.with { $0.refreshToken = first.tokens.refreshToken }).tokens
      _ = try await auth.getCurrentUser(.init(), options: bearer(resumed.accessToken))
      #expect(try await SessionStore(redis: redis).touch(userID)?.sessionID != nil)

      // A sign-in elsewhere replaces the session: the first device's refresh is refused.
      _ = try await auth.login(.with {
        $0.email = email
        $0.password = goodPassword
      })
      await expectStatus(.unauthenticated) { try await auth.refreshToken(.with { $0.refreshToken = resumed.refreshToken }) }
      #expect(try await auditActions(service, subject: user.id).contains("refresh_replaced"))
      await redis.close()
    }
  }

  @Test("Logins from one address are limited across emails: RESOURCE_EXHAUSTED with a pushback, audited login_limited")
  func loginLimitPerAddress() async throws {
    try await withAgent(["AGENT_LOGIN_ATTEMPTS_PER_PEER": "5"]) { service, auth in
      var limited: RPCError?
      // Every attempt names another unknown email: only the per-address limit can refuse.
      for _ in 0..<6 where limited == nil {
        do {
          _ = try await auth.login(.with {
            $0.email = uniqueEmail("peer")
            $0.password = goodPassword
          })
          Issue.record("an unknown email logged in")
        } catch let error as RPCError where error.code == .resourceExhausted {
          limited = error
        } catch let error as RPCError {
          #expect(error.code == .unauthenticated)
        }
      }
      let error = try #require(limited, "six logins from one address within a minute were not limited at five")
      #expect(error.metadata.firstString(forKey: "grpc-retry-pushback-ms").flatMap(Int.init).map { $0 > 0 } == true)
      #expect(try await auditActions(service).contains("login_limited"))
    }
  }
}
