import Foundation
import Testing

@testable import Knowledge

@Suite struct ChunkerTests {
  /// 60 sentences of 17 tokens each.
  static let sentences = (1...60).map { "Sentence number \($0) talks about topic \($0 % 7) in some detail." }
  /// 12 paragraphs of 5 sentences.
  static let prose = stride(from: 0, to: 60, by: 5).map { sentences[$0..<$0 + 5].joined(separator: " ") }
    .joined(separator: "\n\n")

  static let markdown = """
    Intro text before any heading.

    # Guide
    Welcome to the guide.

    ## Install
    Run the installer.

    ```sh
    # not a heading
    make install
    ```

    ### Linux
    Use apt.

    ## Usage ##
    Call it.
    """

  /// Every chunk: offsets round-trip, text trimmed and non-empty, indices in order, at most `size` tokens.
  func expectWellFormed(
    _ chunks: [Chunk], of text: String, size: Int, sourceLocation: SourceLocation = #_sourceLocation
  ) {
    let chars = Array(text)
    for (i, chunk) in chunks.enumerated() {
      #expect(String(chars[chunk.startOffset..<chunk.endOffset]) == chunk.text, sourceLocation: sourceLocation)
      #expect(!chunk.text.isEmpty, sourceLocation: sourceLocation)
      #expect(chunk.text == chunk.text.trimmingCharacters(in: .whitespacesAndNewlines), sourceLocation: sourceLocation)
      #expect(chunk.index == i, sourceLocation: sourceLocation)
      #expect(chunk.tokenCount == Tokenizer.count(chunk.text), sourceLocation: sourceLocation)
      #expect(chunk.tokenCount <= size, "\(chunk.tokenCount) tokens", sourceLocation: sourceLocation)
    }
  }

  @Test("The tokenizer counts words by 4 characters, punctuation and emoji one each")
  func tokenizer() {
    #expect(Tokenizer.count("") == 0)
    #expect(Tokenizer.count(" \n\t ") == 0)
    #expect(Tokenizer.count("a bb ccc dddd") == 4)
    #expect(Tokenizer.count("Hello, world!") == 6)  // "Hello" and "world" are 5 characters: 2 tokens each
    #expect(Tokenizer.count("abcdefghij") == 3)
    #expect(Tokenizer.count("3.14") == 3)
    #expect(Tokenizer.count("😀 👍🏽 👨‍👩‍👧") == 3)
    #expect(Tokenizer.count("cafe\u{301}") == 1)
    #expect(Tokenizer.count("Hello, world!".dropFirst(7)) == 3)
  }

  @Test("Empty and whitespace-only input gives no chunks", arguments: ChunkingOptions.Strategy.allCases)
  func emptyInput(strategy: ChunkingOptions.Strategy) {
    for markdown in [false, true] {
      let options = ChunkingOptions(strategy: strategy, markdown: markdown)
      #expect(Chunker.chunks(of: "", options: options).isEmpty)
      #expect(Chunker.chunks(of: "  \n\n \t\u{0C}  \r\n", options: options).isEmpty)
    }
  }

  @Test("Fixed windows stay within size, end at whitespace and repeat the overlap")
  func fixedWindows() {
    let text = (1...400).map { "word\($0 % 13)" }.joined(separator: " ")
    let chunks = Chunker.chunks(of: text, options: .init(strategy: .fixed, size: 32, overlap: 8))
    expectWellFormed(chunks, of: text, size: 32)
    #expect(chunks.count > 10)
    #expect(chunks.first?.startOffset == 0)
    #expect(chunks.last?.endOffset == text.count)
    let chars = Array(text)
    for (previous, next) in zip(chunks, chunks.dropFirst()) {
      #expect(next.startOffset == 0 || chars[next.startOffset - 1] == " ")
      #expect(previous.endOffset == chars.count || chars[previous.endOffset] == " ")
      #expect(previous.startOffset < next.startOffset && next.startOffset < previous.endOffset)
      let repeated = String(chars[next.startOffset..<previous.endOffset])
      #expect(previous.text.hasSuffix(repeated) && next.text.hasPrefix(repeated))
      #expect((1...8).contains(Tokenizer.count(repeated)))
    }
  }

  @Test("A word longer than the size is cut into windows of at most size tokens")
  func oversizedWord() {
    let text = String(repeating: "abcdefgh", count: 40) + " tail"
    let chunks = Chunker.chunks(of: text, options: .init(strategy: .fixed, size: 16, overlap: 2))
    expectWellFormed(chunks, of: text, size: 16)
    #expect(chunks.count == 6)
    #expect(chunks.last?.text.hasSuffix(" tail") == true)
  }

