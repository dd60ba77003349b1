extension String {
  /// The longest prefix of whole characters that takes at most `maxBytes` bytes of UTF-8,
  /// ending in `…` when anything was cut (the ellipsis counted in the bytes).
  public func truncated(toUTF8Bytes maxBytes: Int) -> String {
    guard self.utf8.count > maxBytes else { return self }
    let ellipsis = "…"
    var budget = maxBytes - ellipsis.utf8.count
    var end = self.startIndex
    for character in self {
      let size = character.utf8.count
      guard size <= budget else { break }
      budget -= size
      end = self.index(after: end)
    }
    return String(self[..<end]) + (maxBytes >= ellipsis.utf8.count ? ellipsis : "")
  }
}
