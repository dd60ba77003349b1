internal import Foundation

/// One piece of a document, ready to embed.
///
/// Offsets count Swift `Character`s (extended grapheme clusters), not bytes or scalars, and point at exactly
/// the chunk's (trimmed) text: `String(Array(source)[chunk.startOffset..<chunk.endOffset]) == chunk.text`.
public struct Chunk: Sendable, Equatable {
  public var text: String
  /// Position in the document's chunk list, from 0.
  public var index: Int
  /// Character offset of the chunk's first character in the source text.
  public var startOffset: Int
  /// Character offset just past the chunk's last character (exclusive).
  public var endOffset: Int
  /// `Tokenizer.count` of `text`.
  public var tokenCount: Int
  /// The Markdown headings in effect at the chunk, outermost first (empty without `markdown`).
  public var headingPath: [String]
  /// The 1-based page where the chunk starts, when the source separates pages with form feeds
  /// (`\u{0C}`, as pdftotext does); nil when the source has no form feed.
  public var page: Int?

  public init(
    text: String, index: Int, startOffset: Int, endOffset: Int, tokenCount: Int, headingPath: [String] = [],
    page: Int? = nil
  ) {
    self.text = text
    self.index = index
    self.startOffset = startOffset
    self.endOffset = endOffset
    self.tokenCount = tokenCount
    self.headingPath = headingPath
    self.page = page
  }
}

/// How a document is cut into chunks. Sizes are in `Tokenizer` tokens.
public struct ChunkingOptions: Sendable, Equatable {
  public enum Strategy: String, Sendable, CaseIterable {
    /// Windows of `size` tokens that end at whitespace; the next window repeats up to `overlap` tokens of
    /// whole words. A single word longer than `size` is cut every `size` tokens (4 characters a token).
    case fixed
    /// Whole sentences packed greedily up to `size`; the next chunk repeats the previous chunk's trailing
    /// whole sentences, up to `overlap` tokens. A sentence longer than `size` falls back to fixed windows.
    case sentence
    /// Whole paragraphs (split on blank lines) packed greedily up to `size`; a paragraph longer than `size`
    /// is split into sentences, a sentence longer than `size` into fixed windows. Overlap as for sentences.
    case paragraph
  }

  public static let validSizes = 16...8192

  public var strategy: Strategy
  /// Target (and maximum) tokens per chunk; `validated()` accepts 16...8192.
  public var size: Int
  /// Tokens repeated at the start of the next chunk; `validated()` accepts 0 ≤ overlap < size / 2, so every
  /// chunk advances by more than half its size.
  public var overlap: Int
  /// Markdown-aware: ATX headings start sections that no chunk spans, headings become `headingPath`, and
  /// fenced code blocks are never split unless one alone exceeds `size`.
  public var markdown: Bool

  /// Paragraphs of 512 tokens, 50 tokens of overlap, plain text.
  public static let `default` = ChunkingOptions()

  public init(strategy: Strategy = .paragraph, size: Int = 512, overlap: Int = 50, markdown: Bool = false) {
    self.strategy = strategy
    self.size = size
    self.overlap = overlap
    self.markdown = markdown
  }

  /// The options unchanged when they are in range; the error names the field (`chunk_size`, `chunk_overlap`).
  public func validated() throws(ChunkingError) -> ChunkingOptions {
    guard Self.validSizes.contains(self.size) else {
      let bounds = "\(Self.validSizes.lowerBound) and \(Self.validSizes.upperBound)"
      throw .invalid(field: "chunk_size", reason: "must be between \(bounds) tokens, got \(self.size)")
    }
    guard self.overlap >= 0, self.overlap < self.size / 2 else {
      throw .invalid(
        field: "chunk_overlap",
        reason: "must be at least 0 and less than half of chunk_size (\(self.size)), got \(self.overlap)")
    }
    return self
  }
}

public enum ChunkingError: Error, Equatable, Sendable, CustomStringConvertible {
  case invalid(field: String, reason: String)

  public var description: String {
    switch self {
    case .invalid(let field, let reason): "\(field): \(reason)"
    }
  }
}

