/// The byte-level pieces the HTML and WordprocessingML readers share: searching, tag ends,
/// attributes, character references.
///
/// Every function looks forward from a position and returns where it stopped, so a reader that
/// moves past what it consumed stays linear in its input, whatever the input holds.
enum MarkupScanner {
  /// The index of the first `pattern` at or after `start`, or nil. O(count × pattern length),
  /// for the short patterns of markup (`-->`, `]]>`).
  static func find<Bytes: RandomAccessCollection<UInt8>>(_ pattern: [UInt8], in bytes: Bytes, from start: Int) -> Int?
  where Bytes.Index == Int {
    guard let first = pattern.first else { return start }
    var position = max(start, bytes.startIndex)
    let last = bytes.endIndex - pattern.count
    while position <= last {
      if bytes[position] == first {
        var step = 1
        while step < pattern.count, bytes[position + step] == pattern[step] { step += 1 }
        if step == pattern.count { return position }
      }
      position += 1
    }
    return nil
  }

  /// Where the tag whose name ends at `start` ends: the offset just past its `>`, and whether it
  /// closed with `/>`. A quote opens an attribute value only after `=`, and a `>` inside a value
  /// does not end the tag. Nil when the input ends inside the tag.
  static func tagEnd(in bytes: [UInt8], from start: Int) -> (end: Int, selfClosing: Bool)? {
    var index = start
    var afterEquals = false
    while index < bytes.count {
      let byte = bytes[index]
      switch byte {
      case UInt8(ascii: ">"):
        return (index + 1, index > start && bytes[index - 1] == UInt8(ascii: "/"))
      case UInt8(ascii: "="):
        afterEquals = true
        index += 1
      case UInt8(ascii: "\""), UInt8(ascii: "'"):
        if afterEquals {
          guard let close = bytes[(index + 1)...].firstIndex(of: byte) else { return nil }
          index = close + 1
        } else {
          index += 1
        }
        afterEquals = false
      default:
        if !ASCII.isWhitespace(byte) { afterEquals = false }
        index += 1
      }
    }
    return nil
  }

  /// The tag name starting at `start` (letters, digits and `-_.:`), ASCII-lowercased when
  /// `lowercase`, and the offset after it. Names longer than 64 bytes are cut (no element we
  /// look at has one).
  static func tagName(in bytes: [UInt8], from start: Int, lowercase: Bool) -> (name: String, end: Int) {
    var index = start
    while index < bytes.count {
      let byte = bytes[index]
      guard !ASCII.isWhitespace(byte), byte != UInt8(ascii: "/"), byte != UInt8(ascii: ">") else { break }
      index += 1
    }
    let raw = bytes[start..<min(index, start + 64)]
    let name =
      lowercase ? String(decoding: raw.lazy.map(ASCII.lowercased), as: UTF8.self) : String(decoding: raw, as: UTF8.self)
    return (name, index)
  }

  /// The value of the attribute whose local name (the part after any `prefix:`) is `localName`,
  /// in the tag bytes `range` (after the tag name, up to its `>`); entities are not decoded.
  static func attribute(_ localName: String, in bytes: [UInt8], range: Range<Int>) -> [UInt8]? {
    let wanted = Array(localName.utf8)
    var index = range.lowerBound
    while index < range.upperBound {
      while index < range.upperBound, ASCII.isWhitespace(bytes[index]) || bytes[index] == UInt8(ascii: "/") {
        index += 1
      }
      let nameStart = index
      while index < range.upperBound, !ASCII.isWhitespace(bytes[index]), bytes[index] != UInt8(ascii: "="),
        bytes[index] != UInt8(ascii: ">"), bytes[index] != UInt8(ascii: "/")
      {
        index += 1
      }
      let name = bytes[nameStart..<index]
      let local = name.lastIndex(of: UInt8(ascii: ":")).map { name[($0 + 1)...] } ?? name
      while index < range.upperBound, ASCII.isWhitespace(bytes[index]) { index += 1 }
      var value: ArraySlice<UInt8> = []
      if index < range.upperBound, bytes[index] == UInt8(ascii: "=") {
        index += 1
        while index < range.upperBound, ASCII.isWhitespace(bytes[index]) { index += 1 }
        if index < range.upperBound, bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") {
          let quote = bytes[index]
          let close = bytes[(index + 1)..<range.upperBound].firstIndex(of: quote) ?? range.upperBound
          value = bytes[(index + 1)..<close]
          index = min(close + 1, range.upperBound)
        } else {
          let valueStart = index
          while index < range.upperBound, !ASCII.isWhitespace(bytes[index]), bytes[index] != UInt8(ascii: ">") {
            index += 1
          }
          value = bytes[valueStart..<index]
        }
      } else if index == nameStart {
        index += 1  // A stray byte (`>`): step over it.
      }
      if local.elementsEqual(wanted) { return Array(value) }
    }
    return nil
  }
}

