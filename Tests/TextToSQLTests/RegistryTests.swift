import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import PostgresNIO
import Testing
@testable import TextToSQL

@Suite("Text-to-SQL: registered databases")
struct RegistryTests {
  @Test("Register, get, list, update and delete; the password is never returned; names, request ids, versions and fields are checked")
  func lifecycle() async throws {
    try await TargetServer.with(setup: smallSchema) { target in
      try await withTextToSQL { service, databases, _, options in
        let register = Platform_Texttosql_V1_RegisterDatabaseRequest.with {
          $0.database = .with { $0.name = "hr"; $0.databaseType = .postgresql; $0.connection = target.connection() }
          $0.requestID = UUID().uuidString
        }
        let created = try await databases.registerDatabase(register, options: options)
        #expect(created.connection.password.isEmpty && created.connection.passwordSet && created.version == 1)
        #expect(created.connection.sslMode == .disable && created.connection.port == Int32(target.admin.port))
        // A retry with the same request id is the same database.
        #expect(try await databases.registerDatabase(register, options: options).id == created.id)
        // The stored config holds no password in the clear.
        let stored = try await service.database.query("SELECT connection_string, key_id FROM databases", logger: TestPostgres.quietLogger)
          .collect().map { try $0.decode((String, String).self) }
        #expect(stored.count == 1 && !stored[0].0.contains(target.password) && stored[0].1 == "test")

        await expectStatus(.alreadyExists) {
          _ = try await databases.registerDatabase(.with { $0.database = register.database }, options: options)
        }
        await expectStatus(.invalidArgument, containing: "database.connection.host") {
          _ = try await databases.registerDatabase(
            .with { $0.database = .with { $0.name = "x"; $0.databaseType = .postgresql; $0.connection = .with { $0.host = "bad host!" } } },
            options: options)
        }
        await expectStatus(.invalidArgument, containing: "database.name") {
          _ = try await databases.registerDatabase(
            .with { $0.database = .with { $0.name = String(repeating: "n", count: 101); $0.databaseType = .postgresql; $0.connection = target.connection() } },
            options: options)
        }
        await expectStatus(.unimplemented, containing: "mysql") {
          _ = try await databases.registerDatabase(
            .with { $0.database = .with { $0.name = "m"; $0.databaseType = .mysql; $0.connection = target.connection() } }, options: options)
        }
        // Another user sees nothing.
        let stranger = try await service.options(for: UUID())
        await expectStatus(.notFound) { _ = try await databases.getDatabase(.with { $0.id = created.id }, options: stranger) }
        #expect(try await databases.listDatabases(.init(), options: stranger).databases.isEmpty)
        #expect(try await databases.listDatabases(.init(), options: options).databases.map(\.id) == [created.id])

        // Updates: the mask and the version; an omitted password is kept.
        let renamed = try await databases.updateDatabase(
          .with {
            $0.database = .with { $0.id = created.id; $0.name = "people"; $0.connection = target.connection(); $0.connection.password = "" }
            $0.updateMask = .with { $0.paths = ["name", "connection"] }
            $0.version = 1
          }, options: options)
        #expect(renamed.name == "people" && renamed.version == 2 && renamed.connection.passwordSet)
        #expect(try await databases.testConnection(.with { $0.databaseID = created.id }, options: options).ok)
        await expectStatus(.failedPrecondition) {
          _ = try await databases.updateDatabase(
            .with { $0.database = .with { $0.id = created.id; $0.name = "again" }; $0.updateMask = .with { $0.paths = ["name"] }; $0.version = 1 },
            options: options)
        }
        await expectStatus(.invalidArgument, containing: "database_type") {
          _ = try await databases.updateDatabase(
            .with { $0.database = .with { $0.id = created.id }; $0.updateMask = .with { $0.paths = ["database_type"] }; $0.version = 2 },
            options: options)
        }
        await expectStatus(.failedPrecondition) { _ = try await databases.deleteDatabase(.with { $0.id = created.id; $0.version = 1 }, options: options) }
        _ = try await databases.deleteDatabase(.with { $0.id = created.id; $0.version = 2 }, options: options)
        await expectStatus(.notFound) { _ = try await databases.getDatabase(.with { $0.id = created.id }, options: options) }
      }
    }
  }

