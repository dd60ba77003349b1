public import GRPCRuntime
internal import SwiftProtobuf

/// The standard gRPC interop test cases, run by our client against any TestService server.
/// (https://github.com/grpc/grpc/blob/master/doc/interop-test-descriptions.md)
public enum InteropTestCase: String, CaseIterable, Sendable {
  case emptyUnary = "empty_unary"
  case largeUnary = "large_unary"
  case clientCompressedUnary = "client_compressed_unary"
  case serverCompressedUnary = "server_compressed_unary"
  case echo
  case clientStreaming = "client_streaming"
  case serverStreaming = "server_streaming"
  case pingPong = "ping_pong"
  case emptyStream = "empty_stream"
  case customMetadata = "custom_metadata"
  case statusCodeAndMessage = "status_code_and_message"
  case specialStatusMessage = "special_status_message"
  case unimplementedMethod = "unimplemented_method"
  case unimplementedService = "unimplemented_service"
  case cancelAfterBegin = "cancel_after_begin"
  case cancelAfterFirstResponse = "cancel_after_first_response"
  case timeoutOnSleepingServer = "timeout_on_sleeping_server"

  /// A failed expectation, naming what was expected.
  public struct Failure: Error, CustomStringConvertible {
    public var description: String
  }

  /// Runs the case; throws `Failure` (or the call's error) when the server does not behave as
  /// the specification says.
  public func run(using channel: any RPCChannel) async throws {
    let client = Grpc_Testing_TestServiceClient(channel: channel)
    switch self {
    case .emptyUnary:
      _ = try await client.emptyCall(Grpc_Testing_Empty())

    case .largeUnary, .clientCompressedUnary:
      var request = Grpc_Testing_SimpleRequest()
      request.responseSize = 314_159
      request.payload = TestService.payload(size: 271_828)
      let options = CallOptions(compression: self == .clientCompressedUnary ? .gzip : .identity)
      let response = try await client.unaryCall(request, options: options)
      try expect(response.payload.body.count == 314_159, "a 314159-byte payload, got \(response.payload.body.count)")
      try expect(response.payload.body.allSatisfy { $0 == 0 }, "a zero-filled payload")

    case .serverCompressedUnary:
      for compressed in [true, false] {
        var request = Grpc_Testing_SimpleRequest()
        request.responseSize = 314_159
        request.payload = TestService.payload(size: 271_828)
        request.responseCompressed = Grpc_Testing_BoolValue.with { $0.value = compressed }
        let response = try await client.unaryCall(request)
        try expect(response.payload.body.count == 314_159, "a 314159-byte payload, got \(response.payload.body.count)")
      }

    case .echo:
      let echo = Platform_Echo_V1_EchoServiceClient(channel: channel)
      let request = Platform_Echo_V1_EchoRequest.with { $0.text = "hello interop world" }
      let unary = try await echo.echo(request)
      try expect(unary.text == request.text, "Echo to return the text, got \(unary.text)")
      let words = try await echo.expand(request) { responses in
        var words: [String] = []
        for try await response in responses { words.append(response.text) }
        return words
      }
      try expect(words == ["hello", "interop", "world"], "Expand to return the words, got \(words)")
      let collected = try await echo.collect { writer in
        for word in ["a", "b", "c"] { try await writer.write(.with { $0.text = word }) }
      }
      try expect(collected.text == "a b c", "Collect to join the texts, got \(collected.text)")
      let updates = try await echo.update { writer in
        for word in ["x", "y"] { try await writer.write(.with { $0.text = word }) }
      } responses: { responses in
        var texts: [String] = []
        for try await response in responses { texts.append(response.text) }
        return texts
      }
      try expect(updates == ["x", "y"], "Update to echo each text, got \(updates)")

    case .clientStreaming:
      let response = try await client.streamingInputCall { writer in
        for size in [27182, 8, 1828, 45904] as [Int32] {
          var request = Grpc_Testing_StreamingInputCallRequest()
          request.payload = TestService.payload(size: size)
          try await writer.write(request)
        }
      }
      try expect(response.aggregatedPayloadSize == 74922, "aggregated size 74922, got \(response.aggregatedPayloadSize)")

    case .serverStreaming:
      let sizes: [Int32] = [31415, 9, 2653, 58979]
      var request = Grpc_Testing_StreamingOutputCallRequest()
      request.responseParameters = sizes.map { size in
        var parameters = Grpc_Testing_ResponseParameters()
        parameters.size = size
        return parameters
      }
      let received = try await client.streamingOutputCall(request) { responses in
        var received: [Int] = []
        for try await response in responses { received.append(response.payload.body.count) }
        return received
      }
      try expect(received == sizes.map(Int.init), "responses of \(sizes) bytes, got \(received)")

    case .pingPong:
      let requestSizes: [Int32] = [27182, 8, 1828, 45904]
      let responseSizes: [Int32] = [31415, 9, 2653, 58979]
      let (requests, continuation) = AsyncStream.makeStream(of: Grpc_Testing_StreamingOutputCallRequest.self)
      let received = try await client.fullDuplexCall { writer in
        for try await request in requests { try await writer.write(request) }
      } responses: { responses in
        var received: [Int] = []
        var iterator = responses.makeAsyncIterator()
        for (requestSize, responseSize) in zip(requestSizes, responseSizes) {
          var request = Grpc_Testing_StreamingOutputCallRequest()
          var parameters = Grpc_Testing_ResponseParameters()
          parameters.size = responseSize
          request.responseParameters = [parameters]
          request.payload = TestService.payload(size: requestSize)
          continuation.yield(request)
          guard let response = try await iterator.next() else { break }
          received.append(response.payload.body.count)
        }
        continuation.finish()
        while try await iterator.next() != nil {}
        return received
      }
      try expect(received == responseSizes.map(Int.init), "responses of \(responseSizes) bytes, got \(received)")

    case .emptyStream:
      let count = try await client.fullDuplexCall { _ in } responses: { responses in
        var count = 0
        for try await _ in responses { count += 1 }
        return count
      }
      try expect(count == 0, "no responses, got \(count)")

    case .customMetadata:
      let trailingValue: [UInt8] = [0xab, 0xab, 0xab]
      var metadata = Metadata()
      metadata.addString("test_initial_metadata_value", forKey: TestService.echoInitialKey)
      metadata.addBinary(trailingValue, forKey: TestService.echoTrailingKey)
      var request = Grpc_Testing_SimpleRequest()
      request.responseSize = 314_159
      request.payload = TestService.payload(size: 271_828)
      let unary: ClientResponse<Grpc_Testing_SimpleResponse> = try await channel.unaryCall(
        Grpc_Testing_TestService.Method.unaryCall, request: request, options: CallOptions(metadata: metadata))
      try expectEchoed(unary.initialMetadata, unary.trailingMetadata, trailingValue)
      let (initial, trailing) = try await client.fullDuplexCall(options: CallOptions(metadata: metadata)) { writer in
        var request = Grpc_Testing_StreamingOutputCallRequest()
        var parameters = Grpc_Testing_ResponseParameters()
        parameters.size = 314_159
        request.responseParameters = [parameters]
        request.payload = TestService.payload(size: 271_828)
        try await writer.write(request)
      } responses: { responses in
        for try await _ in responses {}
        return (responses.initialMetadata, responses.trailingMetadata)
      }
      try expectEchoed(initial, trailing, trailingValue)

    case .statusCodeAndMessage, .specialStatusMessage:
      let message =
        self == .statusCodeAndMessage
        ? "test status message" : "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
      var status = Grpc_Testing_EchoStatus()
      status.code = 2
      status.message = message
      var request = Grpc_Testing_SimpleRequest()
      request.responseStatus = status
      try await expectStatus(.unknown, message: message) { _ = try await client.unaryCall(request) }
      if self == .statusCodeAndMessage {
        let streamingRequest = Grpc_Testing_StreamingOutputCallRequest.with { $0.responseStatus = status }
        try await expectStatus(.unknown, message: message) {
          try await client.fullDuplexCall { writer in
            try await writer.write(streamingRequest)
          } responses: { responses in
            for try await _ in responses {}
          }
        }
      }

    case .unimplementedMethod:
      try await expectStatus(.unimplemented) { _ = try await client.unimplementedCall(Grpc_Testing_Empty()) }

    case .unimplementedService:
      let other = Grpc_Testing_UnimplementedServiceClient(channel: channel)
      try await expectStatus(.unimplemented) { _ = try await other.unimplementedCall(Grpc_Testing_Empty()) }

    case .cancelAfterBegin:
      let call = Task {
        try await client.streamingInputCall { _ in
          try await Task.sleep(for: .seconds(30))
        }
      }
      try await Task.sleep(for: .milliseconds(50))
      call.cancel()
      try await expectStatus(.cancelled) { _ = try await call.value }

    case .cancelAfterFirstResponse:
      let call = Task {
        try await client.fullDuplexCall { writer in
          var request = Grpc_Testing_StreamingOutputCallRequest()
          var parameters = Grpc_Testing_ResponseParameters()
          parameters.size = 31415
          request.responseParameters = [parameters]
          request.payload = TestService.payload(size: 27182)
          try await writer.write(request)
          try await Task.sleep(for: .seconds(30))
        } responses: { responses in
          var count = 0
          for try await _ in responses {
            count += 1
            withUnsafeCurrentTask { $0?.cancel() }
          }
          return count
        }
      }
      try await expectStatus(.cancelled) { _ = try await call.value }

    case .timeoutOnSleepingServer:
      try await expectStatus(.deadlineExceeded) {
        try await client.fullDuplexCall(options: CallOptions(timeout: .milliseconds(1))) { writer in
          var request = Grpc_Testing_StreamingOutputCallRequest()
          request.payload = TestService.payload(size: 27182)
          try await writer.write(request)
          try await Task.sleep(for: .seconds(30))
        } responses: { responses in
          for try await _ in responses {}
        }
      }
    }
  }
}

private func expect(_ condition: Bool, _ expectation: @autoclosure () -> String) throws {
  if !condition { throw InteropTestCase.Failure(description: "expected \(expectation())") }
}

private func expectEchoed(_ initial: Metadata, _ trailing: Metadata, _ trailingValue: [UInt8]) throws {
  let echoed = initial.firstString(forKey: TestService.echoInitialKey)
  try expect(echoed == "test_initial_metadata_value", "initial metadata echoed, got \(echoed ?? "nothing")")
  let trailingEchoed = trailing.binaryValues(forKey: TestService.echoTrailingKey)
  try expect(trailingEchoed == [trailingValue], "trailing metadata echoed, got \(trailingEchoed)")
}

private func expectStatus(
  _ code: StatusCode, message: String? = nil, _ body: () async throws -> Void
) async throws {
  do {
    try await body()
  } catch let error as RPCError {
    try expect(error.code == code, "status \(code), got \(error)")
    if let message { try expect(error.message == message, "message \(message.debugDescription), got \(error.message.debugDescription)") }
    return
  } catch is CancellationError where code == .cancelled {
    return
  }
  throw InteropTestCase.Failure(description: "expected status \(code), but the call succeeded")
}
