internal import Foundation
public import GRPCRuntime
internal import Logging
internal import ServiceLifecycle
internal import UnixSignals

/// The entry point of every service executable: reads the configuration from the environment,
/// sets up logging, runs the service until SIGTERM or SIGINT (then drains), and exits with a
/// one-line message instead of a crash when start-up fails. A crash ends the process
/// (`FatalSignals`).
public enum PlatformMain {
  public static func run(_ definition: some PlatformServiceDefinition) async -> Never {
    MallocTuning.applyByReexecuting()
    FatalSignals.install(service: definition.name.rawValue)
    let configuration: ServiceConfiguration
    do {
      configuration = try ServiceConfiguration.fromEnvironment(service: definition.name)
    } catch {
      Self.fail("\(definition.name): configuration error: \(error)")
    }
    PlatformLogging.bootstrap(format: configuration.logFormat, level: configuration.logLevel)
    let logger = Logger(label: definition.name.rawValue)
    let server = PlatformServer(definition: definition, configuration: configuration, logger: logger)
    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: server)],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
      ))
    do {
      try await group.run()
      exit(0)
    } catch {
      logger.critical("Start-up failed", metadata: ["error": "\(error)"])
      Self.fail("\(definition.name): \(error)")
    }
  }

  private static func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(1)
  }
}

/// A service whose RPCs come in a later issue: it connects its database, serves health and
/// reflection, and answers UNIMPLEMENTED to everything else.
public struct PlaceholderServiceDefinition: PlatformServiceDefinition {
  public let name: PlatformServiceName
  public init(name: PlatformServiceName) { self.name = name }
  public func migrations() throws -> [Migration] { [] }
  public var accessPolicy: AccessPolicy { AccessPolicy() }
  public func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] { [] }
}
