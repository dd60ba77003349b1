public import SwiftProtobuf

extension SwiftProtobuf.Message {
  /// This message serialized once, as an instance whose only content is those bytes, kept as
  /// unknown fields: serializing it again copies them instead of walking the fields (a
  /// `google.protobuf.Struct` costs more to encode than the rest of a call). Receivers decode
  /// the same fields; protobuf carries unknown fields through unchanged by design.
  ///
  /// Only for replies handed straight to the runtime, memoized by version: read in-process, the
  /// instance has no fields set.
  /// - Returns: the instance and its encoded size in bytes.
  public func preEncoded() throws -> (message: Self, bytes: Int) {
    let bytes: [UInt8] = try self.serializedBytes()
    // A message without fields keeps everything it reads as unknown fields.
    let carrier = try Google_Protobuf_Empty(serializedBytes: bytes)
    var encoded = Self()
    encoded.unknownFields = carrier.unknownFields
    return (encoded, bytes.count)
  }
}
