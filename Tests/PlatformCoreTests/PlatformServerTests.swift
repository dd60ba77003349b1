import Foundation
import GRPCRuntime
import GRPCRuntimeServices
import InteropSupport
import ServiceLifecycle
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing

@Suite("Platform server")
struct PlatformServerTests {
  @Test("A placeholder service serves health without a token and answers UNIMPLEMENTED otherwise")
  func placeholder() async throws {
    try await PlatformTestService.run(PlaceholderServiceDefinition(name: .workflow)) { service in
      let health = Grpc_Health_V1_HealthClient(channel: service.client)
      let response = try await health.check(Grpc_Health_V1_HealthCheckRequest())
      #expect(response.status == .serving)

      let workflows = Platform_Workflow_V1_WorkflowServiceClient(channel: service.client)
      let token = try await service.options(for: UUID(), roles: [.admin])
      await expectStatus(.unimplemented) {
        try await workflows.getWorkflow(Platform_Workflow_V1_GetWorkflowRequest(), options: token)
      }
    }
  }

  @Test("The server continues the caller's trace and reports its id")
  func tracing() async throws {
    try await PlatformTestService.run(PlaceholderServiceDefinition(name: .knowledge)) { service in
      var metadata = Metadata()
      metadata.addString("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", forKey: "traceparent")
      let response: ClientResponse<Grpc_Health_V1_HealthCheckResponse> = try await service.client.unaryCall(
        Grpc_Health_V1_Health.Method.check, request: Grpc_Health_V1_HealthCheckRequest(), options: CallOptions(metadata: metadata))
      #expect(response.initialMetadata.firstString(forKey: "x-trace-id") == "4bf92f3577b34da6a3ce929d0e0e4736")

      let fresh: ClientResponse<Grpc_Health_V1_HealthCheckResponse> = try await service.client.unaryCall(
        Grpc_Health_V1_Health.Method.check, request: Grpc_Health_V1_HealthCheckRequest(), options: CallOptions())
      let traceID = try #require(fresh.initialMetadata.firstString(forKey: "x-trace-id"))
      #expect(traceID.count == 32 && traceID != "4bf92f3577b34da6a3ce929d0e0e4736")

      // A call that fails before answering gets a trailers-only response: the id is there too.
      do {
        let _: ClientResponse<Grpc_Health_V1_HealthCheckResponse> = try await service.client.unaryCall(
          Grpc_Health_V1_Health.Method.check, request: Grpc_Health_V1_HealthCheckRequest.with { $0.service = "no.such.Service" },
          options: CallOptions(metadata: metadata))
        Issue.record("health knows an unknown service")
      } catch let error as RPCError {
        #expect(error.metadata.firstString(forKey: "x-trace-id") == "4bf92f3577b34da6a3ce929d0e0e4736", "\(error)")
      }
    }
  }

