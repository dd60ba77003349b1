/// Reads just enough of a zip archive to list its entry names, without inflating anything.
///
/// Every offset and length comes from the (untrusted) bytes, so every read is bounds-checked and
/// every walk is bounded by the data: a hostile archive makes the answer false, never a crash or
/// a long loop.
enum ZipDirectory {
  /// Whether the archive has an entry named `name` (ASCII case-insensitive: OOXML part names are).
  ///
  /// Reads the central directory (found through the end-of-central-directory record, Zip64 too);
  /// when there is none, or it does not parse, walks the local file headers instead (a truncated
  /// archive, data prepended to it).
  static func containsEntry(named name: String, in bytes: [UInt8]) -> Bool {
    let wanted = Array(name.utf8)
    if let names = Self.centralDirectoryNames(bytes) {
      return names.contains { Self.equalIgnoringCase(bytes[$0], wanted) }
    }
    return Self.localHeaderNames(bytes).contains { Self.equalIgnoringCase(bytes[$0], wanted) }
  }

  /// The ranges of the entry names in the central directory; nil when there is no parsable one.
  static func centralDirectoryNames(_ bytes: [UInt8]) -> [Range<Int>]? {
    guard let end = Self.endOfCentralDirectory(bytes) else { return nil }
    var entries = Int(bytes.littleEndian(UInt16.self, at: end + 10) ?? 0)
    var offset = Int(bytes.littleEndian(UInt32.self, at: end + 16) ?? 0)
    if entries == 0xFFFF || offset == 0xFFFF_FFFF, let zip64 = Self.zip64EndOfCentralDirectory(bytes, before: end) {
      // Zip64: the real counts are in the Zip64 record (clamped: they are 64-bit and untrusted).
      entries = Int(clamping: bytes.littleEndian(UInt64.self, at: zip64 + 32) ?? 0)
      offset = Int(clamping: bytes.littleEndian(UInt64.self, at: zip64 + 48) ?? 0)
    }
    var names: [Range<Int>] = []
    // Each entry takes at least 46 bytes, which bounds the walk by the data whatever `entries` says.
    for _ in 0..<min(entries, bytes.count / 46) {
      guard bytes.littleEndian(UInt32.self, at: offset) == 0x0201_4B50,
        let nameLength = bytes.littleEndian(UInt16.self, at: offset + 28),
        let extraLength = bytes.littleEndian(UInt16.self, at: offset + 30),
        let commentLength = bytes.littleEndian(UInt16.self, at: offset + 32)
      else { return names.isEmpty ? nil : names }
      let name = (offset + 46)..<(offset + 46 + Int(nameLength))
      guard name.upperBound <= bytes.count else { return names.isEmpty ? nil : names }
      names.append(name)
      offset = name.upperBound + Int(extraLength) + Int(commentLength)
    }
    return names
  }

  /// The ranges of the entry names in the local file headers, front to back.
  static func localHeaderNames(_ bytes: [UInt8]) -> [Range<Int>] {
    var names: [Range<Int>] = []
    var index = 0
    while index + 30 <= bytes.count {
      guard let found = bytes[index...].firstIndex(of: 0x50) else { break }
      index = found + 1
      guard bytes.littleEndian(UInt32.self, at: found) == 0x0403_4B50,
        let nameLength = bytes.littleEndian(UInt16.self, at: found + 26)
      else { continue }
      let name = (found + 30)..<(found + 30 + Int(nameLength))
      if name.upperBound <= bytes.count { names.append(name) }
    }
    return names
  }

  /// The offset of the end-of-central-directory record: the last signature in the final 64 KiB
  /// (the record is 22 bytes plus a comment of at most 65535).
  static func endOfCentralDirectory(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 22 else { return nil }
    var offset = bytes.count - 22
    let lowest = max(0, bytes.count - 22 - 0xFFFF)
    while offset >= lowest {
      if bytes.littleEndian(UInt32.self, at: offset) == 0x0605_4B50 { return offset }
      offset -= 1
    }
    return nil
  }

  /// The offset of the Zip64 end-of-central-directory record, through its locator (the 20 bytes
  /// before the classic record).
  static func zip64EndOfCentralDirectory(_ bytes: [UInt8], before end: Int) -> Int? {
    guard end >= 20, bytes.littleEndian(UInt32.self, at: end - 20) == 0x0706_4B50,
      let recordOffset = bytes.littleEndian(UInt64.self, at: end - 20 + 8),
      let offset = Int(exactly: recordOffset),
      bytes.littleEndian(UInt32.self, at: offset) == 0x0606_4B50
    else { return nil }
    return offset
  }

  private static func equalIgnoringCase(_ name: ArraySlice<UInt8>, _ wanted: [UInt8]) -> Bool {
    name.count == wanted.count && zip(name, wanted).allSatisfy { ASCII.lowercased($0) == ASCII.lowercased($1) }
  }
}

extension Array where Element == UInt8 {
  /// The little-endian integer at `offset`, or nil when it does not fit in the array.
  fileprivate func littleEndian<Value: FixedWidthInteger & UnsignedInteger>(_ type: Value.Type, at offset: Int)
    -> Value?
  {
    let size = MemoryLayout<Value>.size
    guard offset >= 0, offset <= self.count - size else { return nil }
    var value: Value = 0
    for index in 0..<size { value |= Value(self[offset + index]) << (8 * index) }
    return value
  }
}
