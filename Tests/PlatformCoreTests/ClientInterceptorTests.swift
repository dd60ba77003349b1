import Foundation
import GRPCRuntime
import Logging
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Synchronization
import Testing

/// GetPersona registered by hand: `respond` computes the reply.
private struct ScriptedService: RPCService {
  let respond: @Sendable (Platform_Persona_V1_GetPersonaRequest, ServerContext) async throws -> Platform_Persona_V1_Persona

  func registerMethods(with router: inout RPCRouter) {
    router.registerUnary(Platform_Persona_V1_PersonaService.Method.getPersona, handler: self.respond)
  }
}

private func withScriptedServer<Result: Sendable>(
  interceptors: [any ServerInterceptor] = [],
  _ respond: @escaping @Sendable (Platform_Persona_V1_GetPersonaRequest, ServerContext) async throws -> Platform_Persona_V1_Persona,
  _ body: (Int) async throws -> Result
) async throws -> Result {
  let server = RPCServer(
    configuration: .defaults { $0.port = 0 }, services: [ScriptedService(respond: respond)], interceptors: interceptors,
    logger: TestPostgres.logger)
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.run() }
    defer { group.cancelAll() }
    return try await body(try await server.listeningPort)
  }
}

@Suite("Client interceptors across two services")
struct ClientInterceptorTests {
  @Test("A call made while handling a call continues its trace and carries its caller's token")
  func traceAndCredentialsTravel() async throws {
    let seen = Mutex<(traceparent: String?, authorization: String?, tracestate: String?)>((nil, nil, nil))
    try await withScriptedServer({ request, context in
      seen.withLock {
        $0 = (
          context.requestMetadata.firstString(forKey: "traceparent"),
          context.requestMetadata.firstString(forKey: "authorization"),
          context.requestMetadata.firstString(forKey: "tracestate")
        )
      }
      return .with { $0.id = request.id }
    }) { downstreamPort in
      let downstream = try RPCClient(
        configuration: .defaults(targets: ["127.0.0.1:\(downstreamPort)"]) {
          $0.interceptors += [CredentialForwardingInterceptor()]
        })
      try await withScriptedServer(interceptors: [TracingServerInterceptor()], { request, _ in
        try await Platform_Persona_V1_PersonaServiceClient(channel: TracedChannel(downstream, tracing: .idsOnly)).getPersona(request)
      }) { upstreamPort in
        let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(upstreamPort)"]))
        var metadata = Metadata()
        metadata.addString("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", forKey: "traceparent")
        metadata.addString("vendor=opaque-value,other=1", forKey: "tracestate")
        metadata.addString("Bearer the-callers-token", forKey: "authorization")
        let reply = try await Platform_Persona_V1_PersonaServiceClient(channel: client).getPersona(
          .with { $0.id = "relayed" }, options: CallOptions(timeout: .seconds(5), metadata: metadata))
        #expect(reply.id == "relayed")
        await client.close()
      }
      await downstream.close()
    }
    let (traceparent, authorization, tracestate) = seen.withLock { $0 }
    let trace = try #require(traceparent.flatMap(TraceContext.init(traceparent:)))
    #expect(trace.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
    #expect(trace.spanID != "00f067aa0ba902b7")  // a new span of the same trace
    #expect(authorization == "Bearer the-callers-token")
    #expect(tracestate == "vendor=opaque-value,other=1")  // passed on unchanged
  }
}