  @Test("Health follows the database: NOT_SERVING while it is gone, SERVING once it is back")
  func healthFollowsDatabase() async throws {
    let admin = try DatabaseConfiguration(url: TestPostgres.adminURL)
    let name = "test_health_" + UUID().uuidString.lowercased().prefix(8)
    func run(_ sql: String) async throws {
      _ = try await TestPostgres.withClient(admin) { client in
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestPostgres.logger)
      }
    }
    try await run("CREATE DATABASE \(name)")
    var configuration = ServiceConfiguration.defaults(for: .knowledge)
    configuration.port = 0
    configuration.database = admin
    configuration.database.database = String(name)
    let server = PlatformServer(
      definition: PlaceholderServiceDefinition(name: .knowledge), configuration: configuration,
      logger: TestPostgres.logger, databaseCheckInterval: .milliseconds(100))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.run() }
      defer { group.cancelAll() }
      let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(try await server.listeningPort)"]))
      let health = Grpc_Health_V1_HealthClient(channel: client)
      func status(becomes expected: Grpc_Health_V1_HealthCheckResponse.ServingStatus) async throws -> Bool {
        for _ in 0..<100 {
          if try await health.check(Grpc_Health_V1_HealthCheckRequest()).status == expected { return true }
          try await Task.sleep(for: .milliseconds(100))
        }
        return false
      }
      #expect(try await status(becomes: .serving))
      try await run("DROP DATABASE \(name) WITH (FORCE)")
      #expect(try await status(becomes: .notServing))
      try await run("CREATE DATABASE \(name)")
      #expect(try await status(becomes: .serving))
      await client.close()
    }
    try await run("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
  }

  @Test("A request pool busy with slow queries still reads as SERVING: health has its own connection")
  func busyPoolStaysServing() async throws {
    /// A service whose handlers are busy: every connection of its pool runs a slow query.
    struct BusyService: PlatformServiceDefinition {
      var name: PlatformServiceName { .knowledge }
      func migrations() throws -> [Migration] { [] }
      var accessPolicy: AccessPolicy { AccessPolicy() }
      func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
        for _ in 0..<(resources.configuration.database.poolSize * 3) {
          Task { try await resources.database.query("SELECT pg_sleep(4)", logger: resources.logger) }
        }
        return []
      }
    }
    try await TestPostgres.withTemporaryDatabase { database in
      var configuration = ServiceConfiguration.defaults(for: .knowledge)
      configuration.port = 0
      configuration.database = database
      configuration.database.poolSize = 2
      let server = PlatformServer(
        definition: BusyService(), configuration: configuration, logger: TestPostgres.logger,
        databaseCheckInterval: .milliseconds(100))
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        defer { group.cancelAll() }
        let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(try await server.listeningPort)"]))
        let health = Grpc_Health_V1_HealthClient(channel: client)
        // The pool stays busy for 4 s; the old check (a pooled SELECT 1, 2 s timeout) read that as down.
        let end = ContinuousClock.now + .milliseconds(3500)
        var checks = 0
        while ContinuousClock.now < end {
          #expect(try await health.check(Grpc_Health_V1_HealthCheckRequest()).status == .serving)
          checks += 1
          try await Task.sleep(for: .milliseconds(100))
        }
        #expect(checks > 10)
        await client.close()
      }
    }
  }

  @Test("Start-up fails with a clear error when the database cannot be reached")
  func unreachableDatabase() async throws {
    var configuration = ServiceConfiguration.defaults(for: .agent)
    configuration.port = 0
    configuration.database = try DatabaseConfiguration(
      url: "postgres://platform:platform@127.0.0.1:1/agent_db", connectTimeout: .milliseconds(500))
    let server = PlatformServer(
      definition: PlaceholderServiceDefinition(name: .agent), configuration: configuration, logger: TestPostgres.logger)
    await #expect(throws: DatabaseUnavailable.self) { try await server.run() }
    await #expect(throws: DatabaseUnavailable.self) { try await server.listeningPort }
  }
}

/// An echo service of which only the unary `echo` is implemented.
protocol UnaryEcho: Platform_Echo_V1_EchoServiceHandler {}

extension UnaryEcho {
  func expand(
    _ request: Platform_Echo_V1_EchoRequest, responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>, context: ServerContext
  ) async throws { throw RPCError(.unimplemented) }
  func collect(_ requests: RequestStream<Platform_Echo_V1_EchoRequest>, context: ServerContext) async throws
    -> Platform_Echo_V1_EchoResponse { throw RPCError(.unimplemented) }
  func update(
    _ requests: RequestStream<Platform_Echo_V1_EchoRequest>, responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>,
    context: ServerContext
  ) async throws { throw RPCError(.unimplemented) }
}

@Suite("Platform server shutdown")
struct PlatformServerShutdownTests {
  /// Echo whose `echo` runs a query of `sleepSeconds` first: a call that needs the database.
  struct QueryingEcho: UnaryEcho {
    let database: PostgresClient
    func echo(_ request: Platform_Echo_V1_EchoRequest, context: ServerContext) async throws -> Platform_Echo_V1_EchoResponse {
      try await self.database.query("SELECT pg_sleep(0.8)", logger: TestPostgres.logger)
      return .with { $0.text = request.text }
    }
  }

