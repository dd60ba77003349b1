import Agent
import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing

@Suite("User administration")
struct UserAdminTests {
  /// The agent with a bootstrap admin; `body` gets the admin's options and id.
  func withAdmin(
    _ body: (PlatformTestService, Platform_Agent_V1_AuthServiceClient, Platform_Agent_V1_UserServiceClient, CallOptions, String) async throws -> Void
  ) async throws {
    let admin = uniqueEmail("admin")
    try await withAgent(["BOOTSTRAP_ADMIN_EMAIL": admin, "BOOTSTRAP_ADMIN_PASSWORD": goodPassword]) { service, auth in
      let login = try await auth.login(.with {
        $0.email = admin
        $0.password = goodPassword
      })
      try await body(service, auth, Platform_Agent_V1_UserServiceClient(channel: service.client), bearer(login.tokens.accessToken), login.user.id)
    }
  }

  /// Polls until `call` fails UNAUTHENTICATED (at most 5 s).
  func refusedWithin5s(_ call: () async throws -> Void) async -> Bool {
    let clock = ContinuousClock()
    let start = clock.now
    while clock.now - start < .seconds(5) {
      do {
        try await call()
        try? await Task.sleep(for: .milliseconds(100))
      } catch let error as RPCError where error.code == .unauthenticated {
        return true
      } catch {
        return false
      }
    }
    return false
  }

  @Test("Listing users: admins only; a query is a substring (its % and _ match themselves); role filter; page tokens bound to their filter")
  func listing() async throws {
    try await withAdmin { _, auth, users, adminOptions, adminID in
      let (viewer, viewerID) = try await signedInUser(auth)
      await expectStatus(.permissionDenied) { try await users.listUsers(.init(), options: viewer) }
      #expect(try await users.getUser(.with { $0.id = viewerID }, options: viewer).id == viewerID)
      await expectStatus(.permissionDenied) { try await users.getUser(.with { $0.id = adminID }, options: viewer) }
      let all = try await users.listUsers(.init(), options: adminOptions)
      #expect(all.totalSize == 2 && all.users.map(\.id) == [viewerID, adminID])
      #expect(try await users.listUsers(.with { $0.query = "%" }, options: adminOptions).users.isEmpty)
      #expect(try await users.listUsers(.with { $0.role = .admin }, options: adminOptions).users.map(\.id) == [adminID])
      let first = try await users.listUsers(.with { $0.pageSize = 1 }, options: adminOptions)
      #expect(first.users.map(\.id) == [viewerID] && !first.nextPageToken.isEmpty)
      let second = try await users.listUsers(.with {
        $0.pageSize = 1
        $0.pageToken = first.nextPageToken
      }, options: adminOptions)
      #expect(second.users.map(\.id) == [adminID] && second.nextPageToken.isEmpty)
      await expectStatus(.invalidArgument) {
        try await users.listUsers(.with {
          $0.pageToken = first.nextPageToken
          $0.role = .viewer
        }, options: adminOptions)
      }
    }
  }

  @Test("Roles change on the next token; nobody but an admin changes them; the last admin cannot be demoted")
  func roles() async throws {
    try await withAdmin { service, auth, users, adminOptions, adminID in
      let email = uniqueEmail()
      let user = try await auth.register(.with {
        $0.email = email
        $0.password = goodPassword
        $0.name = "Promoted"
      })
      let viewerLogin = try await auth.login(.with {
        $0.email = email
        $0.password = goodPassword
      })
      await expectStatus(.permissionDenied) {
        try await users.updateUserRoles(.with {
          $0.userID = user.id
          $0.roles = [.admin]
        }, options: bearer(viewerLogin.tokens.accessToken))
      }
      await expectStatus(.invalidArgument) {
        try await users.updateUserRoles(.with { $0.userID = user.id }, options: adminOptions)
      }
      let promoted = try await users.updateUserRoles(.with {
        $0.userID = user.id
        $0.roles = [.developer]
      }, options: adminOptions)
      #expect(promoted.roles == [.developer])
      let login = try await auth.login(.with {
        $0.email = email
        $0.password = goodPassword
      })
      #expect(try await TokenVerifier(configuration: service.auth).verify(login.tokens.accessToken).has("persona:write"))

      await expectStatus(.failedPrecondition) {
        try await users.updateUserRoles(.with {
          $0.userID = adminID
          $0.roles = [.viewer]
        }, options: adminOptions)
      }
      await expectStatus(.failedPrecondition) { try await users.deactivateUser(.with { $0.userID = adminID }, options: adminOptions) }
      _ = try await users.updateUserRoles(.with {
        $0.userID = user.id
        $0.roles = [.admin]
      }, options: adminOptions)
      let demoted = try await users.updateUserRoles(.with {
        $0.userID = adminID
        $0.roles = [.viewer]
      }, options: adminOptions)
      #expect(demoted.roles == [.viewer])
      #expect(try await auditActions(service).filter { $0 == "role_change" }.count == 3)
    }
  }

