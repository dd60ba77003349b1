internal import CNGHTTP2
#if canImport(Glibc)
internal import Glibc
#endif

/// A header block being built for nghttp2: names and values in one byte buffer, handed to
/// nghttp2 as an `nghttp2_nv` array. nghttp2 copies the bytes during `submit_*`, so the list
/// only has to live for that call.
struct HeaderList {
  private var bytes: [UInt8] = []
  private var fields: [(name: Range<Int>, value: Range<Int>)] = []

  init() {
    self.bytes.reserveCapacity(256)
    self.fields.reserveCapacity(8)
  }

  mutating func add(_ name: StaticString, _ value: StaticString) {
    let nameRange = self.append(name)
    let valueRange = self.append(value)
    self.fields.append((nameRange, valueRange))
  }

  mutating func add(_ name: StaticString, _ value: String) {
    let nameRange = self.append(name)
    let start = self.bytes.count
    self.bytes.append(contentsOf: value.utf8)
    self.fields.append((nameRange, start..<self.bytes.count))
  }

  mutating func add(_ name: String, _ value: String) {
    let nameStart = self.bytes.count
    self.bytes.append(contentsOf: name.utf8)
    let valueStart = self.bytes.count
    self.bytes.append(contentsOf: value.utf8)
    self.fields.append((nameStart..<valueStart, valueStart..<self.bytes.count))
  }

  mutating func add(metadata: Metadata) {
    metadata.forEachWireHeader { name, value in self.add(name, value) }
  }

  /// Adds `grpc-status`, `grpc-message` and trailing metadata.
  mutating func addStatus(_ code: StatusCode, message: String, metadata: Metadata) {
    switch code {
    case .ok: self.add("grpc-status", "0")
    default: self.add("grpc-status", String(code.rawValue))
    }
    if !message.isEmpty {
      self.add("grpc-message", PercentEncoding.encode(message))
    }
    self.add(metadata: metadata)
  }

  private mutating func append(_ string: StaticString) -> Range<Int> {
    let start = self.bytes.count
    string.withUTF8Buffer { self.bytes.append(contentsOf: $0) }
    return start..<self.bytes.count
  }

  /// Calls `body` with the block as an `nghttp2_nv` array.
  func withNameValuePairs<Result>(
    _ body: (UnsafePointer<nghttp2_nv>, Int) -> Result
  ) -> Result {
    self.bytes.withUnsafeBufferPointer { storage in
      let base = UnsafeMutablePointer(mutating: storage.baseAddress!)
      var pairs = [nghttp2_nv]()
      pairs.reserveCapacity(self.fields.count)
      for field in self.fields {
        pairs.append(
          nghttp2_nv(
            name: base + field.name.lowerBound,
            value: base + field.value.lowerBound,
            namelen: field.name.count,
            valuelen: field.value.count,
            flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
          ))
      }
      return pairs.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
    }
  }
}

extension StaticHeaderBlock {
  /// Calls `body` with `block` followed by `metadata`'s headers as one `nghttp2_nv` array, built
  /// in temporary memory (on the stack when small): response headers that carry metadata (every
  /// platform call sends `x-trace-id`) cost no heap allocation. nghttp2 copies the metadata's
  /// bytes during the `submit_*` call `body` makes.
  ///
  /// The metadata goes out without HPACK indexing: a server's response-header metadata is in
  /// practice different on every call (trace and request ids), and indexing a value that never
  /// comes again costs each side a table insertion and an eviction (two allocations a call on
  /// the server, measured with a uprobe on malloc) to save nothing.
  static func with<Result>(
    _ block: UnsafeBufferPointer<nghttp2_nv>, metadata: Metadata,
    _ body: (UnsafePointer<nghttp2_nv>, Int) -> Result
  ) -> Result {
    var fieldCount = 0
    var byteCount = 0
    metadata.forEachWireHeader { name, value in
      fieldCount += 1
      byteCount += name.utf8.count + value.utf8.count
    }
    return withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: block.count + fieldCount) { pairs in
      withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(byteCount, 1)) { bytes in
        _ = pairs.initialize(fromContentsOf: block)
        var index = block.count
        var offset = 0
        metadata.forEachWireHeader { name, value in
          let name = Self.copy(name, into: bytes, at: &offset)
          let value = Self.copy(value, into: bytes, at: &offset)
          pairs[index] = nghttp2_nv(
            name: name.baseAddress, value: value.baseAddress, namelen: name.count, valuelen: value.count,
            flags: UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue))
          index += 1
        }
        return body(UnsafePointer(pairs.baseAddress!), index)
      }
    }
  }

  private static func copy(
    _ text: String, into bytes: UnsafeMutableBufferPointer<UInt8>, at offset: inout Int
  ) -> UnsafeMutableBufferPointer<UInt8> {
    let count = text.utf8.count
    let target = UnsafeMutableBufferPointer(rebasing: bytes[offset..<offset + count])
    _ = target.initialize(fromContentsOf: text.utf8)
    offset += count
    return target
  }
}

