/// HTML to text, in process: one forward pass over the bytes, no recursion, no tree.
///
/// - dropped: comments, the doctype, `<head>` (title, meta, and what it holds), and the contents
///   of script, style, noscript, template, iframe, noembed, noframes, xmp;
/// - block elements end lines: p, h1–h6, pre, blockquote, table, ul/ol/dl, hr, section, article,
///   header, footer, nav, aside, main, figure, form, fieldset, details, address leave a blank line
///   (a paragraph for the chunker); div, li, tr, dt, dd, caption, figcaption, summary, option,
///   legend, thead/tbody/tfoot a line break; `<br>` is a line break; table cells are separated by
///   a space;
/// - headings become Markdown ATX lines (`# Title`, `## Section`…), and list items `- item`, so
///   chunking with `markdown: true` keeps heading paths for HTML too;
/// - whitespace collapses to one space (line breaks come only from the elements), except inside
///   `<pre>`, where it is kept (CR LF and form feeds become line feeds: a form feed would be a page
///   break to the chunker);
/// - character references are decoded: the HTML 4 named entities (`&nbsp;` becomes a plain
///   space), decimal and hex (`&#233;`, `&#xE9;`); an unknown name stays as written, a
///   reference to nothing or to a control character becomes U+FFFD.
///
/// Linear in the input whatever it holds: a tag that never closes, an unclosed comment or an
/// unclosed `<script>` runs to the end of the input and is dropped (as browsers do); `<` not
/// followed by a letter, `/`, `!` or `?` is text; nesting depth costs nothing (only counters).
public enum HTMLText {
  /// The text of an HTML document or fragment (see the type for the rules).
  public static func text(from html: String) -> String {
    var converter = HTMLTextConverter(input: Array(html.utf8))
    return converter.convert()
  }
}

/// The state of one HTML-to-text pass.
struct HTMLTextConverter {
  let input: [UInt8]
  var index = 0
  var writer = BlockTextWriter()
  /// Inside `<head>` (until `</head>`, `<body>`, or a tag that cannot be in a head).
  var inHead = false
  /// Open `<template>` elements, whose contents are dropped.
  var templateDepth = 0
  /// Open `<pre>` / `<listing>` elements, where whitespace is kept.
  var preDepth = 0
  /// A line feed right after `<pre>` is not content.
  var dropNextLineFeed = false

  init(input: [UInt8]) {
    self.input = input
    self.writer.reserveCapacity(input.count)
  }

  /// Runs the pass and returns the text.
  mutating func convert() -> String {
    while self.index < self.input.count {
      let byte = self.input[self.index]
      if byte == UInt8(ascii: "<") {
        self.markup()
      } else if byte == UInt8(ascii: "&") {
        self.reference()
      } else {
        self.text(byte)
        self.index += 1
      }
    }
    return String(decoding: self.writer.finish(), as: UTF8.self)
  }

  var isSuppressed: Bool { self.inHead || self.templateDepth > 0 }

  /// One byte of text (of a UTF-8 sequence, or ASCII).
  mutating func text(_ byte: UInt8) {
    guard !self.isSuppressed else { return }
    if self.preDepth > 0 {
      var byte = byte
      if byte == 0x0D {
        // CR LF is one line feed; a lone CR is one too.
        if self.index + 1 < self.input.count, self.input[self.index + 1] == 0x0A { return }
        byte = 0x0A
      }
      if byte == 0x0C { byte = 0x0A }
      if self.dropNextLineFeed {
        self.dropNextLineFeed = false
        if byte == 0x0A { return }
      }
      if byte == 0 {
        self.writer.appendText(contentsOf: "\u{FFFD}".utf8)
      } else {
        self.writer.appendPreformatted(byte)
      }
      return
    }
    if ASCII.isWhitespace(byte) {
      self.writer.appendSpace()
    } else if byte == 0 {
      self.writer.appendText(contentsOf: "\u{FFFD}".utf8)
    } else {
      self.writer.appendText(byte)
    }
  }

