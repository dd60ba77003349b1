public import GRPCRuntime
internal import Synchronization
#if canImport(Glibc)
internal import Glibc
#endif

/// A W3C trace context (`traceparent` and `tracestate`): which trace a call belongs to and
/// which span is current. Every call has one, recorded or not: log lines carry its ids, callers
/// get `x-trace-id`, and outgoing calls continue it.
public struct TraceContext: Sendable, Hashable {
  /// 32 lowercase hex digits, never all zero.
  public var traceID: String
  /// The current span's id, never zero. Kept as a number: most calls never write it out (it
  /// goes only into log lines and the `traceparent` of outgoing calls), and a 16-digit String
  /// costs an allocation.
  var span: UInt64
  /// 16 lowercase hex digits of the current span.
  public var spanID: String { Self.hex(self.span) }
  /// The trace flags (bit 0: sampled).
  public var flags: UInt8
  /// The `tracestate` header as received (vendors' entries), passed on unchanged; nil when none
  /// came or it was longer than `maxStateLength`.
  public var state: String?

  /// W3C: a platform must propagate at least 512 characters of `tracestate`; longer ones are
  /// dropped rather than stored per call.
  public static let maxStateLength = 512

  /// The context of the work the current task does: the one bound to it, or else the trace of
  /// the call it handles (`ServerContext.trace`). (Not an entry in swift-distributed-tracing's
  /// `InstrumentationContext`, which costs a dictionary per call: with no tracer recording, the
  /// ids are all a call needs.)
  public static var current: TraceContext? {
    Self.bound ?? ServerContext.current?.trace
  }

  /// The trace bound to the current task, ahead of its call's.
  @TaskLocal public static var bound: TraceContext?

  /// A new trace with a random id.
  public static func newTrace(sampled: Bool = true) -> TraceContext {
    TraceContext(traceID: Self.randomTraceID(), span: Self.randomSpan(), flags: sampled ? 1 : 0)
  }

  init(traceID: String, span: UInt64, flags: UInt8, state: String? = nil) {
    self.traceID = traceID
    self.span = span
    self.flags = flags
    self.state = state
  }

  /// Parses the headers of an incoming call: nil when `traceparent` is missing or malformed
  /// (the W3C spec says to start a new trace then, and to drop `tracestate` with it).
  public init?(traceparent: String?, tracestate: String?) {
    guard let traceparent, var context = TraceContext(traceparent: traceparent) else { return nil }
    if let tracestate, !tracestate.isEmpty, tracestate.utf8.count <= Self.maxStateLength,
      tracestate.utf8.allSatisfy({ (0x20...0x7E).contains($0) })
    {
      context.state = tracestate
    }
    self = context
  }

  /// Parses a `traceparent` header (version 00, or a later version's first four fields).
  /// Returns nil when it is malformed, as the W3C spec says to then start a new trace.
  public init?(traceparent: String) {
    let fields = traceparent.split(separator: "-", omittingEmptySubsequences: false)
    guard fields.count >= 4, fields[0].count == 2, Self.isHex(fields[0]), fields[0] != "ff" else { return nil }
    if fields[0] == "00" && fields.count != 4 { return nil }
    guard fields[1].utf8.count == 32, Self.isHex(fields[1]), fields[1].utf8.contains(where: { $0 != UInt8(ascii: "0") }),
      fields[2].utf8.count == 16, Self.isHex(fields[2]), let span = UInt64(fields[2], radix: 16), span != 0,
      fields[3].utf8.count == 2, Self.isHex(fields[3]), let flags = UInt8(fields[3], radix: 16)
    else { return nil }
    self.init(traceID: String(fields[1]), span: span, flags: flags)
  }

  /// The `traceparent` header value.
  public var traceparent: String {
    "00-\(self.traceID)-\(self.spanID)-" + (self.flags < 16 ? "0" : "") + String(self.flags, radix: 16)
  }

  /// A child span in the same trace.
  public func child() -> TraceContext {
    TraceContext(traceID: self.traceID, span: Self.randomSpan(), flags: self.flags, state: self.state)
  }

