/// How deep user input may nest: JSON documents and `google.protobuf.Struct` values, JSON
/// schemas, templates — everything that is parsed or walked recursively.
///
/// Each level of a recursive parse takes a stack frame on the thread that handles the call (an
/// event-loop thread, or one of Swift's cooperative threads), and a stack overflow kills the
/// process. Debug builds take several kilobytes per level where release builds take hundreds
/// of bytes (swift-mustache: about 12 KiB a section in debug, so 40 sections overflow 512 KiB),
/// so the limits are chosen well below what a 512 KiB stack (the smallest a handler runs on)
/// survives in a debug build; the tests parse at the largest limit on such a thread.
public enum NestingLimit {
  /// The default depth of nested arrays and objects, schema levels or template sections
  /// (`MAX_NESTING_DEPTH`).
  public static let defaultDepth = 16
  /// The largest depth the configuration accepts.
  public static let maximumDepth = 32

  /// Protobuf message levels a request may nest for `depth` levels of JSON in a `Struct`: an
  /// object level is three messages (`Value`, `Struct`, the map entry), and the request and its
  /// fields take a few levels above the document. Room for a few JSON levels more than `depth`,
  /// so that a document just too deep reaches the service's own check, which names its field.
  public static func messageDepth(forNesting depth: Int) -> Int {
    4 * depth + 8
  }
}
