import Agent
import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing

/// Registers and signs in a fresh user; returns its tokens' call options and id.
func signedInUser(_ auth: Platform_Agent_V1_AuthServiceClient) async throws -> (options: CallOptions, userID: String) {
  let email = uniqueEmail()
  let user = try await auth.register(.with {
    $0.email = email
    $0.password = goodPassword
    $0.name = "Key Owner"
  })
  let login = try await auth.login(.with {
    $0.email = email
    $0.password = goodPassword
  })
  return (bearer(login.tokens.accessToken), user.id)
}

@Suite("API keys")
struct ApiKeyTests {
  @Test("Create shows the secret once; the key verifies with its permissions; list never shows secrets; revoke stops it at once")
  func lifecycle() async throws {
    try await withAgent { service, auth in
      let (options, userID) = try await signedInUser(auth)
      let requestID = UUID().lowercasedString
      let created = try await auth.createApiKey(.with {
        $0.name = "ci"
        $0.permissions = ["persona:read"]
        $0.requestID = requestID
        $0.rateLimitPerMinute = 30
      }, options: options)
      #expect(created.secret.hasPrefix("pk_live_") && created.secret.count > 40)
      #expect(created.apiKey.keyPrefix == String(created.secret.prefix(12)) && created.apiKey.status == .active)
      #expect(created.apiKey.rateLimitPerMinute == 30)
      let retried = await expectStatus(.failedPrecondition) {
        try await auth.createApiKey(.with {
          $0.name = "ci"
          $0.permissions = ["persona:read"]
          $0.requestID = requestID
        }, options: options)
      }
      #expect(retried?.message.contains(created.apiKey.id) == true)

      let verified = try await auth.verifyApiKey(.with { $0.key = created.secret })
      #expect(verified.userID == userID && verified.permissions == ["persona:read"] && verified.roles.isEmpty)
      #expect(verified.rateLimitPerMinute == 30)

      // last_used_at: written by the first use, not again within a minute, again after one.
      func lastUsed() async throws -> Date? {
        var value: Date?
        let rows = try await service.database.query(
          "SELECT last_used_at FROM api_keys WHERE id = \(UUID(uuidString: created.apiKey.id)!)", logger: TestPostgres.quietLogger)
        for try await (used,) in rows.decode((Date?,).self) { value = used }
        return value
      }
      let firstUse = try #require(try await lastUsed())
      _ = try await auth.verifyApiKey(.with { $0.key = created.secret })
      #expect(try await lastUsed() == firstUse)
      _ = try await service.database.query(
        "UPDATE api_keys SET last_used_at = last_used_at - interval '61 seconds' WHERE id = \(UUID(uuidString: created.apiKey.id)!)",
        logger: TestPostgres.quietLogger)
      _ = try await auth.verifyApiKey(.with { $0.key = created.secret })
      #expect(try await lastUsed()! > firstUse.addingTimeInterval(-5))

      let listed = try await auth.listApiKeys(.init(), options: options)
      #expect(listed.apiKeys.map(\.id) == [created.apiKey.id] && listed.totalSize == 1)
      #expect(!(try listed.jsonString()).contains(created.secret))

      let stored = try await service.database.query("SELECT key_hash FROM api_keys", logger: TestPostgres.quietLogger)
      for try await (hash,) in stored.decode((String,).self) { #expect(hash == created.secret.sha256Hex) }

      let revoked = try await auth.revokeApiKey(.with { $0.id = created.apiKey.id }, options: options)
      #expect(revoked.status == .revoked)
      _ = try await auth.revokeApiKey(.with { $0.id = created.apiKey.id }, options: options)  // idempotent
      await expectStatus(.unauthenticated) { try await auth.verifyApiKey(.with { $0.key = created.secret }) }
      #expect(try await auth.listApiKeys(.init(), options: options).apiKeys.isEmpty)
      #expect(try await auth.listApiKeys(.with { $0.includeRevoked = true }, options: options).apiKeys.count == 1)
      #expect(try await auditActions(service, subject: userID).filter { $0.hasPrefix("api_key") } == ["api_key_create", "api_key_revoke"])
    }
  }

  @Test("A key cannot grant more than its owner holds, nor outlive the owner's permissions")
  func noEscalation() async throws {
    try await withAgent { _, auth in
      let (options, _) = try await signedInUser(auth)  // a viewer
      await expectStatus(.permissionDenied) {
        try await auth.createApiKey(.with {
          $0.name = "escalate"
          $0.permissions = ["persona:write"]
        }, options: options)
      }
      await expectStatus(.permissionDenied) {
        try await auth.createApiKey(.with {
          $0.name = "everything"
          $0.permissions = ["*"]
        }, options: options)
      }
      for bad in [["persona"], ["persona:read:x"], [":read"], [String(repeating: "a", count: 100) + ":read"], ["Persona:Read"]] {
        await expectStatus(.invalidArgument) {
          try await auth.createApiKey(.with {
            $0.name = "bad"
            $0.permissions = bad
          }, options: options)
        }
      }
      let all = try await auth.createApiKey(.with { $0.name = "all of mine" }, options: options)
      let verified = try await auth.verifyApiKey(.with { $0.key = all.secret })
      #expect(verified.roles == ["viewer"] && verified.permissions.isEmpty)
    }
  }

  @Test("Bad names, a past expiry, another user's key, garbage keys; an expired key is refused")
  func refusals() async throws {
    try await withAgent { service, auth in
      let (options, _) = try await signedInUser(auth)
      let (other, _) = try await signedInUser(auth)
      for name in ["", String(repeating: "n", count: 101), "tab\tname"] {
        await expectStatus(.invalidArgument) { try await auth.createApiKey(.with { $0.name = name }, options: options) }
      }
      await expectStatus(.invalidArgument) {
        try await auth.createApiKey(.with {
          $0.name = "old"
          $0.expireTime = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(-60))
        }, options: options)
      }
      await expectStatus(.unauthenticated) { try await auth.createApiKey(.with { $0.name = "anonymous" }) }
      let mine = try await auth.createApiKey(.with {
        $0.name = "short-lived"
        $0.expireTime = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(60))
      }, options: options)
      await expectStatus(.notFound) { try await auth.revokeApiKey(.with { $0.id = mine.apiKey.id }, options: other) }
      for garbage in ["", "pk_live_", "pk_live_" + String(repeating: "A", count: 43), String(repeating: "x", count: 1 << 16), mine.secret + "x"] {
        await expectStatus(.unauthenticated) { try await auth.verifyApiKey(.with { $0.key = garbage }) }
      }
      _ = try await service.database.query(
        "UPDATE api_keys SET expires_at = now() - interval '1 second'", logger: TestPostgres.quietLogger)
      await expectStatus(.unauthenticated) { try await auth.verifyApiKey(.with { $0.key = mine.secret }) }
    }
  }

  @Test("At most 50 active keys per user, even when created concurrently")
  func quota() async throws {
    try await withAgent { _, auth in
      let (options, _) = try await signedInUser(auth)
      let outcomes = await withTaskGroup(of: Bool.self) { group in
        for index in 0..<60 {
          group.addTask {
            (try? await auth.createApiKey(.with { $0.name = "key \(index)" }, options: options)) != nil
          }
        }
        return await group.reduce(into: [Bool]()) { $0.append($1) }
      }
      #expect(outcomes.filter { $0 }.count == 50)
      await expectStatus(.resourceExhausted) { try await auth.createApiKey(.with { $0.name = "one more" }, options: options) }
      #expect(try await auth.listApiKeys(.with { $0.pageSize = 200 }, options: options).totalSize == 50)
    }
  }
}