/// An approximate, model-independent token count: each run of letters/digits counts ⌈length / 4⌉ tokens (so a
/// word of up to 4 characters is one token, a 10-letter word three), each other non-whitespace character
/// (punctuation, symbols, emoji) one token; whitespace is free. Lengths are in Characters. Deterministic, O(n).
/// It errs on the high side of subword tokenizers, so chunks fit the embedding model's window.
public enum Tokenizer {
  public static func count(_ text: Substring) -> Int {
    self.count(kinds: text.lazy.map(CharKind.init))
  }

  public static func count(_ text: String) -> Int {
    self.count(text[...])
  }

  fileprivate static func count<S: Sequence<CharKind>>(kinds: S) -> Int {
    var total = 0
    var run = 0
    for kind in kinds {
      if kind == .word {
        run += 1
        continue
      }
      total += (run + 3) / 4
      run = 0
      if kind == .punct { total += 1 }
    }
    return total + (run + 3) / 4
  }
}

/// Cuts text into `Chunk`s; see `ChunkingOptions.Strategy` for the strategies. For every strategy:
/// - chunks are never empty, are trimmed of whitespace, and never exceed `size` tokens;
/// - with `markdown`, ATX headings (`#`…`######` at a line start, outside ``` / ~~~ fences) open sections: the
///   heading line starts the section's first chunk, no chunk or overlap crosses a section, and a fenced block
///   is kept whole unless it alone exceeds `size` (then fixed windows);
/// - form feeds separate pages, and no chunk or overlap crosses one (a code block excepted), so `page` is the
///   chunk's page;
/// - the work is iterative and linear in the text, and stops after `maxChunks` chunks.
///
/// `chunks(of:options:)` does not throw: it clamps out-of-range options (size ≥ 1, 0 ≤ overlap < size); use
/// `ChunkingOptions.validated()` to reject them at the edge.
public enum Chunker {
  public static func chunks(of text: String, options: ChunkingOptions, maxChunks: Int = 100_000) -> [Chunk] {
    guard maxChunks > 0, !text.isEmpty else { return [] }
    let doc = SourceText(text)
    let size = max(1, options.size)
    var packer = Packer(doc: doc, size: size, overlap: min(max(0, options.overlap), size - 1), maxChunks: maxChunks)
    let level = Level(options.strategy)
    for section in doc.pages(of: doc.sections(markdown: options.markdown)) {
      packer.headingPath = section.headingPath
      for segment in section.segments {
        packer.add(doc.atoms(of: segment, level: level))
        if packer.isFull { return packer.chunks }
      }
      packer.endSection()
    }
    return packer.chunks
  }

  /// The sentences of `text` as the sentence strategy sees them (for tests and diagnostics).
  static func sentences(of text: String) -> [String] {
    let doc = SourceText(text)
    return doc.paragraphs(0..<doc.chars.count).flatMap { doc.sentences($0.range) }.map { String(doc.chars[$0.range]) }
  }
}

// MARK: - Implementation

fileprivate enum CharKind: UInt8 {
  case space, newline, word, punct

  init(_ c: Character) {
    if c.isWhitespace {
      self = c.isNewline ? .newline : .space
    } else {
      self = c.isLetter || c.isNumber ? .word : .punct
    }
  }

  var isSpace: Bool { self == .space || self == .newline }
}

/// The granularity of a span, coarsest first; an oversized span is replaced by its children one level down.
fileprivate enum Level: Int {
  case block, sentence, word, piece

  init(_ strategy: ChunkingOptions.Strategy) {
    switch strategy {
    case .paragraph: self = .block
    case .sentence: self = .sentence
    case .fixed: self = .word
    }
  }
}

/// A trimmed, non-empty range of the document with its token count.
fileprivate struct Span {
  var range: Range<Int>
  var tokens: Int
  var level: Level
  /// A fenced code block: never split into sentences, never split at all unless it exceeds the size.
  var isCode = false
}

fileprivate struct Segment {
  enum Kind { case heading, prose, code }
  var kind: Kind
  var range: Range<Int>
}

fileprivate struct Section {
  var headingPath: [String]
  var segments: [Segment]
}

