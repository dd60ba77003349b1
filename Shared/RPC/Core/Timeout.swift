/// The `grpc-timeout` header: at most eight ASCII digits followed by a unit (H, M, S, m, u, n).
enum Timeout {
  /// Parses a header value; nil when malformed.
  static func parse(_ value: some StringProtocol) -> Duration? {
    let utf8 = Array(value.utf8)
    guard utf8.count >= 2, utf8.count <= 9 else { return nil }
    var amount: Int64 = 0
    for byte in utf8.dropLast() {
      guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
      amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))
    }
    switch utf8.last! {
    case UInt8(ascii: "H"): return .seconds(amount * 3600)
    case UInt8(ascii: "M"): return .seconds(amount * 60)
    case UInt8(ascii: "S"): return .seconds(amount)
    case UInt8(ascii: "m"): return .milliseconds(amount)
    case UInt8(ascii: "u"): return .microseconds(amount)
    case UInt8(ascii: "n"): return .nanoseconds(amount)
    default: return nil
    }
  }

  /// Encodes a duration with the finest unit that fits in eight digits, rounding up so the
  /// server never sees more time than the client has.
  static func encode(_ duration: Duration) -> String {
    let (seconds, attoseconds) = duration.components
    if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return "1n" }
    let nanoseconds = Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    let units: [(Double, Character)] = [(1, "n"), (1e3, "u"), (1e6, "m"), (1e9, "S"), (60e9, "M"), (3600e9, "H")]
    for (scale, unit) in units {
      let amount = (nanoseconds / scale).rounded(.up)
      if amount < 100_000_000 { return "\(Int64(amount))\(unit)" }
    }
    return "99999999H"
  }
}
