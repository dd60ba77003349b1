internal import NIOCore

/// Why a reply could not be read: the server broke the protocol or exceeded a limit. The
/// connection it came on cannot be trusted to stay in step and is closed.
struct RESPProtocolError: Error, Equatable, CustomStringConvertible {
  var description: String
}

/// Reads RESP2 replies from a byte stream without recursion, within a byte budget and a
/// nesting limit, so a broken or hostile server cannot make the client allocate without bound
/// or run out of stack. A reply that arrives in many reads is parsed once: what was read of it
/// (the open arrays and the offset) is kept until the rest comes.
struct RESPParser: Sendable {
  /// The largest reply, all of its bytes counted (a bulk string, or an array with everything in
  /// it).
  var maxReplyBytes: Int
  /// How deep arrays may nest (the top-level array is 1).
  var maxDepth: Int

  /// A status, error or integer line longer than this is refused before its end arrives.
  static let maxLineBytes = 64 * 1024

  private struct OpenArray: Sendable {
    var remaining: Int
    var elements: [RESPValue]
  }

  /// Where the reply read so far stopped: the arrays it opened and the offset of the next
  /// element from the buffer's reader index.
  private var partial: (open: [OpenArray], position: Int)?

  init(maxReplyBytes: Int, maxDepth: Int) {
    self.maxReplyBytes = maxReplyBytes
    self.maxDepth = maxDepth
  }

  /// Reads one whole reply from the front of `buffer` and consumes its bytes.
  ///
  /// Between calls `buffer` may only grow at its end (more bytes of the same stream); its
  /// reader index stays at the start of the reply until the reply is complete.
  /// - Returns: the reply, or nil (consuming nothing) while `buffer` holds only part of one.
  /// - Throws: `RESPProtocolError` when the bytes are not RESP2 or exceed a limit.
  mutating func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
    let source = buffer
    let maxReplyBytes = self.maxReplyBytes
    let maxDepth = self.maxDepth
    var saved = self.partial ?? ([], 0)
    self.partial = nil
    let result: (RESPValue, Int)? = try buffer.withUnsafeReadableBytes { bytes in
      let count = bytes.count
      var position = saved.position
      var open = saved.open
      saved.open = []  // one owner, so appending does not copy
      while true {
        let elementStart = position
        guard position < count else {
          saved = (open, elementStart)
          return nil
        }
        let type = bytes[position]
        guard let lineEnd = try Self.lineEnd(in: bytes, from: position + 1) else {
          if count - position > min(Self.maxLineBytes, maxReplyBytes) + 1 {
            throw RESPProtocolError(description: "a reply line has no end within \(min(Self.maxLineBytes, maxReplyBytes)) bytes")
          }
          saved = (open, elementStart)
          return nil
        }
        let line = UnsafeRawBufferPointer(rebasing: bytes[(position + 1)..<lineEnd])
        position = lineEnd + 2
        var value: RESPValue
        switch type {
        case UInt8(ascii: "+"):
          value = .simpleString(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: "-"):
          value = .error(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: ":"):
          guard let integer = Self.integer(line) else { throw RESPProtocolError(description: "a malformed integer reply") }
          value = .integer(integer)
        case UInt8(ascii: "$"):
          guard let length = Self.integer(line), length >= -1 else {
            throw RESPProtocolError(description: "a malformed bulk string length")
          }
          if length == -1 {
            value = .bulkString(nil)
            break
          }
          guard length <= maxReplyBytes - position else {
            throw RESPProtocolError(description: "a reply larger than the limit of \(maxReplyBytes) bytes")
          }
          let byteCount = Int(length)
          guard count - position >= byteCount + 2 else {
            saved = (open, elementStart)
            return nil
          }
          guard bytes[position + byteCount] == UInt8(ascii: "\r"), bytes[position + byteCount + 1] == UInt8(ascii: "\n") else {
            throw RESPProtocolError(description: "a bulk string not ended by CRLF")
          }
          value = .bulkString(source.getSlice(at: source.readerIndex + position, length: byteCount))
          position += byteCount + 2
        case UInt8(ascii: "*"):
          guard let elementCount = Self.integer(line), elementCount >= -1 else {
            throw RESPProtocolError(description: "a malformed array length")
          }
          if elementCount == -1 {
            value = .array(nil)
            break
          }
          // Every element takes at least 3 bytes ("+\r\n"): a count that cannot fit the budget is
          // refused before anything is reserved for it.
          guard elementCount <= (maxReplyBytes - position) / 3 else {
            throw RESPProtocolError(description: "a reply larger than the limit of \(maxReplyBytes) bytes")
          }
          if elementCount == 0 {
            value = .array([])
            break
          }
          guard open.count < maxDepth else {
            throw RESPProtocolError(description: "arrays nested deeper than \(maxDepth) levels")
          }
          var elements: [RESPValue] = []
          elements.reserveCapacity(min(Int(elementCount), 1024))
          open.append(OpenArray(remaining: Int(elementCount), elements: elements))
          continue
        default:
          throw RESPProtocolError(description: "an unknown reply type byte \(type)")
        }
        guard position <= maxReplyBytes else {
          throw RESPProtocolError(description: "a reply larger than the limit of \(maxReplyBytes) bytes")
        }
        // Attach the value to the arrays it completes.
        while true {
          guard var top = open.popLast() else { return (value, position) }
          top.elements.append(value)
          top.remaining -= 1
          if top.remaining > 0 {
            open.append(top)
            break
          }
          value = .array(top.elements)
        }
      }
    }
    guard let (value, length) = result else {
      self.partial = saved
      return nil
    }
    buffer.moveReaderIndex(forwardBy: length)
    return value
  }

  /// The index of the CR of the first CRLF at or after `start`.
  private static func lineEnd(in bytes: UnsafeRawBufferPointer, from start: Int) throws -> Int? {
    var index = start
    let last = bytes.count - 1
    while index < last {
      if bytes[index] == UInt8(ascii: "\r") {
        guard bytes[index + 1] == UInt8(ascii: "\n") else { throw RESPProtocolError(description: "a CR without LF in a reply line") }
        return index
      }
      index += 1
    }
    return nil
  }

  /// A strict decimal integer: an optional minus sign and 1 to 19 digits, no other characters.
  private static func integer(_ line: UnsafeRawBufferPointer) -> Int64? {
    var digits = line[...]
    var negative = false
    if digits.first == UInt8(ascii: "-") {
      negative = true
      digits = digits.dropFirst()
    }
    guard !digits.isEmpty, digits.count <= 19 else { return nil }
    var value: Int64 = 0
    for byte in digits {
      guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
      let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
      let (sum, overflow2) = times10.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
      guard !overflow1, !overflow2 else { return nil }
      value = sum
    }
    return negative ? -value : value
  }
}
