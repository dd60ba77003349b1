import GRPCRuntime
import GRPCRuntimeServices
import Foundation
import InteropSupport
import Logging
import PlatformProtos
import SwiftProtobuf
import ServiceLifecycle
import Synchronization
import Testing

/// Records what handlers saw, for tests to check.
final class Recorder: Sendable {
  let cancelled = Atomic<Int>(0)
  let running = Atomic<Int>(0)
  let maxRunning = Atomic<Int>(0)
  let written = Atomic<Int>(0)
  let deadlines = Mutex<[Duration?]>([])
}

/// An echo service whose methods misbehave on request: `sleep:<ms>` sleeps, `flood` writes
/// 64 KiB messages until stopped, `call:<port>` calls the echo service at that port.
struct ProbeService: Platform_Echo_V1_EchoServiceHandler {
  let recorder: Recorder

  func echo(_ request: Platform_Echo_V1_EchoRequest, context: ServerContext) async throws -> Platform_Echo_V1_EchoResponse {
    let running = self.recorder.running.add(1, ordering: .relaxed).newValue
    self.recorder.maxRunning.max(running, ordering: .relaxed)
    defer { self.recorder.running.subtract(1, ordering: .relaxed) }
    self.recorder.deadlines.withLock { $0.append(context.remainingTime) }
    if request.text.hasPrefix("sleep:"), let milliseconds = Int(request.text.dropFirst(6)) {
      do {
        try await Task.sleep(for: .milliseconds(milliseconds))
      } catch {
        self.recorder.cancelled.add(1, ordering: .relaxed)
        throw error
      }
    }
    if request.text.hasPrefix("call:"), let port = Int(request.text.dropFirst(5)) {
      let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(port)"]))
      defer { Task { await client.close() } }
      return try await Platform_Echo_V1_EchoServiceClient(channel: client).echo(.with { $0.text = "sleep:0" })
    }
    if request.text.hasPrefix("metadata:") {
      // The values of one key read raw, then again once the metadata has been decoded.
      let key = String(request.text.dropFirst(9))
      let raw = context.requestMetadataStrings(forKey: key)
      _ = context.requestMetadata
      return .with { $0.text = raw.joined(separator: "|") + " / " + context.requestMetadataStrings(forKey: key).joined(separator: "|") }
    }
    var response = Platform_Echo_V1_EchoResponse()
    response.text = request.text
    if let caller = context[CallerKey.self] { response.text += " caller=\(caller)" }
    return response
  }

  func expand(
    _ request: Platform_Echo_V1_EchoRequest,
    responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>,
    context: ServerContext
  ) async throws {
    let big = Platform_Echo_V1_EchoResponse.with { $0.text = String(repeating: "x", count: 64 * 1024) }
    for _ in 0..<10_000 {
      try await responses.write(big)
      self.recorder.written.add(1, ordering: .relaxed)
    }
  }

  func collect(_ requests: RequestStream<Platform_Echo_V1_EchoRequest>, context: ServerContext) async throws -> Platform_Echo_V1_EchoResponse {
    var count = 0
    for try await _ in requests { count += 1 }
    return .with { $0.text = "\(count)" }
  }

  func update(
    _ requests: RequestStream<Platform_Echo_V1_EchoRequest>,
    responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>,
    context: ServerContext
  ) async throws {
    for try await request in requests { try await responses.write(.with { $0.text = request.text }) }
  }
}

enum CallerKey: ServerContextKey {
  typealias Value = String
}

/// Rejects calls without `authorization`, and attaches the caller named in it.
struct TokenInterceptor: ServerInterceptor {
  func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    guard let token = context.requestMetadata.firstString(forKey: "authorization") else {
      throw RPCError(.unauthenticated, "No token")
    }
    context[CallerKey.self] = token
    try await next(context)
  }
}

/// Polls `condition` until it holds or `limit` passes: for effects the server reaches in its
/// own time (a handler starting, a cancellation arriving), which a loaded machine can delay.
private func eventually(within limit: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
  let clock = ContinuousClock()
  let end = clock.now.advanced(by: limit)
  while !condition() {
    guard clock.now < end, (try? await Task.sleep(for: .milliseconds(5))) != nil else { return false }
  }
  return true
}

private func expectStatus(_ code: StatusCode, _ body: () async throws -> Void) async {
  do {
    try await body()
    Issue.record("expected \(code), the call succeeded")
  } catch let error as RPCError {
    #expect(error.code == code, "\(error)")
  } catch {
    Issue.record("expected \(code), got \(error)")
  }
}

