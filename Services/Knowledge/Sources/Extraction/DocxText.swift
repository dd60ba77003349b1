/// The text of a .docx's `word/document.xml` (WordprocessingML), in process: one forward pass
/// over the (already size-capped) XML, no recursion, no tree.
///
/// - a paragraph (`w:p`) becomes a block of its own, blocks separated by a blank line (a
///   paragraph for the chunker); empty paragraphs are dropped;
/// - the text is that of `w:t` elements only (so deleted text `w:delText`, field codes
///   `w:instrText` and attribute values are left out), with `w:tab` a tab, `w:br` / `w:cr` a
///   line break (a space in a heading), `w:noBreakHyphen` a hyphen;
/// - a paragraph styled `Heading1`…`Heading6` (`w:pStyle`, case and spaces ignored) or with an
///   outline level 0–5 (`w:outlineLvl`) becomes a Markdown ATX line (`#`…`######`), so heading
///   paths survive chunking with `markdown: true`. Only those style ids are recognised: a
///   document whose styles are named in another language (`berschrift1`…) reads as plain
///   paragraphs (telling them apart needs `word/styles.xml`);
/// - the `mc:Fallback` branch of alternate content (a second copy of a text box) and moved-from
///   text (`w:moveFrom`) are skipped;
/// - XML character references are decoded (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;`, decimal, hex),
///   and so are CDATA sections inside `w:t`. Line feeds, carriage returns and form feeds in the
///   text become spaces (a form feed would be a page break to the chunker).
///
/// Prefixes are not checked (`w:` is conventional, not required): elements are matched by their
/// local name, so DrawingML text (`a:p`, `a:t`) in shapes is read too.
public enum DocxText {
  /// The text of `word/document.xml` (UTF-8 bytes; see the type for the rules).
  public static func text(fromDocumentXML xml: [UInt8]) -> String {
    var converter = WordDocumentConverter(input: xml)
    return converter.convert()
  }
}

/// The state of one WordprocessingML-to-text pass.
struct WordDocumentConverter {
  let input: [UInt8]
  var index = 0
  var output: [UInt8] = []
  /// The current paragraph's text.
  var paragraph: [UInt8] = []
  /// The current paragraph's heading level, 0 for body text.
  var headingLevel = 0
  /// Open `w:t` elements: their character data is text.
  var textDepth = 0
  /// Open `w:tabs` (tab stop definitions, whose `w:tab` children are not tabs).
  var tabStopsDepth = 0
  /// Open `mc:Fallback` / `w:moveFrom` elements, whose contents are skipped.
  var skippedDepth = 0

  init(input: [UInt8]) {
    self.input = input
  }

