#if canImport(Glibc)
internal import Glibc
#endif

/// Custom request headers as received, kept as raw bytes in one buffer and decoded into
/// `Metadata` only if a handler or interceptor asks: most calls never read most headers
/// (user-agent, for one), and decoding each into Strings on the hot path cost ~8% of a call.
struct ReceivedHeaders: Sendable {
  /// Entries as `[name length: 2 bytes][value length: 4 bytes][name][value]`.
  private var bytes: [UInt8] = []

  var isEmpty: Bool { self.bytes.isEmpty }

  mutating func append(name: UnsafePointer<UInt8>, nameLength: Int, value: UnsafePointer<UInt8>, valueLength: Int) {
    if self.bytes.isEmpty { self.bytes.reserveCapacity(128) }
    self.bytes.append(UInt8(truncatingIfNeeded: nameLength))
    self.bytes.append(UInt8(truncatingIfNeeded: nameLength >> 8))
    for shift in stride(from: 0, to: 32, by: 8) { self.bytes.append(UInt8(truncatingIfNeeded: valueLength >> shift)) }
    self.bytes.append(contentsOf: UnsafeBufferPointer(start: name, count: nameLength))
    self.bytes.append(contentsOf: UnsafeBufferPointer(start: value, count: valueLength))
  }

  /// The values of every header named `key` (lower case, not `-bin`, not reserved), in order,
  /// found without decoding the others.
  func strings(forKey key: String) -> [String] {
    var values: [String] = []
    var key = key
    key.withUTF8 { name in
      self.forEachEntry { nameRange, valueRange in
        guard nameRange.count == name.count,
          self.bytes.withUnsafeBufferPointer({ memcmp($0.baseAddress! + nameRange.lowerBound, name.baseAddress!, name.count) == 0 })
        else { return }
        values.append(String(decoding: self.bytes[valueRange], as: UTF8.self))
      }
    }
    return values
  }

  /// The headers as metadata: reserved names dropped, `-bin` values base64-decoded (an
  /// undecodable one is dropped, as gRPC implementations do).
  func decode() -> Metadata {
    var metadata = Metadata()
    self.forEachEntry { name, value in
      let key = String(decoding: self.bytes[name], as: UTF8.self)
      guard !Metadata.isReserved(key) else { return }
      let value = String(decoding: self.bytes[value], as: UTF8.self)
      if let entry = Metadata.decodedEntry(key: key, value: Substring(value)) { metadata.append(entry) }
    }
    return metadata
  }

  /// Calls `body` with the name and value ranges of each entry, in order.
  private func forEachEntry(_ body: (Range<Int>, Range<Int>) -> Void) {
    var offset = 0
    while offset < self.bytes.count {
      let nameLength = Int(self.bytes[offset]) | Int(self.bytes[offset + 1]) << 8
      var valueLength = 0
      for index in 0..<4 { valueLength |= Int(self.bytes[offset + 2 + index]) << (8 * index) }
      let nameStart = offset + 6
      let valueStart = nameStart + nameLength
      offset = valueStart + valueLength
      body(nameStart..<valueStart, valueStart..<offset)
    }
  }
}