/// Character references: `&name;`, `&#NN;`, `&#xHH;`.
enum CharacterReference {
  /// Which names a reader knows and how it treats numeric references.
  enum Dialect {
    /// HTML: the common named entities (and `&amp` `&lt` `&gt` `&quot` `&nbsp` `&copy` `&reg`
    /// without the semicolon), Windows-1252 for `&#128;`–`&#159;` as browsers do.
    case html
    /// XML: the five predefined entities only.
    case xml
  }

  /// Decodes the reference starting at `start` (an `&`).
  /// - Returns: the scalar and the number of bytes the reference spans; nil when the bytes are
  ///   not a reference (the caller keeps the `&` as text). A numeric reference to nothing
  ///   (0, a surrogate, past U+10FFFF) or to a control other than tab, line feed, form feed and
  ///   carriage return becomes U+FFFD.
  static func decode(_ bytes: [UInt8], at start: Int, dialect: Dialect) -> (scalar: Unicode.Scalar, length: Int)? {
    var index = start + 1
    guard index < bytes.count else { return nil }
    if bytes[index] == UInt8(ascii: "#") {
      index += 1
      var radix: UInt32 = 10
      if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "x") {
        radix = 16
        index += 1
      }
      var value: UInt32 = 0
      var digits = 0
      while index < bytes.count, let digit = Self.digitValue(bytes[index], radix: radix) {
        // Saturate past the Unicode range: a thousand digits must not overflow.
        value = min(value * radix + digit, 0x11_0000)
        digits += 1
        index += 1
      }
      guard digits > 0 else { return nil }
      if index < bytes.count, bytes[index] == UInt8(ascii: ";") { index += 1 }
      return (Self.scalar(forCodePoint: value, dialect: dialect), index - start)
    }
    let nameStart = index
    while index < bytes.count, index - nameStart < 32, ASCII.isAlphanumeric(bytes[index]) { index += 1 }
    guard index > nameStart else { return nil }
    let name = String(decoding: bytes[nameStart..<index], as: UTF8.self)
    let table = dialect == .html ? Self.htmlEntities : Self.xmlEntities
    guard let scalar = table[name] else { return nil }
    if index < bytes.count, bytes[index] == UInt8(ascii: ";") { return (scalar, index + 1 - start) }
    // Browsers accept a few legacy names without the semicolon, unless a name character or `=` follows.
    let next = index < bytes.count ? bytes[index] : nil
    if dialect == .html, Self.legacyNames.contains(name),
      next.map({ !ASCII.isAlphanumeric($0) && $0 != UInt8(ascii: "=") }) ?? true
    {
      return (scalar, index - start)
    }
    return nil
  }

  private static func digitValue(_ byte: UInt8, radix: UInt32) -> UInt32? {
    if ASCII.isDigit(byte) { return UInt32(byte - UInt8(ascii: "0")) }
    let lower = ASCII.lowercased(byte)
    if radix == 16, lower >= UInt8(ascii: "a"), lower <= UInt8(ascii: "f") {
      return UInt32(lower - UInt8(ascii: "a") + 10)
    }
    return nil
  }

  private static func scalar(forCodePoint value: UInt32, dialect: Dialect) -> Unicode.Scalar {
    let replacement: Unicode.Scalar = "\u{FFFD}"
    if dialect == .html, (0x80...0x9F).contains(value) {
      return Self.windows1252[Int(value - 0x80)]
    }
    if value < 0x20, value != 0x09, value != 0x0A, value != 0x0C, value != 0x0D { return replacement }
    if (0x7F...0x9F).contains(value) { return replacement }
    return Unicode.Scalar(value) ?? replacement
  }

  /// What browsers show for `&#128;`–`&#159;`: the Windows-1252 characters (U+FFFD for the holes).
  private static let windows1252: [Unicode.Scalar] = [
    "\u{20AC}", "\u{FFFD}", "\u{201A}", "\u{0192}", "\u{201E}", "\u{2026}", "\u{2020}", "\u{2021}",
    "\u{02C6}", "\u{2030}", "\u{0160}", "\u{2039}", "\u{0152}", "\u{FFFD}", "\u{017D}", "\u{FFFD}",
    "\u{FFFD}", "\u{2018}", "\u{2019}", "\u{201C}", "\u{201D}", "\u{2022}", "\u{2013}", "\u{2014}",
    "\u{02DC}", "\u{2122}", "\u{0161}", "\u{203A}", "\u{0153}", "\u{FFFD}", "\u{017E}", "\u{0178}",
  ]

  private static let legacyNames: Set<String> = ["amp", "lt", "gt", "quot", "nbsp", "copy", "reg"]

  private static let xmlEntities: [String: Unicode.Scalar] = [
    "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'",
  ]

  /// The HTML 4 entities (Latin-1, symbols, Greek, punctuation) plus `&apos;`: what real pages use.
  private static let htmlEntities: [String: Unicode.Scalar] = {
    var table = Self.xmlEntities
    // U+00A0 ... U+00FF in order.
    let latin1 = """
      nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 sup3 \
      acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc Atilde Auml \
      Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde \
      Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring aelig \
      ccedil egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde ograve oacute ocirc otilde ouml divide \
      oslash ugrave uacute ucirc uuml yacute thorn yuml
      """
    for (offset, name) in latin1.split(separator: " ").enumerated() {
      table[String(name)] = Unicode.Scalar(UInt8(0xA0 + offset))
    }
    // U+0391 ... U+03A9 and U+03B1 ... U+03C9 (no capital final sigma at U+03A2).
    let greek = [
      "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu",
      "xi", "omicron", "pi", "rho", "sigmaf", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega",
    ]
    for (offset, name) in greek.enumerated() {
      if let lower = Unicode.Scalar(0x3B1 + UInt32(offset)) { table[name] = lower }
      if name != "sigmaf", let upper = Unicode.Scalar(0x391 + UInt32(offset)) {
        table[name.prefix(1).uppercased() + name.dropFirst()] = upper
      }
    }
    let others: [(String, UInt32)] = [
      ("OElig", 0x152), ("oelig", 0x153), ("Scaron", 0x160), ("scaron", 0x161), ("Yuml", 0x178), ("fnof", 0x192),
      ("circ", 0x2C6), ("tilde", 0x2DC), ("thetasym", 0x3D1), ("upsih", 0x3D2), ("piv", 0x3D6),
      ("ensp", 0x2002), ("emsp", 0x2003), ("thinsp", 0x2009), ("zwnj", 0x200C), ("zwj", 0x200D), ("lrm", 0x200E),
      ("rlm", 0x200F), ("ndash", 0x2013), ("mdash", 0x2014), ("lsquo", 0x2018), ("rsquo", 0x2019), ("sbquo", 0x201A),
      ("ldquo", 0x201C), ("rdquo", 0x201D), ("bdquo", 0x201E), ("dagger", 0x2020), ("Dagger", 0x2021),
      ("bull", 0x2022), ("hellip", 0x2026), ("permil", 0x2030), ("prime", 0x2032), ("Prime", 0x2033),
      ("lsaquo", 0x2039), ("rsaquo", 0x203A), ("oline", 0x203E), ("frasl", 0x2044), ("euro", 0x20AC),
      ("image", 0x2111), ("weierp", 0x2118), ("real", 0x211C), ("trade", 0x2122), ("alefsym", 0x2135),
      ("larr", 0x2190), ("uarr", 0x2191), ("rarr", 0x2192), ("darr", 0x2193), ("harr", 0x2194), ("crarr", 0x21B5),
      ("lArr", 0x21D0), ("uArr", 0x21D1), ("rArr", 0x21D2), ("dArr", 0x21D3), ("hArr", 0x21D4),
      ("forall", 0x2200), ("part", 0x2202), ("exist", 0x2203), ("empty", 0x2205), ("nabla", 0x2207),
      ("isin", 0x2208), ("notin", 0x2209), ("ni", 0x220B), ("prod", 0x220F), ("sum", 0x2211), ("minus", 0x2212),
      ("lowast", 0x2217), ("radic", 0x221A), ("prop", 0x221D), ("infin", 0x221E), ("ang", 0x2220), ("and", 0x2227),
      ("or", 0x2228), ("cap", 0x2229), ("cup", 0x222A), ("int", 0x222B), ("there4", 0x2234), ("sim", 0x223C),
      ("cong", 0x2245), ("asymp", 0x2248), ("ne", 0x2260), ("equiv", 0x2261), ("le", 0x2264), ("ge", 0x2265),
      ("sub", 0x2282), ("sup", 0x2283), ("nsub", 0x2284), ("sube", 0x2286), ("supe", 0x2287), ("oplus", 0x2295),
      ("otimes", 0x2297), ("perp", 0x22A5), ("sdot", 0x22C5), ("lceil", 0x2308), ("rceil", 0x2309),
      ("lfloor", 0x230A), ("rfloor", 0x230B), ("lang", 0x2329), ("rang", 0x232A), ("loz", 0x25CA),
      ("spades", 0x2660), ("clubs", 0x2663), ("hearts", 0x2665), ("diams", 0x2666),
    ]
    for (name, value) in others {
      if let scalar = Unicode.Scalar(value) { table[name] = scalar }
    }
    return table
  }()
}