  /// Writes this context as `traceparent` (and `tracestate`, when there is one) into `metadata`.
  public func inject(into metadata: inout Metadata) {
    metadata.replaceOrAddString(self.traceparent, forKey: "traceparent")
    if let state = self.state { metadata.replaceOrAddString(state, forKey: "tracestate") }
  }

  private static func isHex(_ text: Substring) -> Bool {
    text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
  }

  /// A random trace id: 16 bytes as lowercase hex, never all zero (W3C: invalid).
  private static func randomTraceID() -> String {
    var random: (UInt64, UInt64) = (0, 0)
    repeat {
      withUnsafeMutableBytes(of: &random) { TraceRandom.fill($0) }
    } while random == (0, 0)
    return Self.hex(random.0, random.1)
  }

  /// A random span id, never zero.
  private static func randomSpan() -> UInt64 {
    var span: UInt64 = 0
    while span == 0 { withUnsafeMutableBytes(of: &span) { TraceRandom.fill($0) } }
    return span
  }

  /// `value` as 16 lowercase hex digits.
  private static func hex(_ value: UInt64) -> String {
    String(unsafeUninitializedCapacity: 16) { buffer in
      Self.writeHex(value, into: buffer, at: 0)
      return 16
    }
  }

  /// `high` then `low` as 32 lowercase hex digits.
  private static func hex(_ high: UInt64, _ low: UInt64) -> String {
    String(unsafeUninitializedCapacity: 32) { buffer in
      Self.writeHex(high, into: buffer, at: 0)
      Self.writeHex(low, into: buffer, at: 16)
      return 32
    }
  }

  private static func writeHex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
    let digits: StaticString = "0123456789abcdef"
    for digit in 0..<16 {
      buffer[offset + digit] = digits.utf8Start[Int(truncatingIfNeeded: value >> (60 - 4 * UInt64(digit)) & 0xF)]
    }
  }
}

/// Random bytes for trace and span ids from the kernel's CSPRNG, drawn 4 KiB at a time: one
/// `getrandom` per about 170 new traces instead of three per call, which was an eighth of a
/// health check's server CPU.
enum TraceRandom {
  private struct Pool {
    var bytes = [UInt8](repeating: 0, count: 4096)
    var next = 4096
  }

  private static let pool = Mutex(Pool())

  private typealias GetRandom = @convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> Int
  /// glibc's `getrandom` (<sys/random.h> is not part of the Glibc module).
  private static let getrandom: GetRandom? = {
    #if canImport(Glibc)
    dlsym(UnsafeMutableRawPointer(bitPattern: 0), "getrandom").map { unsafeBitCast($0, to: GetRandom.self) }
    #else
    nil
    #endif
  }()

  static func fill(_ destination: UnsafeMutableRawBufferPointer) {
    Self.pool.withLock { pool in
      if pool.next + destination.count > pool.bytes.count { Self.refill(&pool) }
      pool.bytes.withUnsafeBytes { source in
        destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[pool.next..<pool.next + destination.count]))
      }
      pool.next += destination.count
    }
  }

  private static func refill(_ pool: inout Pool) {
    var filled = 0
    if let getrandom = Self.getrandom {
      pool.bytes.withUnsafeMutableBytes { raw in
        while filled < raw.count {
          let count = getrandom(raw.baseAddress! + filled, raw.count - filled, 0)
          if count <= 0 { break }
          filled += count
        }
      }
    }
    if filled < pool.bytes.count {
      // No getrandom (or it failed): the standard library's generator, 8 bytes a call.
      var generator = SystemRandomNumberGenerator()
      for index in stride(from: filled, to: pool.bytes.count, by: 8) {
        withUnsafeBytes(of: generator.next()) { word in
          for offset in 0..<min(8, pool.bytes.count - index) { pool.bytes[index + offset] = word[offset] }
        }
      }
    }
    pool.next = 0
  }
}

/// The call's trace, which `TraceContext.current` reads in the call's task.
enum TraceKey: ServerContextKey {
  typealias Value = TraceContext
}

extension ServerContext {
  /// The call's trace, set by the tracing interceptor.
  public internal(set) var trace: TraceContext? {
    get { self[TraceKey.self] }
    set { self[TraceKey.self] = newValue }
  }
}