  @Test("A sealed config copied to another user's row, or with a flipped bit, does not open")
  func sealedConfigs() async throws {
    try await TargetServer.with(setup: smallSchema) { target in
      try await withTextToSQL { service, databases, _, options in
        let first = try await databases.registerDatabase(
          .with { $0.database = .with { $0.name = "a"; $0.databaseType = .postgresql; $0.connection = target.connection() } }, options: options)
        let other = UUID()
        let otherOptions = try await service.options(for: other)
        let second = try await databases.registerDatabase(
          .with { $0.database = .with { $0.name = "b"; $0.databaseType = .postgresql; $0.connection = target.connection() } }, options: otherOptions)
        // The first row's ciphertext in the second user's row.
        _ = try await service.database.query(
          "UPDATE databases SET connection_string = (SELECT connection_string FROM databases WHERE id = \(UUID(uuidString: first.id)!)) WHERE id = \(UUID(uuidString: second.id)!)",
          logger: TestPostgres.quietLogger)
        await expectStatus(.failedPrecondition, containing: "cannot be decrypted") {
          _ = try await databases.getDatabase(.with { $0.id = second.id }, options: otherOptions)
        }
        // One bit flipped in the first row's box.
        let sealed = try await service.database.query("SELECT connection_string FROM databases WHERE id = \(UUID(uuidString: first.id)!)", logger: TestPostgres.quietLogger)
          .collect()[0].decode(String.self)
        var bytes = Array(Data(base64Encoded: sealed)!)
        bytes[bytes.count / 2] ^= 0x01
        _ = try await service.database.query(
          "UPDATE databases SET connection_string = \(Data(bytes).base64EncodedString()) WHERE id = \(UUID(uuidString: first.id)!)",
          logger: TestPostgres.quietLogger)
        await expectStatus(.failedPrecondition, containing: "cannot be decrypted") {
          _ = try await databases.getDatabase(.with { $0.id = first.id }, options: options)
        }
      }
    }
  }

  @Test("Egress: loopback, private, link-local and the platform's own server are refused by default; the platform's own role always")
  func egress() async throws {
    try await TargetServer.with(setup: smallSchema) { target in
      // Default: no SQL_ALLOWED_HOSTS.
      try await withTextToSQL(["SQL_ALLOWED_HOSTS": ""]) { _, databases, _, options in
        for host in ["127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "192.168.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "fd00::1"] {
          var connection = target.connection()
          connection.host = host
          let report = try await databases.testConnection(
            .with { $0.unsaved = .with { $0.databaseType = .postgresql; $0.connection = connection } }, options: options)
          #expect(!report.ok && report.message.contains("SQL_ALLOWED_HOSTS"), "\(host): \(report)")
          #expect(!report.message.contains(target.password))
        }
        // The platform's own persona_db with the platform's own credentials: refused.
        let own = try DatabaseConfiguration(url: TestPostgres.adminURL)
        await expectStatus(.failedPrecondition) {
          _ = try await databases.registerDatabase(
            .with {
              $0.database = .with {
                $0.name = "own"
                $0.databaseType = .postgresql
                $0.connection = .with {
                  $0.host = "127.0.0.1"; $0.port = Int32(own.port); $0.databaseName = "persona_db"; $0.username = own.username
                  $0.password = own.password ?? ""; $0.sslMode = .disable
                }
              }
              $0.validateConnection = true
            }, options: options)
        }
      }
      // Loopback allowed: a target works, the platform's own role still does not.
      try await withTextToSQL { _, databases, _, options in
        let own = try DatabaseConfiguration(url: TestPostgres.adminURL)
        var connection = target.connection()
        connection.username = own.username
        connection.password = own.password ?? ""
        let refused = try await databases.testConnection(
          .with { $0.unsaved = .with { $0.databaseType = .postgresql; $0.connection = connection } }, options: options)
        #expect(!refused.ok && refused.message.contains("platform's own database role"), "\(refused)")
        let report = try await databases.testConnection(
          .with { $0.unsaved = .with { $0.databaseType = .postgresql; $0.connection = target.connection() } }, options: options)
        #expect(report.ok && report.serverVersion.hasPrefix("PostgreSQL") && report.canWrite, "\(report)")
        #expect(report.writePrivileges.contains { $0.contains("INSERT on public.employees") } && !report.recommendation.isEmpty)
        // A role that can only read writes nothing.
        try await target.adminQuery(
          "CREATE ROLE \(target.role)_r LOGIN PASSWORD '\(target.password)'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \(target.role)_r")
        let reader = try await databases.testConnection(
          .with { $0.unsaved = .with { $0.databaseType = .postgresql; $0.connection = target.connection(as: "\(target.role)_r") } },
          options: options)
        #expect(reader.ok && !reader.canWrite && reader.writePrivileges.isEmpty, "\(reader)")
      }
    }
  }
}
