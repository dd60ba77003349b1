import GRPCRuntime
import InteropSupport
import NIOCore
import SwiftProtobuf
import Synchronization
import Testing

/// Fails the first `failures` calls with UNAVAILABLE, then echoes.
final class FlakyEchoService: Platform_Echo_V1_EchoServiceHandler {
  let remainingFailures: Atomic<Int>
  let calls = Atomic<Int>(0)

  init(failures: Int) {
    self.remainingFailures = Atomic(failures)
  }

  func echo(_ request: Platform_Echo_V1_EchoRequest, context: ServerContext) async throws -> Platform_Echo_V1_EchoResponse {
    self.calls.add(1, ordering: .relaxed)
    if self.remainingFailures.subtract(1, ordering: .relaxed).oldValue > 0 {
      throw RPCError(.unavailable, "Try again")
    }
    return .with { $0.text = request.text }
  }

  func expand(_ request: Platform_Echo_V1_EchoRequest, responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>, context: ServerContext) async throws {}
  func collect(_ requests: RequestStream<Platform_Echo_V1_EchoRequest>, context: ServerContext) async throws -> Platform_Echo_V1_EchoResponse { .init() }
  func update(_ requests: RequestStream<Platform_Echo_V1_EchoRequest>, responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>, context: ServerContext) async throws {}
}

/// Names the server that answered.
struct NamedEchoService: Platform_Echo_V1_EchoServiceHandler {
  let name: String
  func echo(_ request: Platform_Echo_V1_EchoRequest, context: ServerContext) async throws -> Platform_Echo_V1_EchoResponse {
    .with { $0.text = self.name }
  }
  func expand(_ request: Platform_Echo_V1_EchoRequest, responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>, context: ServerContext) async throws {}
  func collect(_ requests: RequestStream<Platform_Echo_V1_EchoRequest>, context: ServerContext) async throws -> Platform_Echo_V1_EchoResponse { .init() }
  func update(_ requests: RequestStream<Platform_Echo_V1_EchoRequest>, responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>, context: ServerContext) async throws {}
}

/// Adds a header to every call.
struct StampInterceptor: ClientInterceptor {
  func prepare(_ head: inout ClientCallHead) {
    head.metadata.addString("alice", forKey: "authorization")
  }
}

@Suite("Connection management")
struct ConnectionManagementTests {
  @Test("UNAVAILABLE is retried with backoff for idempotent calls only")
  func retries() async throws {
    let flaky = FlakyEchoService(failures: 2)
    try await withServer(services: [flaky], client: { $0.retry.initialBackoff = .milliseconds(10) }) { client, _ in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      let reply = try await echo.echo(.with { $0.text = "again" }, options: CallOptions(idempotent: true))
      #expect(reply.text == "again")
      #expect(flaky.calls.load(ordering: .relaxed) == 3)
      flaky.remainingFailures.store(1, ordering: .relaxed)
      do {
        _ = try await echo.echo(.with { $0.text = "once" })
        Issue.record("a non-idempotent call was retried")
      } catch let error as RPCError {
        #expect(error.code == .unavailable)
      }
      #expect(flaky.calls.load(ordering: .relaxed) == 4)
    }
  }

  @Test("Calls are spread round-robin over every target")
  func roundRobin() async throws {
    try await withServer(services: [NamedEchoService(name: "a")]) { _, portA in
      try await withServer(services: [NamedEchoService(name: "b")]) { _, portB in
        let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(portA)", "127.0.0.1:\(portB)"]))
        let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
        // The first calls go to whichever connection is up first: wait until both have answered.
        var answered = Set<String>()
        for _ in 0..<200 where answered.count < 2 {
          answered.insert(try await echo.echo(.init()).text)
          if answered.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(answered == ["a", "b"])
        var seen: [String: Int] = [:]
        for _ in 0..<10 { seen[try await echo.echo(.init()).text, default: 0] += 1 }
        await client.close()
        #expect(seen["a", default: 0] >= 3 && seen["b", default: 0] >= 3, "\(seen)")
      }
    }
  }

  @Test("A DNS name resolves to its addresses; unreachable ones are skipped")
  func dnsTarget() async throws {
    try await withServer(services: [NamedEchoService(name: "local")]) { _, port in
      let client = try RPCClient(configuration: .defaults(targets: ["localhost:\(port)"]) {
        $0.backoff.initial = .milliseconds(50)
      })
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      for _ in 0..<4 {
        let reply = try await echo.echo(.init(), options: CallOptions(idempotent: true))
        #expect(reply.text == "local")
      }
      await client.close()
    }
  }

  @Test("The client reconnects after the server closed an idle connection or asked it to go away")
  func reconnects() async throws {
    try await withServer(
      services: [EchoService()],
      configure: {
        // Long enough that a connection the client has just opened is not idle yet when the
        // machine is busy (the parallel suites); each round still waits past the idle timeout.
        $0.idleTimeout = .milliseconds(400)
        $0.maxConnectionAge = .milliseconds(1000)
        $0.shutdownGracePeriod = .milliseconds(200)
      }
    ) { client, _ in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      for round in 0..<6 {
        let reply = try await echo.echo(.with { $0.text = "round \(round)" }, options: CallOptions(idempotent: true))
        #expect(reply.text == "round \(round)")
        try await Task.sleep(for: .milliseconds(500))
      }
    }
  }

  @Test("A peer that does not answer keepalive PINGs is disconnected")
  func keepaliveTimeout() async throws {
    try await withServer(configure: { $0.keepalive = .init(interval: .milliseconds(100), timeout: .milliseconds(100)) }) { _, port in
      // A raw client that sends the preface and then never acknowledges anything.
      let (received, closed) = try await exchangeRawBytes(port: port, [http2Preface], timeout: .seconds(2))
      #expect(closed)
      // The server's bytes include a PING frame (type 6).
      #expect(received.count > 9)
    }
  }

  @Test("Client interceptors change every call's metadata")
  func clientInterceptors() async throws {
    try await withServer(
      services: [ProbeService(recorder: Recorder())], interceptors: [TokenInterceptor()],
      client: { $0.interceptors.append(StampInterceptor()) }
    ) { client, _ in
      let reply = try await Platform_Echo_V1_EchoServiceClient(channel: client).echo(.with { $0.text = "hi" })
      #expect(reply.text == "hi caller=alice")
    }
  }

  @Test("A call to a server that is down fails with UNAVAILABLE quickly")
  func serverDown() async throws {
    let port = try await withServer { _, port in port }
    let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(port)"]))
    let started = ContinuousClock.now
    do {
      _ = try await Platform_Echo_V1_EchoServiceClient(channel: client).echo(.init())
      Issue.record("a call to a closed port succeeded")
    } catch let error as RPCError {
      #expect(error.code == .unavailable)
    }
    #expect(ContinuousClock.now - started < .seconds(2))
    await client.close()
  }
}
