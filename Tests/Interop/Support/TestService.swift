public import GRPCRuntime
internal import Foundation
internal import SwiftProtobuf

/// grpc.testing.TestService as the gRPC interop specification describes it.
public struct TestService: Grpc_Testing_TestServiceHandler {
  public init() {}

  static let echoInitialKey = "x-grpc-test-echo-initial"
  static let echoTrailingKey = "x-grpc-test-echo-trailing-bin"

  /// Echoes the interop metadata keys back as initial and trailing metadata.
  private func echoMetadata(_ context: ServerContext) {
    if let value = context.requestMetadata.firstString(forKey: Self.echoInitialKey) {
      var initial = context.initialMetadata
      initial.addString(value, forKey: Self.echoInitialKey)
      context.initialMetadata = initial
    }
    let trailing = context.requestMetadata.binaryValues(forKey: Self.echoTrailingKey)
    if !trailing.isEmpty {
      var metadata = context.trailingMetadata
      for value in trailing { metadata.addBinary(value, forKey: Self.echoTrailingKey) }
      context.trailingMetadata = metadata
    }
  }

  private func check(_ status: Grpc_Testing_EchoStatus) throws {
    guard status.code != 0 else { return }
    throw RPCError(StatusCode(rawValue: Int(status.code)) ?? .unknown, status.message)
  }

  static func payload(size: Int32) -> Grpc_Testing_Payload {
    var payload = Grpc_Testing_Payload()
    payload.body = Data(count: Int(size))
    return payload
  }

  public func emptyCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
    self.echoMetadata(context)
    return Grpc_Testing_Empty()
  }

  public func unaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
    self.echoMetadata(context)
    try self.check(request.responseStatus)
    if request.expectCompressed.value && context.requestEncoding != .gzip {
      throw RPCError(.invalidArgument, "Expected a compressed request")
    }
    if request.hasResponseCompressed {
      context.compressResponses = request.responseCompressed.value
    }
    var response = Grpc_Testing_SimpleResponse()
    response.payload = Self.payload(size: request.responseSize)
    return response
  }

  public func streamingOutputCall(
    _ request: Grpc_Testing_StreamingOutputCallRequest,
    responses: ResponseStreamWriter<Grpc_Testing_StreamingOutputCallResponse>,
    context: ServerContext
  ) async throws {
    self.echoMetadata(context)
    for parameters in request.responseParameters {
      try await self.respond(parameters, to: responses)
    }
    try self.check(request.responseStatus)
  }

  private func respond(
    _ parameters: Grpc_Testing_ResponseParameters,
    to responses: ResponseStreamWriter<Grpc_Testing_StreamingOutputCallResponse>
  ) async throws {
    if parameters.intervalUs > 0 {
      try await Task.sleep(for: .microseconds(Int64(parameters.intervalUs)))
    }
    var response = Grpc_Testing_StreamingOutputCallResponse()
    response.payload = Self.payload(size: parameters.size)
    try await responses.write(response)
  }

  public func streamingInputCall(
    _ requests: RequestStream<Grpc_Testing_StreamingInputCallRequest>,
    context: ServerContext
  ) async throws -> Grpc_Testing_StreamingInputCallResponse {
    self.echoMetadata(context)
    var total = 0
    for try await request in requests { total += request.payload.body.count }
    var response = Grpc_Testing_StreamingInputCallResponse()
    response.aggregatedPayloadSize = Int32(total)
    return response
  }

  public func fullDuplexCall(
    _ requests: RequestStream<Grpc_Testing_StreamingOutputCallRequest>,
    responses: ResponseStreamWriter<Grpc_Testing_StreamingOutputCallResponse>,
    context: ServerContext
  ) async throws {
    self.echoMetadata(context)
    for try await request in requests {
      try self.check(request.responseStatus)
      for parameters in request.responseParameters {
        try await self.respond(parameters, to: responses)
      }
    }
  }

  public func halfDuplexCall(
    _ requests: RequestStream<Grpc_Testing_StreamingOutputCallRequest>,
    responses: ResponseStreamWriter<Grpc_Testing_StreamingOutputCallResponse>,
    context: ServerContext
  ) async throws {
    self.echoMetadata(context)
    var buffered: [Grpc_Testing_StreamingOutputCallRequest] = []
    for try await request in requests { buffered.append(request) }
    for request in buffered {
      for parameters in request.responseParameters {
        try await self.respond(parameters, to: responses)
      }
    }
  }

  public func unimplementedCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
    throw RPCError(.unimplemented, "UnimplementedCall is, by design, not implemented")
  }
}