  /// `&…`: a character reference, or a literal `&`.
  mutating func reference() {
    guard let (scalar, length) = CharacterReference.decode(self.input, at: self.index, dialect: .html) else {
      self.text(UInt8(ascii: "&"))
      self.index += 1
      return
    }
    self.index += length
    guard !self.isSuppressed else { return }
    self.dropNextLineFeed = false
    let whitespace: UInt8? =
      switch scalar {
      case "\t": 0x09
      case "\n", "\u{0C}", "\r": 0x0A
      case " ", "\u{A0}": 0x20
      default: nil
      }
    if let whitespace {
      if self.preDepth > 0 { self.writer.appendPreformatted(whitespace) } else { self.writer.appendSpace() }
    } else {
      self.writer.appendText(contentsOf: String(Character(scalar)).utf8)
    }
  }

  /// `<…`: a tag, a comment, a doctype or processing instruction, or a literal `<`.
  mutating func markup() {
    let next = self.index + 1 < self.input.count ? self.input[self.index + 1] : nil
    switch next {
    case UInt8(ascii: "!"):
      if self.input[self.index...].starts(with: WordDocumentConverter.commentStart) {
        self.skipComment()
      } else {
        self.skipBogusComment(from: self.index + 2)
      }
    case UInt8(ascii: "?"):
      self.skipBogusComment(from: self.index + 2)
    case UInt8(ascii: "/"):
      let afterSlash = self.index + 2
      if afterSlash < self.input.count, ASCII.isLetter(self.input[afterSlash]) {
        self.tag(nameStart: afterSlash, isEnd: true)
      } else if afterSlash < self.input.count, self.input[afterSlash] == UInt8(ascii: ">") {
        self.index = afterSlash + 1  // `</>` is nothing.
      } else if afterSlash >= self.input.count {
        self.text(UInt8(ascii: "<"))
        self.text(UInt8(ascii: "/"))
        self.index = self.input.count
      } else {
        self.skipBogusComment(from: afterSlash)
      }
    case let byte? where ASCII.isLetter(byte):
      self.tag(nameStart: self.index + 1, isEnd: false)
    default:
      self.text(UInt8(ascii: "<"))
      self.index += 1
    }
  }

  /// `<!-- … -->`; `<!-->` and `<!--->` are empty comments; unclosed, it runs to the end.
  mutating func skipComment() {
    let bodyStart = self.index + 4
    if self.input[bodyStart...].starts(with: [UInt8(ascii: ">")]) {
      self.index = bodyStart + 1
    } else if self.input[bodyStart...].starts(with: WordDocumentConverter.commentEnd.dropFirst()) {
      self.index = bodyStart + 2
    } else if let end = MarkupScanner.find(WordDocumentConverter.commentEnd, in: self.input, from: bodyStart) {
      self.index = end + 3
    } else {
      self.index = self.input.count
    }
  }

  /// `<!doctype …>`, `<?…>`, `</ …>`: up to the next `>` (or the end).
  mutating func skipBogusComment(from start: Int) {
    let end = start < self.input.count ? self.input[start...].firstIndex(of: UInt8(ascii: ">")) : nil
    self.index = end.map { $0 + 1 } ?? self.input.count
  }

  /// A start or end tag whose name starts at `nameStart`.
  mutating func tag(nameStart: Int, isEnd: Bool) {
    let (name, nameEnd) = MarkupScanner.tagName(in: self.input, from: nameStart, lowercase: true)
    guard let (end, selfClosing) = MarkupScanner.tagEnd(in: self.input, from: nameEnd) else {
      // The input ends inside the tag: browsers drop it.
      self.index = self.input.count
      return
    }
    self.index = end
    if isEnd {
      self.endTag(name)
    } else {
      self.startTag(name, selfClosing: selfClosing)
    }
  }

