public import SwiftProtobuf

/// A unary method whose message types are known only at run time: tools that call a method
/// named on their command line (`platform-load`) take its request as protobuf JSON.
/// Generated code lists one per unary method (`<Service>.unaryCallers`).
public struct UnaryMethodCaller: Sendable {
  public let method: MethodDescriptor
  private let parse: @Sendable (String, JSONDecodingOptions) throws -> any Message
  private let send: @Sendable (any RPCChannel, any Message, CallOptions) async throws -> any Message

  public init<Request: Message, Response: Message>(
    _ method: MethodDescriptor, request: Request.Type, response: Response.Type
  ) {
    self.method = method
    self.parse = { json, options in try Request(jsonString: json, options: options) }
    self.send = { channel, request, options in
      guard let request = request as? Request else {
        throw RPCError(.invalidArgument, "\(method) takes \(Request.protoMessageName), not \(type(of: request).protoMessageName)")
      }
      let response: Response = try await channel.unary(method, request: request, options: options)
      return response
    }
  }

  /// The request message of `json` (protobuf JSON mapping; unknown fields are an error).
  public func request(json: String) throws -> any Message {
    try self.parse(json, JSONDecodingOptions())
  }

  /// Calls the method with `request`, one that `request(json:)` returned (another message type
  /// is INVALID_ARGUMENT, before anything is sent).
  public func call(_ request: any Message, on channel: any RPCChannel, options: CallOptions) async throws -> any Message {
    try await self.send(channel, request, options)
  }
}