  @Test("Admins define roles: their permissions travel in the holders' next token; built-in roles are fixed; a held role cannot go")
  func definedRoles() async throws {
    try await withAdmin { service, auth, users, adminOptions, _ in
      let (viewer, viewerID) = try await signedInUser(auth)
      let auditor = Platform_Agent_V1_RoleDefinition.with {
        $0.name = "auditor"
        $0.description_p = "Reads users and the audit log"
        $0.permissions = ["agent:admin", "persona:read", "agent:admin"]
      }
      await expectStatus(.permissionDenied) { try await users.createRole(.with { $0.role = auditor }, options: viewer) }
      let created = try await users.createRole(.with { $0.role = auditor }, options: adminOptions)
      #expect(created.permissions == ["agent:admin", "persona:read"] && !created.builtin && created.userCount == 0)
      await expectStatus(.alreadyExists) { try await users.createRole(.with { $0.role = auditor }, options: adminOptions) }
      for bad in ["Auditor", "1st", "", "a b", String(repeating: "a", count: 51), "admin\u{0}"] {
        await expectStatus(.invalidArgument) {
          try await users.createRole(.with { $0.role = .with { $0.name = bad; $0.permissions = ["persona:read"] } }, options: adminOptions)
        }
      }
      for bad in [[], ["persona"], ["persona:read:x"], ["PERSONA:READ"], Array(repeating: "persona:read", count: 65)] {
        await expectStatus(.invalidArgument) {
          try await users.createRole(.with { $0.role = .with { $0.name = "bad"; $0.permissions = bad } }, options: adminOptions)
        }
      }
      await expectStatus(.invalidArgument) {
        try await users.updateUserRoles(.with {
          $0.userID = viewerID
          $0.roleNames = ["nonexistent"]
        }, options: adminOptions)
      }

      // Granted, the role's permissions are in the user's next token, which every service honours.
      let granted = try await users.updateUserRoles(.with {
        $0.userID = viewerID
        $0.roles = [.viewer]
        $0.roleNames = ["auditor"]
      }, options: adminOptions)
      #expect(granted.roles == [.viewer] && granted.roleNames == ["auditor", "viewer"])
      let email = try await users.getUser(.with { $0.id = viewerID }, options: adminOptions).email
      func tokenOfViewer() async throws -> CallOptions {
        bearer(try await auth.login(.with {
          $0.email = email
          $0.password = goodPassword
        }).tokens.accessToken)
      }
      var token = try await tokenOfViewer()
      #expect(try await users.listUsers(.with { $0.roleName = "auditor" }, options: token).users.map(\.id) == [viewerID])
      await expectStatus(.invalidArgument) {
        try await users.listUsers(.with {
          $0.roleName = "auditor"
          $0.role = .admin
        }, options: adminOptions)
      }
      await expectStatus(.failedPrecondition) { try await users.deleteRole(.with { $0.name = "auditor" }, options: adminOptions) }

      // Changed, the holders' next token carries the new permissions.
      let narrowed = try await users.updateRole(.with {
        $0.role = .with {
          $0.name = "auditor"
          $0.permissions = ["persona:read"]
          $0.description_p = "ignored: not in the mask"
        }
        $0.updateMask = .with { $0.paths = ["permissions"] }
      }, options: adminOptions)
      #expect(narrowed.permissions == ["persona:read"] && narrowed.description_p == auditor.description_p && narrowed.userCount == 1)
      token = try await tokenOfViewer()
      await expectStatus(.permissionDenied) { try await users.listUsers(.init(), options: token) }

      for builtin in ["admin", "viewer"] {
        await expectStatus(.failedPrecondition) {
          try await users.updateRole(.with { $0.role = .with { $0.name = builtin; $0.permissions = ["*"] } }, options: adminOptions)
        }
        await expectStatus(.failedPrecondition) { try await users.deleteRole(.with { $0.name = builtin }, options: adminOptions) }
      }
      await expectStatus(.notFound) { try await users.deleteRole(.with { $0.name = "nobody-has-this" }, options: adminOptions) }
      await expectStatus(.invalidArgument) {
        try await users.updateRole(.with {
          $0.role = .with { $0.name = "auditor" }
          $0.updateMask = .with { $0.paths = ["name"] }
        }, options: adminOptions)
      }
      let listed = try await users.listRoles(.init(), options: viewer)
      #expect(listed.roles.map(\.name) == ["admin", "analyst", "developer", "viewer", "auditor"])
      #expect(listed.roles.first { $0.name == "viewer" }?.userCount == 1)

      _ = try await users.updateUserRoles(.with {
        $0.userID = viewerID
        $0.roles = [.viewer]
      }, options: adminOptions)
      _ = try await users.deleteRole(.with { $0.name = "auditor" }, options: adminOptions)
      #expect(try await users.listRoles(.init(), options: viewer).roles.count == 4)
      let actions = try await auditActions(service)
      #expect(["role_create", "role_update", "role_delete"].allSatisfy(actions.contains))
    }
  }