/// The source as Characters, with each Character's class and the form feed positions.
fileprivate struct SourceText {
  let chars: [Character]
  let kinds: [CharKind]
  let formFeeds: [Int]

  static let terminators: Set<Character> = [".", "!", "?"]
  static let cjkTerminators: Set<Character> = ["。", "！", "？"]
  static let closers: Set<Character> = ["\"", "'", ")", "]", "”", "’", "」", "』"]
  static let trailers = closers.union(terminators).union(cjkTerminators)
  static let openers: Set<Character> = ["\"", "'", "(", "[", "“", "‘", "「", "『"]
  /// Lower-cased words that end with a period without ending the sentence (single letters and dotted
  /// initialisms like "e.g." and "U.S." are recognised separately).
  static let abbreviations: Set<String> = [
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "fig", "figs", "vol", "approx", "inc", "ltd",
    "corp", "cf", "al", "dept", "gen", "rev", "capt", "col", "lt", "mt", "ave", "eg", "ie", "resp", "ca", "pp",
  ]

  init(_ text: String) {
    let chars = Array(text)
    self.chars = chars
    self.kinds = chars.map(CharKind.init)
    self.formFeeds = chars.indices.filter { chars[$0] == "\u{0C}" }
  }

  func span(_ range: Range<Int>, _ level: Level, isCode: Bool = false) -> Span? {
    var lower = range.lowerBound
    var upper = range.upperBound
    while lower < upper, self.kinds[lower].isSpace { lower += 1 }
    while upper > lower, self.kinds[upper - 1].isSpace { upper -= 1 }
    guard lower < upper else { return nil }
    let tokens = Tokenizer.count(kinds: self.kinds[lower..<upper])
    return Span(range: lower..<upper, tokens: tokens, level: level, isCode: isCode)
  }

  /// 1 + the number of form feeds before `offset`; nil when the text has none.
  func page(at offset: Int) -> Int? {
    guard !self.formFeeds.isEmpty else { return nil }
    var low = 0
    var high = self.formFeeds.count
    while low < high {
      let mid = (low + high) / 2
      if self.formFeeds[mid] < offset { low = mid + 1 } else { high = mid }
    }
    return low + 1
  }

  /// The index of the line break ending the line that starts at `start` (or the text's end).
  func lineEnd(from start: Int) -> Int {
    var i = start
    while i < self.chars.count, self.kinds[i] != .newline { i += 1 }
    return i
  }

  // MARK: Markdown structure

  /// The sections of the text: one per ATX heading (plus the text before the first), each cut into the
  /// heading line, prose runs and fenced code blocks. Without `markdown`, one prose section.
  /// `sections` cut again at form feeds: a page break ends a section (the next one keeps its
  /// heading path). Code blocks are not cut.
  func pages(of sections: [Section]) -> [Section] {
    guard !self.formFeeds.isEmpty else { return sections }
    var pages: [Section] = []
    var next = 0  // the first form feed not yet passed
    for section in sections {
      var current = Section(headingPath: section.headingPath, segments: [])
      for segment in section.segments {
        while next < self.formFeeds.count && self.formFeeds[next] < segment.range.lowerBound { next += 1 }
        guard segment.kind != .code else {
          current.segments.append(segment)
          while next < self.formFeeds.count && self.formFeeds[next] < segment.range.upperBound { next += 1 }
          continue
        }
        var start = segment.range.lowerBound
        while next < self.formFeeds.count && self.formFeeds[next] < segment.range.upperBound {
          let feed = self.formFeeds[next]
          if feed > start { current.segments.append(Segment(kind: segment.kind, range: start..<feed)) }
          if !current.segments.isEmpty { pages.append(current) }
          current = Section(headingPath: section.headingPath, segments: [])
          start = feed + 1
          next += 1
        }
        if start < segment.range.upperBound { current.segments.append(Segment(kind: segment.kind, range: start..<segment.range.upperBound)) }
      }
      if !current.segments.isEmpty { pages.append(current) }
    }
    return pages
  }

  func sections(markdown: Bool) -> [Section] {
    let count = self.chars.count
    guard markdown else { return [Section(headingPath: [], segments: [Segment(kind: .prose, range: 0..<count)])] }
    var sections: [Section] = []
    var headings: [(level: Int, title: String)] = []
    var current = Section(headingPath: [], segments: [])
    var proseStart: Int?
    var fence: (marker: Character, length: Int, start: Int)?
    var lineStart = 0
    func endProse(at end: Int) {
      if let start = proseStart { current.segments.append(Segment(kind: .prose, range: start..<end)) }
      proseStart = nil
    }
    while lineStart <= count {
      let lineEnd = self.lineEnd(from: lineStart)
      let line = lineStart..<lineEnd
      if let open = fence {
        if let close = self.fenceMarker(line), close.marker == open.marker, close.length >= open.length, close.bare {
          current.segments.append(Segment(kind: .code, range: open.start..<lineEnd))
          fence = nil
        }
      } else if let open = self.fenceMarker(line) {
        endProse(at: lineStart)
        fence = (open.marker, open.length, lineStart)
      } else if let heading = self.heading(line) {
        endProse(at: lineStart)
        if !current.segments.isEmpty { sections.append(current) }
        while let last = headings.last, last.level >= heading.level { headings.removeLast() }
        headings.append(heading)
        current = Section(headingPath: headings.map(\.title), segments: [Segment(kind: .heading, range: line)])
      } else if proseStart == nil {
        proseStart = lineStart
      }
      lineStart = lineEnd + 1
    }
    if let open = fence { current.segments.append(Segment(kind: .code, range: open.start..<count)) }
    endProse(at: count)
    if !current.segments.isEmpty { sections.append(current) }
    return sections
  }

  /// The first index of `line` after up to three spaces of indentation.
  func contentStart(_ line: Range<Int>) -> Int {
    var i = line.lowerBound
    while i < line.upperBound, i - line.lowerBound < 3, self.chars[i] == " " { i += 1 }
    return i
  }

  /// A fence line: 3+ backticks or tildes; `bare` when nothing but whitespace follows (a closing fence).
  func fenceMarker(_ line: Range<Int>) -> (marker: Character, length: Int, bare: Bool)? {
    let start = self.contentStart(line)
    guard start < line.upperBound, self.chars[start] == "`" || self.chars[start] == "~" else { return nil }
    let marker = self.chars[start]
    var i = start
    while i < line.upperBound, self.chars[i] == marker { i += 1 }
    guard i - start >= 3 else { return nil }
    return (marker, i - start, self.kinds[i..<line.upperBound].allSatisfy(\.isSpace))
  }

  /// An ATX heading line: 1–6 `#` then whitespace or the line's end; the title drops a closing `#` run.
  func heading(_ line: Range<Int>) -> (level: Int, title: String)? {
    let start = self.contentStart(line)
    var i = start
    while i < line.upperBound, self.chars[i] == "#" { i += 1 }
    guard (1...6).contains(i - start), i == line.upperBound || self.kinds[i] == .space else { return nil }
    guard var title = self.span(i..<line.upperBound, .block)?.range else { return (i - start, "") }
    var end = title.upperBound
    while end > title.lowerBound, self.chars[end - 1] == "#" { end -= 1 }
    if end == title.lowerBound || self.kinds[end - 1] == .space {
      title = self.span(title.lowerBound..<end, .block)?.range ?? end..<end
    }
    return (i - start, String(self.chars[title]))
  }

  // MARK: Spans

  /// The top-level spans of a segment for a strategy's level: code blocks whole, a heading line as one
  /// paragraph or sentence (words for fixed), prose as paragraphs, sentences or words.
  func atoms(of segment: Segment, level: Level) -> [Span] {
    switch segment.kind {
    case .code:
      return self.span(segment.range, .block, isCode: true).map { [$0] } ?? []
    case .heading where level != .word:
      return self.span(segment.range, level).map { [$0] } ?? []
    case .heading, .prose:
      switch level {
      case .block: return self.paragraphs(segment.range)
      case .sentence: return self.paragraphs(segment.range).flatMap { self.sentences($0.range) }
      case .word, .piece: return self.words(segment.range)
      }
    }
  }

  /// The next level's spans of an oversized span: paragraphs → sentences, sentences and code → words,
  /// words → pieces of one token.
  func children(of span: Span) -> [Span] {
    switch span.level {
    case .block: span.isCode ? self.words(span.range) : self.sentences(span.range)
    case .sentence: self.words(span.range)
    case .word: self.pieces(span.range)
    case .piece: []
    }
  }

  /// Runs of lines separated by blank (whitespace-only) lines.
  func paragraphs(_ range: Range<Int>) -> [Span] {
    var result: [Span] = []
    var start: Int?
    var lineHasText = false
    for i in range {
      switch self.kinds[i] {
      case .newline:
        if !lineHasText, let paragraph = start {
          if let span = self.span(paragraph..<i, .block) { result.append(span) }
          start = nil
        }
        lineHasText = false
      case .space:
        break
      case .word, .punct:
        if start == nil { start = i }
        lineHasText = true
      }
    }
    if let paragraph = start, let span = self.span(paragraph..<range.upperBound, .block) { result.append(span) }
    return result
  }

  /// Sentences end after `.`, `!` or `?` (plus closing quotes/brackets) followed by whitespace and then an
  /// uppercase or caseless letter, a digit, an opening quote or the end; or right after `。！？`. A period
  /// after an abbreviation, an initial or a list number does not end a sentence; decimals (3.14) have no
  /// whitespace after the period.
  func sentences(_ range: Range<Int>) -> [Span] {
    var result: [Span] = []
    var start = range.lowerBound
    var i = range.lowerBound
    while i < range.upperBound {
      let c = self.chars[i]
      let isCJK = Self.cjkTerminators.contains(c)
      guard isCJK || Self.terminators.contains(c) else {
        i += 1
        continue
      }
      var end = i + 1
      while end < range.upperBound, Self.trailers.contains(self.chars[end]) { end += 1 }
      var next = end
      while next < range.upperBound, self.kinds[next].isSpace { next += 1 }
      if isCJK || self.endsSentence(mark: i, end: end, next: next, in: start..<range.upperBound) {
        if let span = self.span(start..<end, .sentence) { result.append(span) }
        start = next
      }
      i = end
    }
    if let span = self.span(start..<range.upperBound, .sentence) { result.append(span) }
    return result
  }

  /// Whether the terminator at `mark` (its run of terminators and closers ending at `end`, then whitespace up
  /// to `next`) ends the sentence that started at `sentence.lowerBound`.
  func endsSentence(mark: Int, end: Int, next: Int, in sentence: Range<Int>) -> Bool {
    guard next > end else { return false }  // no whitespace after it: "3.14", "a.b"
    guard next < sentence.upperBound else { return true }
    let first = self.chars[next]
    guard first.isNumber || (first.isLetter && !first.isLowercase) || Self.openers.contains(first) else { return false }
    return !(self.chars[mark] == "." && end == mark + 1 && self.isAbbreviation(period: mark, in: sentence))
  }

  /// Whether the period at `period` follows an abbreviation ("Dr.", "etc."), a single initial ("J."), a dotted
  /// initialism ("e.g.", "U.S.") or a list number ("1.") at a line's or the sentence's (`range`'s) start.
  func isAbbreviation(period: Int, in range: Range<Int>) -> Bool {
    let inWord = { (i: Int) in self.chars[i].isLetter || self.chars[i] == "." }
    var start = period
    while start > range.lowerBound, period - start < 12, inWord(start - 1) { start -= 1 }
    if start == period {  // a number: a list marker when it starts its line
      while start > range.lowerBound, period - start < 4, self.chars[start - 1].isNumber { start -= 1 }
      return start < period && (start == range.lowerBound || self.kinds[start - 1] == .newline)
    }
    guard start == range.lowerBound || self.kinds[start - 1] != .word else { return false }  // too long: a word
    let word = String(self.chars[start..<period])
    let parts = word.split(separator: ".", omittingEmptySubsequences: false)
    if parts.allSatisfy({ $0.count == 1 }) { return parts.count > 1 || word.first!.isUppercase }
    return Self.abbreviations.contains(word.lowercased())
  }

  /// Runs of non-whitespace.
  func words(_ range: Range<Int>) -> [Span] {
    var result: [Span] = []
    var i = range.lowerBound
    while i < range.upperBound {
      guard !self.kinds[i].isSpace else {
        i += 1
        continue
      }
      var end = i
      while end < range.upperBound, !self.kinds[end].isSpace { end += 1 }
      result.append(Span(range: i..<end, tokens: Tokenizer.count(kinds: self.kinds[i..<end]), level: .word))
      i = end
    }
    return result
  }

  /// One-token pieces of a word: each punctuation mark, and letters/digits 4 at a time from the run's start.
  func pieces(_ range: Range<Int>) -> [Span] {
    var result: [Span] = []
    var i = range.lowerBound
    while i < range.upperBound {
      var end = i + 1
      if self.kinds[i] == .word {
        while end < range.upperBound, end - i < 4, self.kinds[end] == .word { end += 1 }
      }
      if !self.kinds[i].isSpace { result.append(Span(range: i..<end, tokens: 1, level: .piece)) }
      i = end
    }
    return result
  }
}