  @Test("Sentences pack up to the size; the next chunk repeats the trailing whole sentence")
  func sentencePacking() throws {
    let text = Self.sentences.joined(separator: " ")
    let chunks = Chunker.chunks(of: text, options: .init(strategy: .sentence, size: 40, overlap: 19))
    expectWellFormed(chunks, of: text, size: 40)
    #expect(chunks.count == 59)
    for (previous, next) in zip(chunks, chunks.dropFirst()) {
      #expect(previous.text.hasSuffix("."))
      let last = try #require(Chunker.sentences(of: previous.text).last)
      #expect(next.text.hasPrefix(last))
    }
    let noOverlap = Chunker.chunks(of: text, options: .init(strategy: .sentence, size: 40, overlap: 0))
    #expect(noOverlap.count == 30)
    #expect(zip(noOverlap, noOverlap.dropFirst()).allSatisfy { $0.endOffset < $1.startOffset })
  }

  @Test("Abbreviations, initials, decimals and list numbers do not end a sentence")
  func sentenceBoundaries() {
    let text = """
      Dr. Smith paid 3.14 dollars, e.g. for apples, pears, etc. and more. J. R. R. Tolkien wrote it. \
      The U.S. economy grew! Did it? "Yes," she said. 1. First item
      2. Second item. 東京に行きました。大阪も好きです。
      """
    #expect(
      Chunker.sentences(of: text) == [
        "Dr. Smith paid 3.14 dollars, e.g. for apples, pears, etc. and more.", "J. R. R. Tolkien wrote it.",
        "The U.S. economy grew!", "Did it?", "\"Yes,\" she said.", "1. First item\n2. Second item.",
        "東京に行きました。", "大阪も好きです。",
      ])
    #expect(
      Chunker.sentences(of: "Version 2. Next one. lower case. Ends") == ["Version 2.", "Next one. lower case.", "Ends"])
  }

  @Test(
    "A sentence longer than the size falls back to overlapping fixed windows",
    arguments: ChunkingOptions.Strategy.allCases)
  func oversizedSentence(strategy: ChunkingOptions.Strategy) {
    let text = (1...200).map { "w\($0)" }.joined(separator: " ") + "."
    let chunks = Chunker.chunks(of: text, options: .init(strategy: strategy, size: 16, overlap: 4))
    expectWellFormed(chunks, of: text, size: 16)
    #expect(chunks.count == 17)  // 201 tokens, advancing 12 a window
    #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $1.startOffset < $0.endOffset })
  }

  @Test("Paragraphs pack whole; the overlap is the previous chunk's trailing sentences")
  func paragraphPacking() throws {
    let chunks = Chunker.chunks(of: Self.prose, options: .init(strategy: .paragraph, size: 120, overlap: 20))
    expectWellFormed(chunks, of: Self.prose, size: 120)
    #expect(chunks.count == 12)
    for (previous, next) in zip(chunks, chunks.dropFirst()) {
      let last = try #require(Chunker.sentences(of: previous.text).last)
      #expect(next.text.hasPrefix(last + "\n\n"))
    }
  }

  @Test("A paragraph longer than the size is split at sentences")
  func oversizedParagraph() {
    let text = "Short one.\n\n" + Self.sentences.joined(separator: " ")
    let chunks = Chunker.chunks(of: text, options: .init(strategy: .paragraph, size: 40, overlap: 0))
    expectWellFormed(chunks, of: text, size: 40)
    #expect(chunks.allSatisfy { $0.text.hasSuffix(".") })
    #expect(chunks.first?.text.hasPrefix("Short one.\n\nSentence number 1 ") == true)
  }

  @Test(
    "Markdown: heading paths nest, headings start their section, fenced `#` lines are not headings",
    arguments: ChunkingOptions.Strategy.allCases)
  func markdownHeadings(strategy: ChunkingOptions.Strategy) {
    let chunks = Chunker.chunks(
      of: Self.markdown, options: .init(strategy: strategy, size: 64, overlap: 8, markdown: true))
    expectWellFormed(chunks, of: Self.markdown, size: 64)
    #expect(
      chunks.map(\.headingPath) == [
        [], ["Guide"], ["Guide", "Install"], ["Guide", "Install", "Linux"], ["Guide", "Usage"],
      ])
    #expect(
      chunks.map { $0.text.prefix(while: { $0 != "\n" }) } == [
        "Intro text before any heading.", "# Guide", "## Install", "### Linux", "## Usage ##",
      ])
    #expect(chunks[2].text.hasSuffix("```sh\n# not a heading\nmake install\n```"))
    // No chunk (nor its overlap) spans two sections.
    #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.endOffset < $1.startOffset })
    let plain = Chunker.chunks(of: Self.markdown, options: .init(strategy: strategy, size: 64, overlap: 8))
    #expect(plain.allSatisfy { $0.headingPath.isEmpty })
  }

  @Test(
    "Markdown: a fenced block is never split unless it alone exceeds the size",
    arguments: ChunkingOptions.Strategy.allCases)
  func markdownCodeBlocks(strategy: ChunkingOptions.Strategy) {
    let code = "```\n" + (1...12).map { "let x\($0) = \($0)" }.joined(separator: "\n") + "\n```"
    let text = "# Code\n" + Self.sentences.prefix(6).joined(separator: " ") + "\n" + code + "\nAfter the code block."
    let chunks = Chunker.chunks(of: text, options: .init(strategy: strategy, size: 80, overlap: 10, markdown: true))
    expectWellFormed(chunks, of: text, size: 80)
    #expect(chunks.contains { $0.text.contains(code) })
    #expect(!chunks.contains { $0.text.contains("let x") && !$0.text.contains(code) })

    let big = "# Big\n```\n" + (1...200).map { "let x\($0) = \($0)" }.joined(separator: "\n") + "\n```"
    let windows = Chunker.chunks(of: big, options: .init(strategy: strategy, size: 32, overlap: 4, markdown: true))
    expectWellFormed(windows, of: big, size: 32)
    #expect(windows.count > 10)
    #expect(windows.allSatisfy { $0.headingPath == ["Big"] })
  }

  @Test("Form feeds number pages; no chunk crosses a page")
  func pages() {
    let text =
      "Page one has a few more words here.\n\u{0C}Page two has a few more words here.\u{0C}Page three has a few more words here."
    let chunks = Chunker.chunks(of: text, options: .init(strategy: .sentence, size: 16, overlap: 0))
    expectWellFormed(chunks, of: text, size: 16)
    #expect(chunks.map(\.page) == [1, 2, 3])
    // Even when the pages would fit in one chunk.
    let large = Chunker.chunks(of: text, options: .init(strategy: .fixed, size: 512, overlap: 0))
    #expect(large.map(\.page) == [1, 2, 3] && large.map(\.text) == text.split(separator: "\u{0C}").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
    #expect(Chunker.chunks(of: "No pages here.", options: .default).map(\.page) == [nil])
  }

  @Test("Unicode: emoji, CJK and combining marks keep their offsets", arguments: ChunkingOptions.Strategy.allCases)
  func unicode(strategy: ChunkingOptions.Strategy) {
    let text = """
      Café déjà vu 👨‍👩‍👧 family. Ñandú e\u{301}te\u{301}! 東京は日本の首都です。大阪も大きい都市です。

      🇫🇷🇩🇪 flags and 한국어 텍스트. Zürich ist schön.
      """
    for markdown in [false, true] {
      let chunks = Chunker.chunks(
        of: text, options: .init(strategy: strategy, size: 16, overlap: 4, markdown: markdown))
      expectWellFormed(chunks, of: text, size: 16)
      #expect(chunks.count >= 2)
      #expect(chunks.last?.endOffset == text.count)
    }
  }

  @Test("Options are validated and the error names the field")
  func validation() throws {
    #expect(try ChunkingOptions.default.validated() == .default)
    #expect(ChunkingOptions.default == ChunkingOptions(strategy: .paragraph, size: 512, overlap: 50, markdown: false))
    func field(_ options: ChunkingOptions) -> String? {
      do throws(ChunkingError) {
        _ = try options.validated()
        return nil
      } catch {
        switch error {
        case .invalid(let field, _): return field
        }
      }
    }
    #expect(field(.init(size: 8)) == "chunk_size")
    #expect(field(.init(size: 10_000)) == "chunk_size")
    #expect(field(.init(size: 512, overlap: -1)) == "chunk_overlap")
    #expect(field(.init(size: 512, overlap: 256)) == "chunk_overlap")
    #expect(field(.init(size: 512, overlap: 255)) == nil)
    #expect(field(.init(size: 16, overlap: 0)) == nil)
    #expect(throws: ChunkingError.self) { try ChunkingOptions(size: 0).validated() }
  }

  @Test("Chunking is deterministic and stops at maxChunks")
  func determinismAndLimit() {
    let text = Self.sentences.joined(separator: " ")
    let options = ChunkingOptions(strategy: .sentence, size: 16, overlap: 0)
    #expect(Chunker.chunks(of: text, options: options) == Chunker.chunks(of: text, options: options))
    #expect(Chunker.chunks(of: text, options: options, maxChunks: 3).count == 3)
    #expect(Chunker.chunks(of: text, options: options, maxChunks: 0).isEmpty)
  }

  @Test("A 1 MB document is chunked", arguments: ChunkingOptions.Strategy.allCases)
  func largeInput(strategy: ChunkingOptions.Strategy) {
    var text = ""
    while text.utf8.count < 1 << 20 { text += Self.prose + "\n\n" }
    let chunks = Chunker.chunks(of: text, options: .init(strategy: strategy))
    #expect(chunks.count > 0)
    #expect(chunks.allSatisfy { $0.tokenCount <= 512 })
  }
}
