internal import CZlib

/// A message encoding of `grpc-encoding`; identity and gzip are supported.
public enum MessageEncoding: String, Sendable, Hashable {
  case identity
  case gzip

  /// The value of `grpc-accept-encoding` this runtime sends.
  static let acceptHeader = "gzip,identity"

  /// The encoding named by a `grpc-encoding` header: nil for one this runtime does not support.
  init?(headerValue: some StringProtocol) {
    switch headerValue {
    case "identity": self = .identity
    case "gzip": self = .gzip
    default: return nil
    }
  }

  /// Whether a `grpc-accept-encoding` header lists gzip.
  static func acceptsGzip(_ header: UnsafeBufferPointer<UInt8>) -> Bool {
    header.split(separator: UInt8(ascii: ",")).contains { item in
      let trimmed = item.drop { $0 == UInt8(ascii: " ") }
      return trimmed.starts(with: "gzip".utf8)
        && trimmed.dropFirst(4).allSatisfy { $0 == UInt8(ascii: " ") }
    }
  }
}

/// gzip for message payloads, over zlib.
enum Gzip {
  static func compress(_ input: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    // windowBits 15 + 16 asks zlib for the gzip wrapper.
    guard deflateInit2_(
      &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
      ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
    else { fatalError("zlib could not initialise a deflate stream") }
    defer { deflateEnd(&stream) }
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))))
    var input = input
    let produced = input.withUnsafeMutableBufferPointer { inBuffer in
      output.withUnsafeMutableBufferPointer { outBuffer in
        stream.next_in = inBuffer.baseAddress
        stream.avail_in = UInt32(inBuffer.count)
        stream.next_out = outBuffer.baseAddress
        stream.avail_out = UInt32(outBuffer.count)
        let result = deflate(&stream, Z_FINISH)
        precondition(result == Z_STREAM_END, "deflateBound was too small")
        return outBuffer.count - Int(stream.avail_out)
      }
    }
    output.removeLast(output.count - produced)
    return output
  }

  /// Inflates a gzip payload, refusing to produce more than `limit` bytes: a small compressed
  /// message must not expand into unbounded memory.
  static func decompress(_ input: [UInt8], limit: Int) throws(RPCError) -> [UInt8] {
    var stream = z_stream()
    guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
    else { throw RPCError(.internal, "Could not initialise gzip decompression") }
    defer { inflateEnd(&stream) }
    var output = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    var input = input
    var status: Int32 = Z_OK
    input.withUnsafeMutableBufferPointer { inBuffer in
      stream.next_in = inBuffer.baseAddress
      stream.avail_in = UInt32(inBuffer.count)
      while status == Z_OK && output.count <= limit {
        chunk.withUnsafeMutableBufferPointer { outBuffer in
          stream.next_out = outBuffer.baseAddress
          stream.avail_out = UInt32(outBuffer.count)
          status = inflate(&stream, Z_NO_FLUSH)
          output.append(contentsOf: outBuffer[0..<(outBuffer.count - Int(stream.avail_out))])
        }
        if status == Z_BUF_ERROR && stream.avail_in == 0 { break }
      }
    }
    guard output.count <= limit else {
      throw RPCError(
        .resourceExhausted, "Decompressed message exceeds the limit of \(limit) bytes")
    }
    guard status == Z_STREAM_END else {
      throw RPCError(.internal, "Could not decompress a gzip message")
    }
    return output
  }
}
