/// The document formats the service reads, by their content_type.
public enum DocumentFormat: String, Sendable, CaseIterable {
  case plainText = "text/plain"
  case markdown = "text/markdown"
  case html = "text/html"
  case pdf = "application/pdf"
  /// Word 97–2003 (.doc).
  case msword = "application/msword"
  /// Word 2007 and later (.docx).
  case docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

  /// What the bytes are, from their content rather than a name:
  /// - `%PDF-` at the start → `.pdf`;
  /// - the OLE2 compound-file header `D0 CF 11 E0 A1 B1 1A E1` → `.msword` (an .xls or .ppt also
  ///   has it; the extraction then fails with "not a Word document");
  /// - a zip (`PK\3\4`) with a `word/document.xml` entry (its central directory, or its local
  ///   headers when the directory is missing) → `.docx`;
  /// - valid UTF-8 (a BOM is fine) without NUL bytes → `.html` when it starts (after whitespace,
  ///   a BOM and comments) with `<!doctype html` or `<html`, or has a `<head>` / `<body>` tag in
  ///   its first 4 KiB; otherwise `.plainText` (Markdown cannot be told from plain text).
  ///
  /// Linear in the bytes; the zip check reads at most the central directory.
  /// - Returns: nil when the bytes are none of these (a zip that is not a .docx, other binary
  ///   data, text in another encoding).
  public static func detect(_ bytes: [UInt8]) -> DocumentFormat? {
    if bytes.starts(with: Magic.pdf) { return .pdf }
    if bytes.starts(with: Magic.ole2) { return .msword }
    if bytes.starts(with: Magic.zipLocalHeader), ZipDirectory.containsEntry(named: "word/document.xml", in: bytes) {
      return .docx
    }
    guard !bytes.contains(0), String(validating: bytes, as: UTF8.self) != nil else { return nil }
    return Self.looksLikeHTML(bytes) ? .html : .plainText
  }

  /// The magic numbers `detect` looks for.
  enum Magic {
    static let pdf: [UInt8] = Array("%PDF-".utf8)
    static let ole2: [UInt8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]
    static let zipLocalHeader: [UInt8] = [0x50, 0x4B, 0x03, 0x04]
    static let utf8BOM: [UInt8] = [0xEF, 0xBB, 0xBF]
  }

  /// Whether UTF-8 text is HTML: a doctype or `<html` first (after a BOM, whitespace and
  /// comments), or a `<head>` / `<body>` tag within the first 4 KiB.
  static func looksLikeHTML(_ bytes: [UInt8]) -> Bool {
    let window = bytes.prefix(64 * 1024)
    var index = window.starts(with: Magic.utf8BOM) ? 3 : 0
    while index < window.count {
      while index < window.count, ASCII.isWhitespace(window[index]) { index += 1 }
      guard window[index...].starts(with: Array("<!--".utf8)) else { break }
      guard let end = MarkupScanner.find(Array("-->".utf8), in: window, from: index + 4) else { return false }
      index = end + 3
    }
    let start = window[min(index, window.count)...]
    for opening in ["<!doctype html", "<html"] where ASCII.hasPrefix(start, caseInsensitive: opening) {
      // The name must end there: `<htmlx` is not `<html`.
      guard let after = start.dropFirst(opening.utf8.count).first else { return true }
      if ASCII.isWhitespace(after) || after == UInt8(ascii: ">") { return true }
    }
    let early = bytes.prefix(4096)
    var position = early.startIndex
    while let lessThan = early[position...].firstIndex(of: UInt8(ascii: "<")) {
      let tag = early[(lessThan + 1)...]
      for name in ["head", "body"] where ASCII.hasPrefix(tag, caseInsensitive: name) {
        guard let after = tag.dropFirst(4).first else { continue }
        if after == UInt8(ascii: ">") || after == UInt8(ascii: "/") || ASCII.isWhitespace(after) { return true }
      }
      position = lessThan + 1
    }
    return false
  }
}

/// Byte-level ASCII helpers of the extraction code (static, so they cannot collide with other
/// extensions in the module).
enum ASCII {
  /// Space, tab, line feed, form feed, carriage return (HTML's ASCII whitespace).
  static func isWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0C || byte == 0x0D
  }

  static func isLetter(_ byte: UInt8) -> Bool {
    (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
  }

  static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

  static func isAlphanumeric(_ byte: UInt8) -> Bool { Self.isLetter(byte) || Self.isDigit(byte) }

  static func lowercased(_ byte: UInt8) -> UInt8 {
    byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
  }

  /// Whether `bytes` start with `prefix` (given in lowercase), ignoring ASCII case.
  static func hasPrefix(_ bytes: some Collection<UInt8>, caseInsensitive prefix: String) -> Bool {
    var index = bytes.startIndex
    for expected in prefix.utf8 {
      guard index != bytes.endIndex, Self.lowercased(bytes[index]) == expected else { return false }
      index = bytes.index(after: index)
    }
    return true
  }
}

extension DocumentFormat {
  /// Text read as it is (plain text, Markdown, HTML); the text types stand in for each other.
  public var isText: Bool { self == .plainText || self == .markdown || self == .html }
}