@Suite("Server and client behaviour")
struct ServerBehaviorTests {
  @Test("One metadata key's values are read without decoding the rest, the same as after decoding")
  func metadataValuesOfOneKey() async throws {
    try await withServer(services: [ProbeService(recorder: Recorder())]) { client, _ in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      var metadata = Metadata()
      metadata.addString("a", forKey: "x-tag")
      metadata.addString("other", forKey: "x-tagged")
      metadata.addBinary([1, 2, 3], forKey: "x-tag-bin")
      metadata.addString("b c", forKey: "X-Tag")
      let options = CallOptions(metadata: metadata)
      let exact = try await echo.echo(.with { $0.text = "metadata:x-tag" }, options: options)
      #expect(exact.text == "a|b c / a|b c")
      let upper = try await echo.echo(.with { $0.text = "metadata:X-TAG" }, options: options)
      #expect(upper.text == "a|b c / a|b c")
      let prefix = try await echo.echo(.with { $0.text = "metadata:x-ta" }, options: options)
      #expect(prefix.text == " / ")
      let none = try await echo.echo(.with { $0.text = "metadata:x-tag" })
      #expect(none.text == " / ")
    }
  }

  @Test("A deadline ends the call with DEADLINE_EXCEEDED and cancels the handler")
  func deadline() async throws {
    let recorder = Recorder()
    try await withServer(services: [ProbeService(recorder: recorder)]) { client, _ in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      await expectStatus(.deadlineExceeded) {
        _ = try await echo.echo(.with { $0.text = "sleep:5000" }, options: CallOptions(timeout: .milliseconds(500)))
      }
      #expect(await eventually { recorder.cancelled.load(ordering: .relaxed) == 1 })
      let deadline = recorder.deadlines.withLock { $0.first ?? nil }
      #expect(deadline != nil && deadline! <= .milliseconds(500))
    }
  }

  @Test("Cancelling the calling task resets the stream and cancels the handler")
  func cancellation() async throws {
    let recorder = Recorder()
    try await withServer(services: [ProbeService(recorder: recorder)]) { client, _ in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      let call = Task { try await echo.echo(.with { $0.text = "sleep:5000" }) }
      #expect(await eventually { recorder.running.load(ordering: .relaxed) == 1 })
      call.cancel()
      await expectStatus(.cancelled) { _ = try await call.value }
      #expect(await eventually { recorder.cancelled.load(ordering: .relaxed) == 1 })
    }
  }

  @Test("Messages over the receive limit fail with RESOURCE_EXHAUSTED on both sides")
  func messageSizeLimits() async throws {
    try await withServer(
      services: [EchoService()], configure: { $0.maxReceiveMessageSize = 1024 },
      client: { $0.maxReceiveMessageSize = 1024 }
    ) { client, port in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      await expectStatus(.resourceExhausted) {
        _ = try await echo.echo(.with { $0.text = String(repeating: "a", count: 2000) })
      }
      // The connection survives: the next call works.
      let survivor = try await echo.echo(.with { $0.text = "ok" })
      #expect(survivor.text == "ok")
      // A gzip message that inflates past the limit is refused too.
      await expectStatus(.resourceExhausted) {
        _ = try await echo.echo(.with { $0.text = String(repeating: "a", count: 5000) }, options: CallOptions(compression: .gzip))
      }
    }
  }

  @Test("A streamed message larger than the stream's flow-control window arrives whole, both ways")
  func streamedMessageOverWindow() async throws {
    // The default stream window is 1 MiB and the message limit 4 MiB: a 1.5 MiB message in a
    // client or bidirectional stream must not wait for a window that opens only when it is read.
    try await withServer(services: [EchoService()]) { client, _ in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      let size = 3 << 19
      let big = String(repeating: "b", count: size)
      let collected = try await echo.collect(options: CallOptions(timeout: .seconds(10))) { writer in
        try await writer.write(.with { $0.text = "small" })
        try await writer.write(.with { $0.text = big })
        try await writer.write(.with { $0.text = big })
      }
      let expected = 5 + 2 * size + 2
      #expect(collected.text.utf8.count == expected)
      let echoed = try await echo.update(
        options: CallOptions(timeout: .seconds(10)),
        requests: { writer in
          for _ in 0..<3 { try await writer.write(.with { $0.text = big }) }
        },
        responses: { responses in
          var sizes: [Int] = []
          for try await response in responses { sizes.append(response.text.utf8.count) }
          return sizes
        })
      #expect(echoed == [size, size, size])
    }
  }

