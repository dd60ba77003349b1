import Foundation
import GRPCRuntime
import PlatformCore
import PlatformProtos
import PlatformTesting
import SwiftProtobuf
import Testing
@testable import Knowledge

/// The fixtures of `Fixtures/make_fixtures.py`, written once per test process into a temporary
/// directory (nothing binary is committed).
enum ExtractionFixtures {
  static let directory: URL = {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("knowledge-fixtures-\(getpid())")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/make_fixtures.py")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = [script.path, directory.path]
    try? process.run()
    process.waitUntilExit()
    return directory
  }()

  static func bytes(_ name: String) throws -> [UInt8] {
    Array(try Data(contentsOf: self.directory.appendingPathComponent(name)))
  }

  /// Small limits, so that the bombs end in seconds.
  static let limits = ExtractionLimits(timeout: .seconds(3), memoryBytes: 256 << 20, cpuSeconds: 3)
}

@Suite("Knowledge: text extraction")
struct ExtractionTests {
  /// `bytes` in UploadDocument's pieces of at most 1 MiB.
  static func pieces(_ bytes: [UInt8]) -> [Data] {
    stride(from: 0, to: bytes.count, by: 1 << 20).map { Data(bytes[$0..<min($0 + (1 << 20), bytes.count)]) }
  }

  let extractor = TextExtractor(limits: ExtractionFixtures.limits)

  @Test("Formats are told by their bytes; a binary format must match the declared type")
  func detection() throws {
    #expect(DocumentFormat.detect(try ExtractionFixtures.bytes("valid.pdf")) == .pdf)
    #expect(DocumentFormat.detect(try ExtractionFixtures.bytes("valid.docx")) == .docx)
    #expect(DocumentFormat.detect(try ExtractionFixtures.bytes("valid.doc")) == .msword)
    #expect(DocumentFormat.detect(try ExtractionFixtures.bytes("page.html")) == .html)
    #expect(DocumentFormat.detect(Array("just words\n".utf8)) == .plainText)
    #expect(DocumentFormat.detect([0xFF, 0xFE, 0x00, 0x41]) == nil)
    #expect(throws: ExtractionError.self) { try TextExtractor.checkFormat(of: try ExtractionFixtures.bytes("valid.docx"), declared: .pdf) }
    try TextExtractor.checkFormat(of: try ExtractionFixtures.bytes("page.html"), declared: .plainText)
  }

  @Test("PDF pages are separated by form feeds; .docx and .doc paragraphs and headings; HTML without scripts")
  func benign() async throws {
    let pdf = try await self.extractor.extract(try ExtractionFixtures.bytes("valid.pdf"), declared: .pdf).text
    #expect(pdf.split(separator: "\u{0C}", omittingEmptySubsequences: false).count == 3, "\(pdf.debugDescription)")
    #expect(pdf.contains("Page 1 alpha") && pdf.contains("Page 3 charlie"))
    let chunks = Chunker.chunks(of: pdf, options: ChunkingOptions(strategy: .paragraph, size: 16, overlap: 0))
    #expect(chunks.compactMap(\.page) == [1, 2, 3], "\(chunks)")
    let docx = try await self.extractor.extract(try ExtractionFixtures.bytes("valid.docx"), declared: .docx).text
    #expect(docx.hasPrefix("# Getting started") && docx.contains("## Details") && docx.contains("& entities <ok>"))
    let doc = try await self.extractor.extract(try ExtractionFixtures.bytes("valid.doc"), declared: .msword).text
    #expect(doc.contains("The first paragraph of the Word file."))
    let html = try await self.extractor.extract(try ExtractionFixtures.bytes("page.html"), declared: .html).text
    #expect(!html.lowercased().contains("<script") && !html.contains("function(") && html.contains("# "))
  }