/// Packs spans greedily into chunks of at most `size` tokens. A span over `size` is replaced by its children
/// (an explicit stack: no recursion). When a chunk is emitted, its trailing whole units up to `overlap` tokens
/// (a trailing paragraph contributes its trailing sentences) start the next chunk; they are dropped, oldest
/// first, when the next span would not fit beside them.
fileprivate struct Packer {
  let doc: SourceText
  let size: Int
  let overlap: Int
  let maxChunks: Int
  var headingPath: [String] = []
  var chunks: [Chunk] = []
  /// The current chunk's spans; the first `carried` are the previous chunk's overlap.
  var units: [Span] = []
  var tokens = 0
  var carried = 0

  var isFull: Bool { self.chunks.count >= self.maxChunks }

  mutating func add(_ atoms: [Span]) {
    var pending: [Span] = []
    var next = 0
    while !self.isFull {
      let span: Span
      if let expanded = pending.popLast() {
        span = expanded
      } else if next < atoms.count {
        span = atoms[next]
        next += 1
      } else {
        return
      }
      if span.tokens > self.size {
        pending.append(contentsOf: self.doc.children(of: span).reversed())
      } else {
        self.place(span)
      }
    }
  }

  /// Emits what is pending; the next section starts without overlap.
  mutating func endSection() {
    if self.units.count > self.carried { self.emit() }
    self.reset(to: [])
  }

  private mutating func place(_ span: Span) {
    if self.tokens + span.tokens > self.size {
      if self.units.count > self.carried {
        self.emit()
        self.reset(to: self.overlapTail())
        if self.isFull { return }
      }
      var dropped = 0
      while dropped < self.units.count, self.tokens + span.tokens > self.size {
        self.tokens -= self.units[dropped].tokens
        dropped += 1
      }
      self.units.removeFirst(dropped)
      self.carried -= dropped
    }
    self.units.append(span)
    self.tokens += span.tokens
  }

  private mutating func emit() {
    let range = self.units[0].range.lowerBound..<self.units[self.units.count - 1].range.upperBound
    self.chunks.append(
      Chunk(
        text: String(self.doc.chars[range]), index: self.chunks.count, startOffset: range.lowerBound,
        endOffset: range.upperBound, tokenCount: Tokenizer.count(kinds: self.doc.kinds[range]),
        headingPath: self.headingPath, page: self.doc.page(at: range.lowerBound)))
  }

  private mutating func reset(to units: [Span]) {
    self.units = units
    self.tokens = units.reduce(0) { $0 + $1.tokens }
    self.carried = units.count
  }

  /// The current chunk's trailing whole units (sentences of a trailing paragraph) up to `overlap` tokens.
  private func overlapTail() -> [Span] {
    var tail: [Span] = []
    var total = 0
    for unit in self.units.reversed() {
      if total + unit.tokens <= self.overlap {
        tail.append(unit)
        total += unit.tokens
        continue
      }
      if unit.level == .block, !unit.isCode {
        for sentence in self.doc.sentences(unit.range).reversed() {
          guard total + sentence.tokens <= self.overlap else { break }
          tail.append(sentence)
          total += sentence.tokens
        }
      }
      break
    }
    return tail.reversed()
  }
}