  @Test("The client honours MAX_CONCURRENT_STREAMS: no call fails, the server never runs more")
  func concurrentStreamLimit() async throws {
    let recorder = Recorder()
    try await withServer(
      services: [ProbeService(recorder: recorder)], configure: { $0.maxConcurrentStreams = 2 },
      client: { $0.maxConnectionsPerAddress = 1 }
    ) { client, _ in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      // Let the server's SETTINGS arrive first.
      _ = try await echo.echo(.with { $0.text = "warm up" })
      try await withThrowingTaskGroup(of: String.self) { group in
        for _ in 0..<12 {
          group.addTask { try await echo.echo(.with { $0.text = "sleep:30" }).text }
        }
        for try await text in group { #expect(text == "sleep:30") }
      }
      #expect(recorder.maxRunning.load(ordering: .relaxed) <= 2)
    }
  }

  @Test("Interceptors reject calls and pass values to handlers; health stays reachable")
  func interceptors() async throws {
    try await withServer(services: [ProbeService(recorder: Recorder())], interceptors: [TokenInterceptor()]) { client, _ in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      await expectStatus(.unauthenticated) { _ = try await echo.echo(.with { $0.text = "hi" }) }
      let response = try await echo.echo(.with { $0.text = "hi" }, options: CallOptions(metadata: ["authorization": "alice"]))
      #expect(response.text == "hi caller=alice")
    }
  }

  @Test("A call made while handling a call carries the remaining deadline")
  func deadlinePropagation() async throws {
    let downstream = Recorder()
    try await withServer(services: [ProbeService(recorder: downstream)]) { _, downstreamPort in
      try await withServer(services: [ProbeService(recorder: Recorder())]) { client, _ in
        let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
        _ = try await echo.echo(.with { $0.text = "call:\(downstreamPort)" }, options: CallOptions(timeout: .seconds(5)))
        let deadline = downstream.deadlines.withLock { $0.first ?? nil }
        #expect(deadline != nil && deadline! <= .seconds(5) && deadline! > .seconds(3))
      }
    }
  }

  @Test("Health Check and Watch follow status changes")
  func health() async throws {
    let health = HealthService(services: ["platform.echo.v1.EchoService"])
    try await withServer(services: [health, EchoService()]) { client, _ in
      let checker = Grpc_Health_V1_HealthClient(channel: client)
      let overall = try await checker.check(.with { $0.service = "" })
      #expect(overall.status == .serving)
      await expectStatus(.notFound) { _ = try await checker.check(.with { $0.service = "nope" }) }
      let statuses = try await checker.watch(.with { $0.service = "platform.echo.v1.EchoService" }) { responses in
        var statuses: [Grpc_Health_V1_HealthCheckResponse.ServingStatus] = []
        for try await response in responses {
          statuses.append(response.status)
          if statuses.count == 1 { health.setStatus(.notServing, forService: "platform.echo.v1.EchoService") }
          if statuses.count == 2 { break }
        }
        return statuses
      }
      #expect(statuses == [.serving, .notServing])
    }
  }

  @Test("Reflection lists services and returns files with their dependencies")
  func reflection() async throws {
    let reflection = try ReflectionService(
      descriptorSet: Array(Data(base64Encoded: PlatformDescriptors.fileDescriptorSetBase64)!),
      serviceNames: ["platform.echo.v1.EchoService"])
    try await withServer(services: [reflection, EchoService()]) { client, _ in
      let reflector = Grpc_Reflection_V1_ServerReflectionClient(channel: client)
      let answers = try await reflector.serverReflectionInfo { writer in
        try await writer.write(.with { $0.listServices = "" })
        try await writer.write(.with { $0.fileContainingSymbol = "platform.echo.v1.EchoService.Echo" })
        try await writer.write(.with { $0.fileContainingSymbol = "no.such.Symbol" })
      } responses: { responses in
        var answers: [Grpc_Reflection_V1_ServerReflectionResponse] = []
        for try await response in responses { answers.append(response) }
        return answers
      }
      #expect(answers.count == 3)
      #expect(answers[0].listServicesResponse.service.map(\.name) == Self.reflectedServices)
      let file = try Google_Protobuf_FileDescriptorProto(serializedBytes: answers[1].fileDescriptorResponse.fileDescriptorProto[0])
      #expect(file.name == "platform/echo/v1/echo.proto")
      #expect(answers[2].errorResponse.errorCode == Int32(StatusCode.notFound.rawValue))
    }
  }

  /// What a reflection service beside the echo service lists: both reflection versions too.
  static let reflectedServices = [
    "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "platform.echo.v1.EchoService",
  ]

  @Test("Reflection v1alpha answers as v1 does, and describes itself")
  func reflectionV1alpha() async throws {
    let reflection = try ReflectionService(
      descriptorSet: Array(Data(base64Encoded: PlatformDescriptors.fileDescriptorSetBase64)!),
      serviceNames: ["platform.echo.v1.EchoService"])
    try await withServer(services: [reflection, EchoService()]) { client, _ in
      // Through the channel with the v1alpha messages: the generated v1alpha client is
      // deprecated with its .proto file.
      let answers = try await client.bidirectionalStreaming(
        Grpc_Reflection_V1alpha_ServerReflection.Method.serverReflectionInfo, options: .defaults
      ) { (writer: RequestStreamWriter<Grpc_Reflection_V1alpha_ServerReflectionRequest>) in
        try await writer.write(.with { $0.listServices = "" })
        try await writer.write(.with { $0.fileContainingSymbol = "platform.echo.v1.EchoService.Echo" })
        try await writer.write(.with { $0.fileContainingSymbol = "grpc.reflection.v1alpha.ServerReflection" })
        try await writer.write(.with { $0.fileContainingSymbol = "no.such.Symbol" })
      } responses: { (responses: ClientResponseStream<Grpc_Reflection_V1alpha_ServerReflectionResponse>) in
        var answers: [Grpc_Reflection_V1alpha_ServerReflectionResponse] = []
        for try await response in responses { answers.append(response) }
        return answers
      }
      #expect(answers.count == 4)
      #expect(answers[0].originalRequest.listServices == "")
      #expect(answers[0].listServicesResponse.service.map(\.name) == Self.reflectedServices)
      let files = try answers[1...2].map {
        try Google_Protobuf_FileDescriptorProto(serializedBytes: $0.fileDescriptorResponse.fileDescriptorProto[0])
      }
      #expect(files.map(\.name) == ["platform/echo/v1/echo.proto", "grpc/reflection/v1alpha/reflection.proto"])
      #expect(answers[2].originalRequest.fileContainingSymbol == "grpc.reflection.v1alpha.ServerReflection")
      #expect(answers[3].errorResponse.errorCode == Int32(StatusCode.notFound.rawValue))
    }
  }

  @Test("A streaming handler's writes wait for a client that does not read")
  func backpressure() async throws {
    let recorder = Recorder()
    try await withServer(services: [ProbeService(recorder: recorder)]) { client, _ in
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      try await echo.expand(.with { $0.text = "" }) { responses in
        var iterator = responses.makeAsyncIterator()
        _ = try await iterator.next()
        // Stop reading: the server may fill the windows and its bounded buffer, then must wait.
        try await Task.sleep(for: .milliseconds(500))
        let written = recorder.written.load(ordering: .relaxed)
        // 1 MiB stream window + 64 KiB send buffer + socket buffers ≈ a few dozen messages.
        #expect(written < 200, "the handler wrote \(written) messages to a client that reads nothing")
        try await Task.sleep(for: .milliseconds(300))
        #expect(recorder.written.load(ordering: .relaxed) == written)
      }
    }
  }

  @Test("Graceful shutdown lets calls in flight finish and refuses new connections")
  func gracefulShutdown() async throws {
    let recorder = Recorder()
    let server = RPCServer(services: [ProbeService(recorder: recorder)], logger: quietLogger)
    let group = ServiceGroup(configuration: .init(services: [server], logger: .init(label: "test")))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { try await group.run() }
      let port = try await server.listeningPort
      let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(port)"]))
      let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
      let slow = Task { try await echo.echo(.with { $0.text = "sleep:500" }) }
      // Shut down only once the call is in its handler: a call still on its way when the
      // listener closes is rightly UNAVAILABLE, and on a loaded machine that can take a while.
      #expect(await eventually { recorder.running.load(ordering: .relaxed) == 1 })
      await group.triggerGracefulShutdown()
      let finished = try await slow.value
      #expect(finished.text == "sleep:500")
      try await tasks.next()
      let fresh = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(port)"]))
      await expectStatus(.unavailable) { _ = try await Platform_Echo_V1_EchoServiceClient(channel: fresh).echo(.with { $0.text = "late" }) }
      await client.close()
      await fresh.close()
    }
  }
}
