extension Duration {
  /// The duration in whole units, rounded toward zero (for SQL intervals, Lua arguments and
  /// metrics).
  public var wholeMilliseconds: Int64 { self.components.seconds * 1000 + self.components.attoseconds / 1_000_000_000_000_000 }
  public var wholeMicroseconds: Int64 { self.components.seconds * 1_000_000 + self.components.attoseconds / 1_000_000_000_000 }
  public var wholeNanoseconds: Int64 { self.components.seconds * 1_000_000_000 + self.components.attoseconds / 1_000_000_000 }
}
