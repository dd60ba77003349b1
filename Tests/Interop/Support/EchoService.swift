public import GRPCRuntime

/// platform.echo.v1.EchoService: the benchmark's service.
public struct EchoService: Platform_Echo_V1_EchoServiceHandler {
  public init() {}

  public func echo(_ request: Platform_Echo_V1_EchoRequest, context: ServerContext) async throws -> Platform_Echo_V1_EchoResponse {
    var response = Platform_Echo_V1_EchoResponse()
    response.text = request.text
    return response
  }

  public func expand(
    _ request: Platform_Echo_V1_EchoRequest,
    responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>,
    context: ServerContext
  ) async throws {
    for word in request.text.split(separator: " ") {
      var response = Platform_Echo_V1_EchoResponse()
      response.text = String(word)
      try await responses.write(response)
    }
  }

  public func collect(
    _ requests: RequestStream<Platform_Echo_V1_EchoRequest>,
    context: ServerContext
  ) async throws -> Platform_Echo_V1_EchoResponse {
    var texts: [String] = []
    for try await request in requests { texts.append(request.text) }
    var response = Platform_Echo_V1_EchoResponse()
    response.text = texts.joined(separator: " ")
    return response
  }

  public func update(
    _ requests: RequestStream<Platform_Echo_V1_EchoRequest>,
    responses: ResponseStreamWriter<Platform_Echo_V1_EchoResponse>,
    context: ServerContext
  ) async throws {
    for try await request in requests {
      var response = Platform_Echo_V1_EchoResponse()
      response.text = request.text
      try await responses.write(response)
    }
  }
}
