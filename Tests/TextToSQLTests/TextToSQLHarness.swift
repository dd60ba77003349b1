import Foundation
import GRPCRuntime
import Logging
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import PostgresNIO
import Testing
@testable import TextToSQL

typealias DatabaseClient = Platform_Texttosql_V1_DatabaseServiceClient
typealias QueryClient = Platform_Texttosql_V1_QueryServiceClient

/// A test encryption key (32 bytes of 7).
let testEncryptionKey = "test:" + Data(repeating: 7, count: 32).base64EncodedString()

/// The test PostgreSQL server, as a target: its port and host.
var targetPort: Int {
  (try? DatabaseConfiguration(url: TestPostgres.adminURL))?.port ?? 5432
}

/// A target database on the test server: a fresh database owned by a fresh login role (so the
/// platform's own role is never the target's), with `setup` run as that role.
struct TargetServer: Sendable {
  var name: String
  var role: String
  var password: String
  var admin: DatabaseConfiguration

  /// The platform's admin role on the target database.
  var adminConfiguration: DatabaseConfiguration {
    var configuration = self.admin
    configuration.database = self.name
    return configuration
  }

  func connection(as role: String? = nil) -> Platform_Texttosql_V1_ConnectionConfig {
    .with {
      $0.host = "127.0.0.1"
      $0.port = Int32(self.admin.port)
      $0.databaseName = self.name
      $0.username = role ?? self.role
      $0.password = self.password
      $0.sslMode = .disable
    }
  }

  /// Runs SQL on the target as the platform's admin role.
  func adminQuery(_ sql: String) async throws {
    try await TestPostgres.withClient(self.adminConfiguration) { client in
      try await client.withConnection { connection in
        // One statement at a time (the extended protocol takes one), on one connection, so
        // SET ROLE holds for the rest.
        for statement in try #require(SQLGuard.statements(of: sql)) {
          _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: TestPostgres.quietLogger).collect()
        }
      }
    }
  }

  /// The rows of `sql` on the target, as text, run by the admin role.
  func adminRows(_ sql: String) async throws -> [String] {
    return try await TestPostgres.withClient(self.adminConfiguration) { client in
      try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestPostgres.quietLogger).collect().map { try $0.decode(String.self) }
    }
  }

  static func with<T>(setup: String, _ body: (TargetServer) async throws -> T) async throws -> T {
    let suffix = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
    let admin = try DatabaseConfiguration(url: TestPostgres.adminURL, poolSize: 1)
    let target = TargetServer(name: "tts_target_\(suffix)", role: "tts_owner_\(suffix)", password: "pw-\(suffix)", admin: admin)
    try await TestPostgres.withClient(admin) { client in
      _ = try await client.query(PostgresQuery(unsafeSQL: "CREATE ROLE \(target.role) LOGIN PASSWORD '\(target.password)'"), logger: TestPostgres.quietLogger)
      _ = try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(target.name) OWNER \(target.role)"), logger: TestPostgres.quietLogger)
    }
    do {
      try await target.adminQuery("GRANT ALL ON SCHEMA public TO \(target.role); SET ROLE \(target.role);\n" + setup)
      let result = try await body(target)
      try await target.drop()
      return result
    } catch {
      try? await target.drop()
      throw error
    }
  }

  func drop() async throws {
    try await TestPostgres.withClient(self.admin) { client in
      _ = try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(self.name) WITH (FORCE)"), logger: TestPostgres.quietLogger)
      _ = try await client.query(PostgresQuery(unsafeSQL: "DROP ROLE IF EXISTS \(self.role)"), logger: TestPostgres.quietLogger)
      _ = try await client.query(PostgresQuery(unsafeSQL: "DROP ROLE IF EXISTS \(self.role)_r"), logger: TestPostgres.quietLogger)
    }
  }
}

/// The text-to-SQL service over real gRPC against a fresh database; loopback targets allowed
/// unless `settings` say otherwise.
func withTextToSQL<T: Sendable>(
  _ settings: [String: String] = [:], _ body: (PlatformTestService, DatabaseClient, QueryClient, CallOptions) async throws -> T
) async throws -> T {
  var environment = ["SQL_ENCRYPTION_KEY": testEncryptionKey, "SQL_ALLOWED_HOSTS": "127.0.0.0/8"]
  environment.merge(settings) { $1 }
  return try await PlatformTestService.run(TextToSQLService(), configure: { $0.environment = Environment(environment.filter { !$0.value.isEmpty }) }) {
    service in
    try await body(service, DatabaseClient(channel: service.client), QueryClient(channel: service.client), try await service.options(for: UUID()))
  }
}

/// Registers `target` and syncs its schema; returns the database id.
func registerAndSync(
  _ target: TargetServer, _ databases: DatabaseClient, _ options: CallOptions, name: String = "target"
) async throws -> String {
  let database = try await databases.registerDatabase(
    .with {
      $0.database = .with {
        $0.name = name
        $0.databaseType = .postgresql
        $0.connection = target.connection()
      }
      $0.validateConnection = true
    }, options: options)
  _ = try await databases.syncSchema(.with { $0.databaseID = database.id }, options: options)
  return database.id
}

/// A small schema for registry, sync, policy and question tests.
let smallSchema = """
  CREATE TABLE departments (id integer PRIMARY KEY, name text NOT NULL UNIQUE, location text);
  COMMENT ON TABLE departments IS 'Company departments';
  CREATE TABLE employees (
    id integer PRIMARY KEY, department_id integer NOT NULL REFERENCES departments(id), name text NOT NULL,
    email text NOT NULL, ssn text NOT NULL, salary numeric(10,2) NOT NULL, hired_on date NOT NULL, is_active boolean NOT NULL);
  CREATE INDEX employees_department ON employees(department_id);
  INSERT INTO departments VALUES (1, 'Engineering', 'Berlin'), (2, 'Sales', 'London'), (3, 'Support', 'Lisbon');
  INSERT INTO employees SELECT g, 1 + g % 3, 'Person ' || g, 'person' || g || '@example.com', lpad(g::text, 9, '0'),
    40000 + g * 1000, date '2020-01-01' + g * 10, g % 5 <> 0 FROM generate_series(1, 30) g;
  """

/// `expectStatus`, and the message names `text`.
func expectStatus<T>(
  _ code: StatusCode, containing text: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async {
  let message = await expectStatus(code, sourceLocation: sourceLocation, body)
  #expect(message.contains(text), "\(message) does not name \(text)", sourceLocation: sourceLocation)
}