  @Test("Deactivation ends the user's tokens within 5 s, revokes refresh tokens and API keys, and login answers as for a wrong password")
  func deactivation() async throws {
    try await withAdmin { service, auth, users, adminOptions, _ in
      let email = uniqueEmail()
      let user = try await auth.register(.with {
        $0.email = email
        $0.password = goodPassword
        $0.name = "Leaving"
      })
      let login = try await auth.login(.with {
        $0.email = email
        $0.password = goodPassword
      })
      let key = try await auth.createApiKey(.with { $0.name = "k" }, options: bearer(login.tokens.accessToken))
      let deactivated = try await users.deactivateUser(.with { $0.userID = user.id }, options: adminOptions)
      #expect(!deactivated.isActive)
      _ = try await users.deactivateUser(.with { $0.userID = user.id }, options: adminOptions)  // idempotent
      #expect(await self.refusedWithin5s { _ = try await auth.getCurrentUser(.init(), options: bearer(login.tokens.accessToken)) })
      await expectStatus(.unauthenticated) { try await auth.refreshToken(.with { $0.refreshToken = login.tokens.refreshToken }) }
      await expectStatus(.unauthenticated) { try await auth.verifyApiKey(.with { $0.key = key.secret }) }
      let error = await expectStatus(.unauthenticated) {
        try await auth.login(.with {
          $0.email = email
          $0.password = goodPassword
        })
      }
      #expect(error?.message == "Invalid email or password")
      await expectStatus(.notFound) { try await users.deactivateUser(.with { $0.userID = UUID().lowercasedString }, options: adminOptions) }
      #expect(try await auditActions(service).filter { $0 == "deactivate" }.count == 1)
    }
  }

  @Test("The audit log: filtered by subject, action and time, newest first, in pages; admins only")
  func auditListing() async throws {
    try await withAdmin { service, auth, users, adminOptions, adminID in
      let (viewer, viewerID) = try await signedInUser(auth)
      let logins = try await users.listAuditEvents(.with { $0.action = "login" }, options: adminOptions)
      #expect(Set(logins.events.map(\.subjectID)) == [adminID, viewerID] && logins.events.allSatisfy { $0.decision == "allow" })
      #expect(logins.events.first?.id ?? 0 > logins.events.last?.id ?? 0)
      let mine = try await users.listAuditEvents(.with { $0.subjectID = viewerID }, options: adminOptions)
      #expect(mine.events.map(\.action) == ["login", "register"])
      let page = try await users.listAuditEvents(.with {
        $0.subjectID = viewerID
        $0.pageSize = 1
      }, options: adminOptions)
      let rest = try await users.listAuditEvents(.with {
        $0.subjectID = viewerID
        $0.pageSize = 1
        $0.pageToken = page.nextPageToken
      }, options: adminOptions)
      #expect(page.events.map(\.action) == ["login"] && rest.events.map(\.action) == ["register"])
      // The time range: the registration moved an hour back, the login left now.
      _ = try await service.database.query(
        "UPDATE auth_audit_log SET created_at = now() - interval '1 hour' WHERE subject_id = \(viewerID) AND action = 'register'",
        logger: TestPostgres.quietLogger)
      let halfHourAgo = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(-1800))
      let recent = try await users.listAuditEvents(.with {
        $0.subjectID = viewerID
        $0.startTime = halfHourAgo
      }, options: adminOptions)
      let older = try await users.listAuditEvents(.with {
        $0.subjectID = viewerID
        $0.endTime = halfHourAgo
      }, options: adminOptions)
      #expect(recent.events.map(\.action) == ["login"] && older.events.map(\.action) == ["register"])
      await expectStatus(.invalidArgument) {
        try await users.listAuditEvents(.with {
          $0.startTime = Google_Protobuf_Timestamp(date: Date())
          $0.endTime = Google_Protobuf_Timestamp(date: Date().addingTimeInterval(-60))
        }, options: adminOptions)
      }
      await expectStatus(.permissionDenied) { try await users.listAuditEvents(.init(), options: viewer) }
    }
  }
}
