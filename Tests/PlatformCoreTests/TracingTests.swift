import GRPCRuntime
import InMemoryTracing
import Logging
import PlatformCore
import PlatformProtos
import PlatformRedis
import PlatformTesting
import PostgresNIO
import Synchronization
import SwiftProtobuf
import Testing
import Tracing

@Suite("Tracing")
struct TracingTests {
  @Test("tracestate is passed on as received; an oversized or malformed one is dropped with nothing else")
  func traceState() throws {
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    let kept = try #require(TraceContext(traceparent: parent, tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"))
    #expect(kept.child().state == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    var metadata = Metadata()
    kept.inject(into: &metadata)
    #expect(metadata.firstString(forKey: "tracestate") == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    #expect(metadata.firstString(forKey: "traceparent") == parent)

    let long = String(repeating: "a", count: TraceContext.maxStateLength + 1)
    #expect(try #require(TraceContext(traceparent: parent, tracestate: long)).state == nil)
    #expect(try #require(TraceContext(traceparent: parent, tracestate: "a=b\u{1}")).state == nil)
    #expect(TraceContext(traceparent: "garbage", tracestate: "a=b") == nil)
  }

  @Test("OTEL_EXPORTER_OTLP_ENDPOINT turns export on; a traces endpoint wins; none or disabled means ids only")
  func configuration() throws {
    #expect(try TracingConfiguration(environment: Environment([:])).otlpTracesEndpoint == nil)
    let base = try TracingConfiguration(environment: Environment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"]))
    #expect(base.otlpTracesEndpoint == "http://collector:4318/v1/traces")
    let specific = try TracingConfiguration(
      environment: Environment([
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://other:9999/traces",
      ]))
    #expect(specific.otlpTracesEndpoint == "http://other:9999/traces")
    let off = try TracingConfiguration(
      environment: Environment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"]))
    #expect(off.otlpTracesEndpoint == nil)
    #expect(throws: Environment.InvalidValue.self) {
      try TracingConfiguration(environment: Environment(["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"]))
    }
  }

  @Test("A call is a server span; the SQL and Redis work of its handler are its children, named without values")
  func spansNest() async throws {
    let tracer = InMemoryTracer()
    let tracing = PlatformTracing(tracer: tracer)
    try await TestPostgres.withTemporaryDatabase { configuration in
      try await TestPostgres.withClient(configuration) { client in
        let database = Database(client: client, configuration: configuration, tracing: tracing)
        let redis = try RedisClient(
          configuration: try RedisConfiguration(url: PlatformTestService.redisURL), logger: TestPostgres.quietLogger, tracer: tracer)
        defer { Task { await redis.close() } }
        let server = RPCServer(
          configuration: .defaults { $0.port = 0 },
          services: [
            TracedEcho { request in
              let rows = try await database.query(
                "SELECT count(*) FROM pg_class WHERE relname = \(request.id)", logger: TestPostgres.quietLogger)
              #expect(rows.count == 1)
              _ = try await redis.send(RedisCommand("SET", .string("tracing-test:\(request.id)"), "secret-value", "EX", "10"))
              return .with { $0.id = request.id }
            }
          ],
          interceptors: [TracingServerInterceptor(tracing: tracing)], logger: TestPostgres.quietLogger)
        try await withThrowingTaskGroup(of: Void.self) { group in
          group.addTask { try await server.run() }
          defer { group.cancelAll() }
          let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(try await server.listeningPort)"]))
          let response: ClientResponse<Platform_Persona_V1_Persona> = try await client.unaryCall(
            TracedEcho.method, request: Platform_Persona_V1_GetPersonaRequest.with { $0.id = "the-bound-value" },
            options: CallOptions(timeout: .seconds(10)))
          #expect(response.message.id == "the-bound-value")
          #expect(response.initialMetadata.firstString(forKey: "x-trace-id")?.count == 32)
          await client.close()
        }
      }
    }
    let spans = tracer.finishedSpans
    let server = try #require(spans.first { $0.kind == .server })
    #expect(server.operationName == TracedEcho.method.path)
    #expect(server.attributes["rpc.grpc.status_code"]?.toSpanAttribute() == .int64(0))
    let sql = try #require(spans.first { $0.attributes["db.system.name"]?.toSpanAttribute() == .string("postgresql") })
    #expect(sql.operationName == "SELECT pg_class" && sql.kind == .client)
    #expect(sql.parentSpanID == server.spanID && sql.traceID == server.traceID)
    let redisSpan = try #require(spans.first { $0.attributes["db.system.name"]?.toSpanAttribute() == .string("redis") })
    #expect(redisSpan.operationName == "SET" && redisSpan.parentSpanID == server.spanID)
    let recorded = spans.map { "\($0.operationName) \($0.attributes)" }.joined(separator: "\n")
    #expect(!recorded.contains("the-bound-value") && !recorded.contains("secret-value"))
    #expect(recorded.contains("$1"))  // the statement's text, with its placeholder
  }

  @Test("A failed call's server span carries its status and is an error only for the server's own faults")
  func failedCallStatus() async throws {
    let tracer = InMemoryTracer()
    let server = RPCServer(
      configuration: .defaults { $0.port = 0 },
      services: [
        TracedEcho { request in
          throw RPCError(request.id == "missing" ? .notFound : .internal, "no")
        }
      ],
      interceptors: [TracingServerInterceptor(tracing: PlatformTracing(tracer: tracer))], logger: TestPostgres.quietLogger)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await server.run() }
      defer { group.cancelAll() }
      let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(try await server.listeningPort)"]))
      for id in ["missing", "broken"] {
        await #expect(throws: RPCError.self) {
          let _: ClientResponse<Platform_Persona_V1_Persona> = try await client.unaryCall(
            TracedEcho.method, request: Platform_Persona_V1_GetPersonaRequest.with { $0.id = id },
            options: CallOptions(timeout: .seconds(10)))
        }
      }
      await client.close()
    }
    let spans = tracer.finishedSpans.filter { $0.kind == .server }
    #expect(spans.count == 2)
    #expect(spans[0].attributes["rpc.grpc.status_code"]?.toSpanAttribute() == .int64(5) && spans[0].status == nil)
    #expect(spans[1].attributes["rpc.grpc.status_code"]?.toSpanAttribute() == .int64(13) && spans[1].status?.code == .error)
  }
}

/// GetPersona registered by hand: the test's closure answers it.
private struct TracedEcho: RPCService {
  static let method = Platform_Persona_V1_PersonaService.Method.getPersona
  let handle: @Sendable (Platform_Persona_V1_GetPersonaRequest) async throws -> Platform_Persona_V1_Persona

  init(_ handle: @escaping @Sendable (Platform_Persona_V1_GetPersonaRequest) async throws -> Platform_Persona_V1_Persona) {
    self.handle = handle
  }

  func registerMethods(with router: inout RPCRouter) {
    router.registerUnary(Self.method) { (request: Platform_Persona_V1_GetPersonaRequest, _) in try await self.handle(request) }
  }
}