/// Byte-wise comparison of a received header name or value with a literal.
@inline(__always)
func bytesEqual(_ pointer: UnsafePointer<UInt8>, _ length: Int, _ literal: StaticString) -> Bool {
  length == literal.utf8CodeUnitCount && memcmp(pointer, literal.utf8Start, length) == 0
}

@inline(__always)
func bytesHavePrefix(_ pointer: UnsafePointer<UInt8>, _ length: Int, _ literal: StaticString) -> Bool {
  length >= literal.utf8CodeUnitCount && memcmp(pointer, literal.utf8Start, literal.utf8CodeUnitCount) == 0
}

extension String {
  init(_ pointer: UnsafePointer<UInt8>, length: Int) {
    self = String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
  }
}

/// nghttp2's constants as the integer types its structures use.
enum NG {
  static let headersFrame = UInt8(NGHTTP2_HEADERS.rawValue)
  static let dataFrame = UInt8(NGHTTP2_DATA.rawValue)
  static let pingFrame = UInt8(NGHTTP2_PING.rawValue)
  static let goawayFrame = UInt8(NGHTTP2_GOAWAY.rawValue)
  static let settingsFrame = UInt8(NGHTTP2_SETTINGS.rawValue)
  static let rstStreamFrame = UInt8(NGHTTP2_RST_STREAM.rawValue)
  static let endStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)
  static let ack = UInt8(NGHTTP2_FLAG_ACK.rawValue)
  static let none = UInt8(NGHTTP2_FLAG_NONE.rawValue)
  static let deferred = Int(NGHTTP2_ERR_DEFERRED.rawValue)
  static let temporalCallbackFailure = Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
  static let callbackFailure = Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
  static let dataFlagEOF = UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
  static let dataFlagNoEndStream = UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue)
  static let noError = UInt32(NGHTTP2_NO_ERROR.rawValue)
  static let cancel = UInt32(NGHTTP2_CANCEL.rawValue)
  static let protocolError = UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue)
  static let internalError = UInt32(NGHTTP2_INTERNAL_ERROR.rawValue)
  static let refusedStream = UInt32(NGHTTP2_REFUSED_STREAM.rawValue)
  static let enhanceYourCalm = UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
  static let requestCategory = NGHTTP2_HCAT_REQUEST
  static let responseCategory = NGHTTP2_HCAT_RESPONSE
}

/// The settings a session announces.
struct HTTP2Settings {
  var maxConcurrentStreams: Int
  var initialWindowSize: Int
  var maxFrameSize: Int
  var maxHeaderListSize: Int
  var enablePush: Bool

  /// Submits the SETTINGS frame and raises the connection window to `connectionWindowSize`.
  func submit(to session: OpaquePointer, connectionWindowSize: Int) {
    var entries = [
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
        value: UInt32(self.maxConcurrentStreams)),
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
        value: UInt32(self.initialWindowSize)),
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue),
        value: UInt32(self.maxFrameSize)),
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
        value: UInt32(self.maxHeaderListSize)),
      nghttp2_settings_entry(
        settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue),
        value: self.enablePush ? 1 : 0),
    ]
    _ = entries.withUnsafeMutableBufferPointer {
      nghttp2_submit_settings(session, NG.none, $0.baseAddress, $0.count)
    }
    _ = nghttp2_session_set_local_window_size(session, NG.none, 0, Int32(connectionWindowSize))
  }
}

/// Header blocks every call sends, built once in permanent memory and handed to nghttp2 without
/// copying (`NO_COPY` flags): the response headers and the OK trailers of a call without custom
/// metadata cost no allocation.
enum StaticHeaderBlock {
  nonisolated(unsafe) static let response = make([
    (":status", "200"), ("content-type", "application/grpc"), ("grpc-accept-encoding", MessageEncoding.acceptHeader),
  ])
  nonisolated(unsafe) static let gzipResponse = make([
    (":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "gzip"),
    ("grpc-accept-encoding", MessageEncoding.acceptHeader),
  ])
  nonisolated(unsafe) static let okTrailers = make([("grpc-status", "0")])

  private static func make(_ fields: [(String, String)]) -> UnsafeBufferPointer<nghttp2_nv> {
    let pairs = UnsafeMutableBufferPointer<nghttp2_nv>.allocate(capacity: fields.count)
    for (index, (name, value)) in fields.enumerated() {
      let nameBytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: name.utf8.count)
      _ = nameBytes.initialize(from: name.utf8)
      let valueBytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: value.utf8.count)
      _ = valueBytes.initialize(from: value.utf8)
      pairs[index] = nghttp2_nv(
        name: nameBytes.baseAddress, value: valueBytes.baseAddress,
        namelen: nameBytes.count, valuelen: valueBytes.count,
        flags: UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue))
    }
    return UnsafeBufferPointer(pairs)
  }
}
