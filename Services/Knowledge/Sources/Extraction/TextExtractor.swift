/// Turns a document's bytes into its text: the text formats in process, PDF and Word files out of
/// process (pdftotext, antiword / catdoc, unzip) under a timeout, rlimits and, where the host
/// allows, a network-less bubblewrap sandbox. See `ExtractionLimits` for the limits and
/// `TextExtractor.isolation` for the sandbox.
public struct TextExtractor: Sendable {
  /// The limits every extraction of this extractor runs under.
  public var limits: ExtractionLimits

  /// - Parameter limits: the limits of every extraction (default `ExtractionLimits.defaults`).
  public init(limits: ExtractionLimits = .init()) {
    self.limits = limits
  }

  /// How the tools are isolated on this host: probed (once per process) by running `true` under
  /// bubblewrap. `.rlimitsOnly` means the tools could reach the network: worth a warning in the
  /// service's startup log.
  public static var isolation: ExtractionIsolation { ToolSandbox.isolation }

  /// Checks the bytes against `declared`, then extracts the text.
  ///
  /// The text types stand in for each other as long as the bytes are text (UTF-8 without NUL):
  /// text/plain bytes that look like HTML are read as plain text, as declared. A binary format
  /// must match exactly. Text is returned without a BOM and with CR LF / CR line ends as LF;
  /// HTML goes through `HTMLText`, a .docx through `DocxText`; PDF pages are separated by one
  /// form feed each (pdftotext ends every page with one; the one after the last page is
  /// dropped, so the chunker sees no empty last page). NUL characters a tool prints are dropped
  /// (PostgreSQL text cannot hold them).
  ///
  /// Runs on the global concurrent executor, never the caller's (an event loop): the in-process
  /// parsers are linear but can take tens of milliseconds on 20 MiB.
  /// - Parameters:
  ///   - bytes: the file.
  ///   - declared: the format the client named.
  /// - Returns: the text, at most `limits.maxOutputBytes` bytes of UTF-8.
  /// - Throws: `.formatMismatch` when the bytes are of another format, `.unreadable` when the
  ///   file cannot be read within the limits, `.toolMissing` when the host lacks what the format
  ///   needs.
  @concurrent
  public func extract(_ bytes: [UInt8], declared: DocumentFormat) async throws(ExtractionError) -> ExtractedText {
    try Self.checkFormat(of: bytes, declared: declared)
    let text: String
    switch declared {
    case .plainText, .markdown:
      text = Self.decodedText(bytes)
    case .html:
      text = HTMLText.text(from: Self.decodedText(bytes))
    case .pdf:
      text = try await self.extractPDF(bytes)
    case .msword:
      text = try await self.extractWord97(bytes)
    case .docx:
      text = try await self.extractDocx(bytes)
    }
    guard text.utf8.count <= self.limits.maxOutputBytes else {
      throw .unreadable("the document has more than \(describeByteCount(self.limits.maxOutputBytes)) of text")
    }
    return ExtractedText(text: text)
  }

  /// Checks that `bytes` are what `declared` says, as `extract` does first (cheap: no tool runs).
  /// - Throws: `.formatMismatch` with what the bytes were detected as.
  public static func checkFormat(of bytes: [UInt8], declared: DocumentFormat) throws(ExtractionError) {
    let detected = DocumentFormat.detect(bytes)
    if declared.isText, detected?.isText == true { return }
    guard detected == declared else { throw .formatMismatch(declared: declared, detected: detected) }
  }

  /// UTF-8 bytes (already validated) as a String without a BOM, line ends as LF.
  static func decodedText(_ bytes: [UInt8]) -> String {
    let body = bytes.starts(with: DocumentFormat.Magic.utf8BOM) ? bytes[3...] : bytes[...]
    guard body.contains(0x0D) else { return String(decoding: body, as: UTF8.self) }
    var normalized: [UInt8] = []
    normalized.reserveCapacity(body.count)
    var index = body.startIndex
    while index < body.endIndex {
      let byte = body[index]
      index += 1
      if byte == 0x0D {
        normalized.append(0x0A)
        if index < body.endIndex, body[index] == 0x0A { index += 1 }
      } else {
        normalized.append(byte)
      }
    }
    return String(decoding: normalized, as: UTF8.self)
  }
}