  /// Runs the pass and returns the text.
  mutating func convert() -> String {
    while self.index < self.input.count {
      let byte = self.input[self.index]
      if byte == UInt8(ascii: "<") {
        self.markup()
      } else if byte == UInt8(ascii: "&") {
        if let (scalar, length) = CharacterReference.decode(self.input, at: self.index, dialect: .xml) {
          self.index += length
          self.appendCharacterData(contentsOf: Array(String(Character(scalar)).utf8))
        } else {
          self.appendCharacterData(UInt8(ascii: "&"))
          self.index += 1
        }
      } else {
        // A run of character data up to the next markup or reference.
        let end =
          self.input[self.index...].firstIndex { $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: "&") }
          ?? self.input.count
        if self.isCollectingText {
          for byte in self.input[self.index..<end] { self.appendCharacterData(byte) }
        }
        self.index = end
      }
    }
    self.endParagraph()
    return String(decoding: self.output, as: UTF8.self)
  }

  var isCollectingText: Bool { self.textDepth > 0 && self.skippedDepth == 0 }

  mutating func appendCharacterData(_ byte: UInt8) {
    guard self.isCollectingText else { return }
    switch byte {
    case 0x0A, 0x0D, 0x0C: self.paragraph.append(UInt8(ascii: " "))
    case 0: break
    default: self.paragraph.append(byte)
    }
  }

  mutating func appendCharacterData(contentsOf bytes: [UInt8]) {
    for byte in bytes { self.appendCharacterData(byte) }
  }

  static let commentStart = Array("<!--".utf8)
  static let commentEnd = Array("-->".utf8)
  static let cdataStart = Array("<![CDATA[".utf8)
  static let cdataEnd = Array("]]>".utf8)
  static let processingInstructionEnd = Array("?>".utf8)
  static let greaterThan = Array(">".utf8)

  /// `<…`: an element tag, a comment, CDATA, a processing instruction or declaration.
  mutating func markup() {
    let next = self.index + 1 < self.input.count ? self.input[self.index + 1] : 0
    switch next {
    case UInt8(ascii: "!"):
      let rest = self.input[self.index...]
      if rest.starts(with: Self.commentStart) {
        self.skip(past: Self.commentEnd, from: self.index + 4)
      } else if rest.starts(with: Self.cdataStart) {
        let start = self.index + 9
        let end = MarkupScanner.find(Self.cdataEnd, in: self.input, from: start) ?? self.input.count
        if self.isCollectingText {
          for byte in self.input[start..<end] { self.appendCharacterData(byte) }
        }
        self.index = min(end + 3, self.input.count)
      } else {
        self.skip(past: Self.greaterThan, from: self.index + 2)
      }
    case UInt8(ascii: "?"):
      self.skip(past: Self.processingInstructionEnd, from: self.index + 2)
    case UInt8(ascii: "/"):
      let (name, nameEnd) = MarkupScanner.tagName(in: self.input, from: self.index + 2, lowercase: false)
      self.index = MarkupScanner.tagEnd(in: self.input, from: nameEnd)?.end ?? self.input.count
      self.endElement(Self.localName(name))
    default:
      let (name, nameEnd) = MarkupScanner.tagName(in: self.input, from: self.index + 1, lowercase: false)
      guard let (end, selfClosing) = MarkupScanner.tagEnd(in: self.input, from: nameEnd) else {
        self.index = self.input.count
        return
      }
      self.index = end
      self.startElement(Self.localName(name), attributes: nameEnd..<(end - 1), selfClosing: selfClosing)
    }
  }

  mutating func skip(past terminator: [UInt8], from start: Int) {
    let found = MarkupScanner.find(terminator, in: self.input, from: start)
    self.index = found.map { $0 + terminator.count } ?? self.input.count
  }

  static func localName(_ name: String) -> Substring {
    name.lastIndex(of: ":").map { name[name.index(after: $0)...] } ?? name[...]
  }

  mutating func startElement(_ name: Substring, attributes: Range<Int>, selfClosing: Bool) {
    switch name {
    case "Fallback", "moveFrom":
      if !selfClosing { self.skippedDepth += 1 }
      return
    case "p":
      // A paragraph inside a paragraph (a text box in a run) ends the text before it.
      self.endParagraph()
      return
    default: break
    }
    guard self.skippedDepth == 0 else { return }
    switch name {
    case "t":
      if !selfClosing { self.textDepth += 1 }
    case "tabs":
      if !selfClosing { self.tabStopsDepth += 1 }
    case "tab":
      if self.tabStopsDepth == 0 { self.paragraph.append(0x09) }
    case "br", "cr":
      self.paragraph.append(self.headingLevel > 0 ? UInt8(ascii: " ") : 0x0A)
    case "noBreakHyphen":
      self.paragraph.append(UInt8(ascii: "-"))
    case "pStyle":
      if let value = MarkupScanner.attribute("val", in: self.input, range: attributes) {
        self.headingLevel = Self.headingLevel(styleID: value) ?? self.headingLevel
      }
    case "outlineLvl":
      if let value = MarkupScanner.attribute("val", in: self.input, range: attributes), value.count == 1,
        let digit = value.first, digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "5")
      {
        self.headingLevel = Int(digit - UInt8(ascii: "0")) + 1
      }
    default: break
    }
  }

  mutating func endElement(_ name: Substring) {
    switch name {
    case "Fallback", "moveFrom": self.skippedDepth = max(0, self.skippedDepth - 1)
    case "p": self.endParagraph()
    case "t": self.textDepth = max(0, self.textDepth - 1)
    case "tabs": self.tabStopsDepth = max(0, self.tabStopsDepth - 1)
    default: break
    }
  }

  /// `Heading1`…`Heading6` (any case, spaces ignored: `heading 1` too) → 1…6.
  static func headingLevel(styleID: [UInt8]) -> Int? {
    let compact = styleID.filter { $0 != UInt8(ascii: " ") }.map(ASCII.lowercased)
    let prefix = Array("heading".utf8)
    guard compact.count == prefix.count + 1, compact.starts(with: prefix), let digit = compact.last,
      digit >= UInt8(ascii: "1"), digit <= UInt8(ascii: "6")
    else { return nil }
    return Int(digit - UInt8(ascii: "0"))
  }

  /// Writes the current paragraph (unless it is blank) and starts the next.
  mutating func endParagraph() {
    defer {
      self.paragraph.removeAll(keepingCapacity: true)
      self.headingLevel = 0
    }
    guard self.paragraph.contains(where: { !ASCII.isWhitespace($0) }) else { return }
    if !self.output.isEmpty { self.output.append(contentsOf: [0x0A, 0x0A]) }
    if self.headingLevel > 0 {
      self.output.append(contentsOf: repeatElement(UInt8(ascii: "#"), count: self.headingLevel))
      self.output.append(UInt8(ascii: " "))
      // A heading is one line: trim it.
      let trimmed = self.paragraph.drop(while: ASCII.isWhitespace).reversed().drop(while: ASCII.isWhitespace).reversed()
      self.output.append(contentsOf: trimmed)
    } else {
      self.output.append(contentsOf: self.paragraph)
    }
  }
}
