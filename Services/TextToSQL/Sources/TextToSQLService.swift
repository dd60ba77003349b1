internal import Foundation
public import GRPCRuntime
internal import Logging
internal import NIOCore
public import PlatformCore

/// The text-to-SQL service: registered databases (configs sealed with AES-GCM), schema syncs,
/// questions → SQL, and the layered read-only guard (DatabaseService, QueryService), in sql_db.
public struct TextToSQLService: PlatformServiceDefinition {
  public var name: PlatformServiceName { .textToSQL }

  public init() {}

  public static let definition = TextToSQLService()

  public func migrations() throws -> [Migration] {
    try Migration.load(bundle: .module)
  }

  public var accessPolicy: AccessPolicy { TextToSQLAPI.accessPolicy }

  public func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
    let environment = resources.configuration.environment
    let secrets = try SecretBox(parsing: environment.values["SQL_ENCRYPTION_KEY"] ?? "", variable: "SQL_ENCRYPTION_KEY")
    // The platform's own database server is protected like a private address, and its role is
    // never a target's.
    let own = resources.configuration.database
    let ownEndpoints = (try? await EgressPolicy.lookUpAll(host: own.host, port: own.port)) ?? []
    let egress = try EgressPolicy(
      parsing: environment.values["SQL_ALLOWED_HOSTS"] ?? "", protectedEndpoints: ownEndpoints, variable: "SQL_ALLOWED_HOSTS")
    let targets = Targets(
      configuration: Targets.Configuration(
        egress: egress, platformRole: (ownEndpoints, own.username), sqliteDirectory: environment.values["SQL_SQLITE_DIR"] ?? ""),
      logger: resources.logger)
    let audit = AuditLog(database: resources.database, logger: resources.logger)
    let generator: any SQLGenerator
    var describer: (any TableDescriber)?
    switch try ModelProvider(environment: environment) {
    case .offline:
      generator = OfflineSQLGenerator()
    case .openAI(let provider):
      let model = OpenAISQLGenerator(provider: provider)
      generator = model
      describer = model
    }
    let databases = Databases(
      store: DatabaseStore(database: resources.database, logger: resources.logger), secrets: secrets, targets: targets,
      redis: resources.redis, audit: audit, logger: resources.logger, describer: describer)
    resources.logger.info("Questions become SQL through the \(generator.name) generator")
    let queries = Queries(
      databases: databases, store: QueryStore(database: resources.database, logger: resources.logger),
      generator: generator, audit: audit, logger: resources.logger)
    resources.lifetime.run {
      await Periodic.run(every: .seconds(60), starting: .afterInterval) {
        await targets.closeIdle()
      }
    }
    resources.lifetime.onStop { await targets.shutdown() }
    return [DatabaseAPI(databases: databases), QueryAPI(queries: queries)]
  }
}
