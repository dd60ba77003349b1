internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import PlatformProtos
internal import SwiftProtobuf

struct SQLCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sql", abstract: "Text-to-SQL: register databases, sync their schema, ask questions.",
    subcommands: [Register.self, List.self, Sync.self, Ask.self])

  struct Register: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Register a database: a SQLite file under the service's SQL_SQLITE_DIR, or PostgreSQL.",
      discussion: "PostgreSQL: --postgres postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=disable|require|verify-full]. The password is sealed by the service and never shown again.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Its name.") var name: String
    @Option(help: "A SQLite file's name, relative to the service's SQL_SQLITE_DIR.") var sqlite: String?
    @Option(help: "A PostgreSQL URL.") var postgres: String?
    @Flag(help: "Do not test the connection before registering.") var noValidate = false

    func validate() throws {
      guard (self.sqlite == nil) != (self.postgres == nil) else { throw ValidationError("Give --sqlite FILE or --postgres URL") }
    }

    func run() async throws {
      var database = Platform_Texttosql_V1_Database()
      database.name = self.name
      if let sqlite = self.sqlite {
        database.databaseType = .sqlite
        database.connection.databaseName = sqlite
      } else if let postgres = self.postgres {
        database.databaseType = .postgresql
        database.connection = try Self.connection(postgres)
      }
      try await Session.with(self.global) { session in
        let client = Platform_Texttosql_V1_DatabaseServiceClient(channel: try session.channel(.textToSQL))
        let registered = try await session.call { options in
          try await client.registerDatabase(
            .with {
              $0.database = database
              $0.validateConnection = !self.noValidate
            }, options: options)
        }
        try self.global.emit(registered) { SQLCommand.table([registered]).print() }
      }
    }

    static func connection(_ url: String) throws -> Platform_Texttosql_V1_ConnectionConfig {
      let target = try PostgresTarget(url: url)
      return .with {
        $0.host = target.host
        $0.port = Int32(target.port)
        $0.databaseName = target.database
        $0.username = target.username
        $0.password = target.password ?? ""
        switch target.sslMode {
        case nil: break  // the service's default, REQUIRE
        case .disable: $0.sslMode = .disable
        case .require: $0.sslMode = .require
        case .verifyFull: $0.sslMode = .verifyFull
        }
      }
    }
  }

  static func table(_ databases: [Platform_Texttosql_V1_Database]) -> Table {
    var table = Table("ID", "NAME", "TYPE", "DATABASE", "LAST SYNC")
    for database in databases {
      table.append(
        database.id, database.name, Format.enumName(database.databaseType), database.connection.databaseName,
        Format.time(database.lastSyncTime))
    }
    return table
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List your databases.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "At most this many.") var limit = 50

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = Platform_Texttosql_V1_DatabaseServiceClient(channel: try session.channel(.textToSQL))
        let response = try await session.call { try await client.listDatabases(.with { $0.pageSize = Int32(self.limit) }, options: $0) }
        try self.global.emitList(response, shown: response.databases.count, nextPageToken: response.nextPageToken) {
          SQLCommand.table(response.databases).print()
        }
      }
    }
  }

  struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read a database's schema (tables, columns, keys, samples).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The database's id.") var id: String

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = Platform_Texttosql_V1_DatabaseServiceClient(channel: try session.channel(.textToSQL))
        let response = try await session.call { try await client.syncSchema(.with { $0.databaseID = self.id }, options: $0) }
        try self.global.emit(response) {
          print("Synced \(response.schemaCount) schemas, \(response.tableCount) tables (\(response.removedTableCount) removed)")
        }
      }
    }
  }

  struct Ask: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Ask a question in plain language; prints the SQL and the result rows as a table.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The database's id.") var id: String
    @Argument(help: "The question.") var question: String
    @Option(help: "At most this many rows.") var maxRows: Int32 = 100

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = Platform_Texttosql_V1_QueryServiceClient(channel: try session.channel(.textToSQL))
        let response = try await session.call { options in
          try await client.askQuestion(
            .with {
              $0.databaseID = self.id
              $0.question = self.question
              $0.maxRows = self.maxRows
            }, options: options)
        }
        try self.global.emit(response) {
          print("-- \(response.query.sql.split(whereSeparator: \.isNewline).joined(separator: " "))")
          guard response.hasResult else { return }
          var table = Table(response.result.columns.map(\.name))
          for row in response.result.rows { table.append(row: row.values.map(Format.value)) }
          table.print()
          let truncated = response.result.truncated ? " (truncated: \(response.result.truncatedReason))" : ""
          print("(\(response.result.rows.count) rows\(truncated))")
        }
        guard response.hasResult else {
          let issues = response.query.validation.issues
          throw CommandFailure("the generated SQL is not safe to run: \(issues.isEmpty ? "no reason given" : issues.joined(separator: "; "))")
        }
      }
    }
  }
}