  struct QueryingService: PlatformServiceDefinition {
    var name: PlatformServiceName { .knowledge }
    func migrations() throws -> [Migration] { [] }
    var accessPolicy: AccessPolicy {
      AccessPolicy(openServices: AccessPolicy.defaultOpenServices.union(["platform.echo.v1.EchoService"]))
    }
    func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
      [QueryingEcho(database: resources.database.client)]
    }
  }

  @Test("SIGTERM: a call in flight that still needs the database finishes (the pool outlives the drain)")
  func drainKeepsTheDatabase() async throws {
    try await TestPostgres.withTemporaryDatabase { database in
      var configuration = ServiceConfiguration.defaults(for: .knowledge)
      configuration.port = 0
      configuration.database = database
      configuration.shutdownGracePeriod = .seconds(5)
      let server = PlatformServer(definition: QueryingService(), configuration: configuration, logger: TestPostgres.logger)
      let group = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: TestPostgres.logger))
      try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(try await server.listeningPort)"]))
        let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
        async let reply = echo.echo(.with { $0.text = "still here" }, options: CallOptions(timeout: .seconds(10)))
        try await Task.sleep(for: .milliseconds(300))  // the call is in its query
        await group.triggerGracefulShutdown()
        #expect(try await reply.text == "still here")
        await client.close()
        try await tasks.waitForAll()
      }
    }
  }

  /// Echo whose `echo` updates the rows named by the request's two letters in that order, in
  /// one transaction: "ab" and "ba" at once deadlock.
  struct LockingEcho: UnaryEcho {
    let database: Database
    func echo(_ request: Platform_Echo_V1_EchoRequest, context: ServerContext) async throws -> Platform_Echo_V1_EchoResponse {
      let keys = request.text.map(String.init)
      try await self.database.withTransaction(logger: TestPostgres.logger) { connection in
        try await connection.query("UPDATE locks SET n = n + 1 WHERE k = \(keys[0])", logger: TestPostgres.logger)
        try await connection.query("SELECT pg_sleep(0.3)", logger: TestPostgres.logger)
        try await connection.query("UPDATE locks SET n = n + 1 WHERE k = \(keys[1])", logger: TestPostgres.logger)
      }
      return .with { $0.text = request.text }
    }
  }

  struct LockingService: PlatformServiceDefinition {
    var name: PlatformServiceName { .knowledge }
    func migrations() throws -> [Migration] {
      [Migration(version: 1, name: "locks", sql: "CREATE TABLE locks (k text PRIMARY KEY, n int NOT NULL); INSERT INTO locks VALUES ('a', 0), ('b', 0);")]
    }
    var accessPolicy: AccessPolicy {
      AccessPolicy(openServices: AccessPolicy.defaultOpenServices.union(["platform.echo.v1.EchoService"]))
    }
    func makeServices(_ resources: ServiceResources) async throws -> [any RPCService] {
      [LockingEcho(database: resources.database)]
    }
  }

  @Test("A deadlock is ABORTED (retry the call) and changes nothing; the other call commits")
  func deadlockIsAborted() async throws {
    try await PlatformTestService.run(LockingService()) { service in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: service.client)
      /// nil when the call succeeded, else its status.
      @Sendable func status(_ text: String) async -> StatusCode? {
        do {
          _ = try await echo.echo(.with { $0.text = text })
          return nil
        } catch {
          return (error as? RPCError)?.code ?? .unknown
        }
      }
      async let first = status("ab")
      async let second = status("ba")
      let codes = [await first, await second]
      #expect(codes.filter { $0 == nil }.count == 1 && codes.contains(.aborted))
      // Only the committed call's two updates.
      var total: Int64 = -1
      for try await (sum,) in try await service.database.query("SELECT sum(n)::int8 FROM locks", logger: TestPostgres.logger)
        .decode((Int64,).self) {
        total = sum
      }
      #expect(total == 2)
    }
  }
}