  @Test("Hostile files fail quickly with a clear reason: truncated PDF, PDF bombs, zip bomb, a spreadsheet as .doc")
  func hostile() async throws {
    for (name, format, reason) in [
      ("truncated.pdf", DocumentFormat.pdf, "damaged"),
      ("bomb.pdf", .pdf, "could not be read"),
      ("memory-bomb.pdf", .pdf, "could not be read"),
      ("layout-bomb.pdf", .pdf, "could not be read"),
      ("bomb.docx", .docx, "64 MiB"),
      ("not-word.doc", .msword, "not a Word document"),
    ] {
      let started = ContinuousClock.now
      do {
        let text = try await self.extractor.extract(try ExtractionFixtures.bytes(name), declared: format)
        Issue.record("\(name) was read: \(text.text.prefix(100))")
      } catch ExtractionError.unreadable(let message) {
        #expect(message.contains(reason), "\(name): \(message)")
        #expect(!message.contains("/tmp") && message.utf8.count < 300, "\(name): \(message)")
      } catch {
        Issue.record("\(name): \(error)")
      }
      // The limits are 3 s of time and CPU: nothing runs much longer.
      #expect(ContinuousClock.now - started < .seconds(6), "\(name)")
    }
  }

  @Test("Through the service: a PDF keeps its pages; a zip bomb and a truncated PDF fail the document, not the service")
  func service() async throws {
    try await PlatformTestService.run(
      KnowledgeService(),
      configure: {
        $0.environment.values["KNOWLEDGE_EXTRACT_TIMEOUT_SECONDS"] = "3"
        $0.environment.values["KNOWLEDGE_EXTRACT_MEMORY_MB"] = "256"
      }
    ) { service in
      let client = KnowledgeClient(channel: service.client)
      let options = try await service.options(for: UUID())
      let base = try await makeBase(client, options, chunkSize: 16)
      let pdf = try await client.createDocument(
        .with { $0.knowledgeBaseID = base.id; $0.title = "Three pages"; $0.file = Data(try ExtractionFixtures.bytes("valid.pdf")); $0.fileName = "three.pdf" },
        options: options)
      #expect(pdf.contentType == "application/pdf")
      #expect(try await settled(client, pdf.id, options: options).status == .ready)
      let chunks = try await client.listChunks(.with { $0.documentID = pdf.id }, options: options).chunks
      #expect(chunks.map { Int($0.metadata.fields["page"]?.numberValue ?? 0) } == [1, 2, 3], "\(chunks.map(\.content))")
      let found = try await client.search(.with { $0.knowledgeBaseIds = [base.id]; $0.query = "charlie"; $0.mode = .keyword }, options: options)
      #expect(found.results.first?.chunk.metadata.fields["page"]?.numberValue == 3)

      // The zip bomb's byte cap is the direct test's (above); here, on a busy machine, its 3 s
      // timeout may come first, which fails the document as well.
      for (name, type, reasons) in [
        ("bomb.docx", DocumentFormat.docx, ["64 MiB", "longer than"]), ("truncated.pdf", .pdf, ["damaged"]),
        ("memory-bomb.pdf", .pdf, ["could not be read"]),
      ] {
        let created = try await uploadDocument(
          client,
          [.with { $0.header = .with { $0.knowledgeBaseID = base.id; $0.title = name; $0.contentType = type.rawValue } }]
            + Self.pieces(try ExtractionFixtures.bytes(name)).map { piece in .with { $0.data = piece } }, options: options)
        let failed = try await settled(client, created.id, options: options)
        #expect(failed.status == .failed && reasons.contains { failed.statusMessage.contains($0) }, "\(name): \(failed.statusMessage)")
      }
      // The service goes on: another document is indexed.
      try await addDocument(client, options, base: base.id, title: "after", content: "Still working after the bombs.")
      let html = try await client.createDocument(
        .with { $0.knowledgeBaseID = base.id; $0.title = "page"; $0.content = String(decoding: try ExtractionFixtures.bytes("page.html"), as: UTF8.self); $0.contentType = "text/html" },
        options: options)
      let ready = try await settled(client, html.id, options: options)
      #expect(ready.status == .ready)
      let text = try await client.getDocument(.with { $0.id = html.id }, options: options).content
      #expect(!text.contains("<") || text.contains("3 < 4"), "\(text)")
    }
  }
}