  /// The elements whose contents are raw text we drop: skipped to their end tag.
  static let rawTextElements: Set<String> = ["script", "style", "noscript", "iframe", "noembed", "noframes", "xmp"]
  /// What a `<head>` may hold; anything else ends it.
  static let headElements: Set<String> = [
    "title", "meta", "link", "style", "script", "noscript", "base", "template", "basefont", "bgsound",
  ]
  static let paragraphElements: Set<String> = [
    "p", "blockquote", "table", "ul", "ol", "dl", "hr", "section", "article", "header", "footer", "nav",
    "aside", "main", "figure", "form", "fieldset", "details", "address", "hgroup", "menu", "center",
  ]
  static let lineElements: Set<String> = [
    "div", "tr", "dt", "dd", "caption", "figcaption", "summary", "option", "legend", "thead", "tbody", "tfoot",
    "textarea", "select", "dialog", "search",
  ]

  mutating func startTag(_ name: String, selfClosing: Bool) {
    if self.inHead, !Self.headElements.contains(name) { self.inHead = false }
    switch name {
    case "head": self.inHead = !selfClosing
    case "body": self.inHead = false
    case "template": if !selfClosing { self.templateDepth += 1 }
    default: break
    }
    if Self.rawTextElements.contains(name) {
      self.skipRawText(name)
      return
    }
    guard !self.isSuppressed else { return }
    self.dropNextLineFeed = false
    switch name {
    case "br":
      self.writer.lineBreak()
    case "h1", "h2", "h3", "h4", "h5", "h6":
      self.writer.requestBreak(2)
      let level = Int(name.utf8.last.map { $0 - UInt8(ascii: "0") } ?? 1)
      self.writer.setPrefix(Array(repeating: UInt8(ascii: "#"), count: level) + [UInt8(ascii: " ")])
    case "li":
      self.writer.requestBreak(1)
      self.writer.setPrefix(Array("- ".utf8))
    case "pre", "listing":
      self.writer.requestBreak(2)
      if !selfClosing {
        self.preDepth += 1
        self.dropNextLineFeed = true
      }
    case "td", "th":
      self.writer.appendSpace()
    default:
      if Self.paragraphElements.contains(name) {
        self.writer.requestBreak(2)
      } else if Self.lineElements.contains(name) {
        self.writer.requestBreak(1)
      }
    }
  }

  mutating func endTag(_ name: String) {
    switch name {
    case "head":
      self.inHead = false
      return
    case "template":
      self.templateDepth = max(0, self.templateDepth - 1)
      return
    default: break
    }
    guard !self.isSuppressed else { return }
    switch name {
    case "br":
      self.writer.lineBreak()  // `</br>` is a `<br>` to browsers.
    case "h1", "h2", "h3", "h4", "h5", "h6":
      self.writer.clearPrefix()
      self.writer.requestBreak(2)
    case "li":
      self.writer.clearPrefix()
      self.writer.requestBreak(1)
    case "pre", "listing":
      self.preDepth = max(0, self.preDepth - 1)
      self.dropNextLineFeed = false
      self.writer.requestBreak(2)
    case "td", "th":
      self.writer.appendSpace()
    default:
      if Self.paragraphElements.contains(name) {
        self.writer.requestBreak(2)
      } else if Self.lineElements.contains(name) {
        self.writer.requestBreak(1)
      }
    }
  }

  /// Skips to just past `</name …>` (ASCII case-insensitive), or to the end.
  mutating func skipRawText(_ name: String) {
    var position = self.index
    while position < self.input.count, let lessThan = self.input[position...].firstIndex(of: UInt8(ascii: "<")) {
      let nameStart = lessThan + 2
      let nameEnd = nameStart + name.utf8.count
      if nameEnd <= self.input.count, self.input[lessThan + 1] == UInt8(ascii: "/"),
        ASCII.hasPrefix(self.input[nameStart...], caseInsensitive: name),
        nameEnd == self.input.count || ASCII.isWhitespace(self.input[nameEnd])
          || self.input[nameEnd] == UInt8(ascii: "/")
          || self.input[nameEnd] == UInt8(ascii: ">")
      {
        self.index = MarkupScanner.tagEnd(in: self.input, from: nameEnd)?.end ?? self.input.count
        return
      }
      position = lessThan + 1
    }
    self.index = self.input.count
  }
}

