/// The limits every extraction runs under. The tool limits apply to each out-of-process run (a
/// .doc may take two: antiword, then catdoc).
public struct ExtractionLimits: Sendable, Equatable {
  /// Wall-clock limit of a tool run; past it the tool's process group is killed. Default 30 s.
  public var timeout: Duration
  /// Address-space rlimit (RLIMIT_AS) of a tool, in bytes. Default 1 GiB.
  public var memoryBytes: Int
  /// CPU-time rlimit (RLIMIT_CPU) of a tool, in seconds: SIGXCPU then, SIGKILL a second later.
  /// Default 30.
  public var cpuSeconds: Int
  /// The most extracted text a document may have, in UTF-8 bytes (a tool's standard output is
  /// cut, and the tool killed, past it). Default 32 MiB.
  public var maxOutputBytes: Int
  /// The most a .docx's `word/document.xml` may inflate to, in bytes (unzip is killed past it).
  /// Default 64 MiB.
  public var maxDecompressedBytes: Int

  /// - Parameters: see the properties; every one has its default.
  public init(
    timeout: Duration = .seconds(30), memoryBytes: Int = 1 << 30, cpuSeconds: Int = 30,
    maxOutputBytes: Int = 32 << 20, maxDecompressedBytes: Int = 64 << 20
  ) {
    self.timeout = timeout
    self.memoryBytes = memoryBytes
    self.cpuSeconds = cpuSeconds
    self.maxOutputBytes = maxOutputBytes
    self.maxDecompressedBytes = maxDecompressedBytes
  }

  /// 30 s, 1 GiB, 30 CPU seconds, 32 MiB of text, 64 MiB of .docx XML.
  public static var defaults: Self { Self() }

  /// The defaults, changed by `configure`.
  public static func defaults(configure: (inout Self) -> Void) -> Self {
    var limits = Self()
    configure(&limits)
    return limits
  }
}

/// Why a document's text could not be extracted.
public enum ExtractionError: Error, Equatable, Sendable {
  /// The bytes are not what content_type says (INVALID_ARGUMENT naming `content_type`); nil
  /// `detected` when they are no supported format at all.
  case formatMismatch(declared: DocumentFormat, detected: DocumentFormat?)
  /// The file is damaged, hostile, too big or too slow to read. The reason is a short sentence
  /// for the document's status_message, e.g. "the PDF could not be read: it took longer than
  /// 30 s" or "the .docx expands beyond 64 MiB"; it never holds a tool's raw output or a path.
  case unreadable(String)
  /// The host cannot extract this format: a tool is not installed (the reason names the Debian
  /// package), it cannot be started, the sandbox fails, or no temporary file can be written. An
  /// operator problem, not the document's.
  case toolMissing(String)
}

/// The text of a document.
public struct ExtractedText: Sendable, Equatable {
  /// The text; for a PDF, pages are separated by one form feed (`\u{0C}`) each, with none after
  /// the last page.
  public var text: String

  /// - Parameter text: the extracted text.
  public init(text: String) {
    self.text = text
  }
}

/// How the extraction tools are isolated on this host (probed once per process).
public enum ExtractionIsolation: Sendable, Equatable {
  /// Under bubblewrap (no network, read-only system, private /tmp, the input read-only) and
  /// rlimits, with a timeout.
  case sandboxed
  /// bubblewrap is missing or cannot create namespaces here: rlimits and the timeout only (the
  /// tools could reach the network). The reason says why, for the service's startup log.
  case rlimitsOnly(reason: String)
}

extension Duration {
  /// "30 s", "1.5 s", "250 ms": for messages.
  var extractionDescription: String {
    let (seconds, attoseconds) = self.components
    let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
    if milliseconds < 1000 { return "\(milliseconds) ms" }
    if milliseconds % 1000 == 0 { return "\(milliseconds / 1000) s" }
    return "\(milliseconds / 1000).\(milliseconds % 1000 / 100) s"
  }
}

/// "64 MiB", "1.5 GiB", "512 KiB", "100 bytes": for messages.
func describeByteCount(_ count: Int) -> String {
  for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where count >= 1 << shift {
    let whole = count >> shift
    let tenths = (count - (whole << shift)) * 10 >> shift
    return tenths == 0 ? "\(whole) \(unit)" : "\(whole).\(tenths) \(unit)"
  }
  return "\(count) bytes"
}