/// Text output with collapsible spaces and pending line breaks: a space or a break is written
/// only when text follows it, so no element produces leading, trailing or doubled blank lines.
struct BlockTextWriter {
  private(set) var bytes: [UInt8] = []
  /// A space is due before the next text (collapsed whitespace).
  private var pendingSpace = false
  /// Line feeds due before the next text (0, 1, or 2 for a blank line), counting those written.
  private var pendingBreaks = 0
  /// A line prefix (`# `, `- `) due at the start of the next text.
  private var pendingPrefix: [UInt8] = []

  mutating func reserveCapacity(_ count: Int) { self.bytes.reserveCapacity(count) }

  /// A byte of text.
  mutating func appendText(_ byte: UInt8) {
    if self.pendingSpace || self.pendingBreaks > 0 || !self.pendingPrefix.isEmpty { self.flush() }
    self.bytes.append(byte)
  }

  /// Bytes of text.
  mutating func appendText(contentsOf text: some Sequence<UInt8>) {
    if self.pendingSpace || self.pendingBreaks > 0 || !self.pendingPrefix.isEmpty { self.flush() }
    self.bytes.append(contentsOf: text)
  }

  /// A byte of preformatted text, whitespace included, written as it is.
  mutating func appendPreformatted(_ byte: UInt8) {
    self.appendText(byte)
  }

  /// Collapsible whitespace.
  mutating func appendSpace() {
    if !self.bytes.isEmpty { self.pendingSpace = true }
  }

  /// Asks for at least `newlines` line feeds (1: a new line, 2: a blank line) before the next text.
  mutating func requestBreak(_ newlines: Int) {
    self.pendingBreaks = max(self.pendingBreaks, newlines)
  }

  /// `<br>`: one more line feed than is due, up to a blank line.
  mutating func lineBreak() {
    self.pendingSpace = false
    self.pendingBreaks = min(2, max(self.pendingBreaks, self.trailingLineFeeds) + 1)
  }

  mutating func setPrefix(_ prefix: [UInt8]) { self.pendingPrefix = prefix }

  mutating func clearPrefix() { self.pendingPrefix = [] }

  /// The text, without trailing whitespace.
  mutating func finish() -> [UInt8] {
    while let last = self.bytes.last, ASCII.isWhitespace(last) { self.bytes.removeLast() }
    return self.bytes
  }

  private var trailingLineFeeds: Int {
    var count = 0
    for byte in self.bytes.reversed() {
      guard byte == 0x0A, count < 2 else { break }
      count += 1
    }
    return count
  }

  private mutating func flush() {
    if !self.bytes.isEmpty {
      if self.pendingBreaks > 0 {
        // Trailing spaces before a line break are noise.
        while self.bytes.last == UInt8(ascii: " ") { self.bytes.removeLast() }
        let written = self.trailingLineFeeds
        if written < self.pendingBreaks {
          self.bytes.append(contentsOf: repeatElement(0x0A, count: self.pendingBreaks - written))
        }
      } else if self.pendingSpace, let last = self.bytes.last, last != 0x0A {
        self.bytes.append(UInt8(ascii: " "))
      }
    }
    self.pendingBreaks = 0
    self.pendingSpace = false
    if !self.pendingPrefix.isEmpty {
      if self.bytes.isEmpty || self.bytes.last == 0x0A { self.bytes.append(contentsOf: self.pendingPrefix) }
      self.pendingPrefix = []
    }
  }
}
