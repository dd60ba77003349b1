internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import PlatformProtos
internal import SwiftProtobuf

struct KnowledgeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kb", abstract: "Knowledge bases: documents, indexing and search.",
    subcommands: [Create.self, List.self, Upload.self, Search.self])

  static func client(_ session: Session) throws -> Platform_Knowledge_V1_KnowledgeServiceClient {
    .init(channel: try session.channel(.knowledge))
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a knowledge base.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Its name.") var name: String
    @Option(help: "A description.") var description = ""

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try KnowledgeCommand.client(session)
        let base = try await session.call { options in
          try await client.createKnowledgeBase(
            .with {
              $0.knowledgeBase = .with {
                $0.name = self.name
                $0.description_p = self.description
              }
            }, options: options)
        }
        try self.global.emit(base) {
          var fields = Fields()
          fields.add("ID", base.id)
          fields.add("Name", base.name)
          fields.add("Embedding", "\(base.embeddingModel) (\(base.embeddingDimension))")
          fields.print()
        }
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List your knowledge bases.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "At most this many.") var limit = 50

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try KnowledgeCommand.client(session)
        let response = try await session.call { try await client.listKnowledgeBases(.with { $0.pageSize = Int32(self.limit) }, options: $0) }
        try self.global.emitList(response, shown: response.knowledgeBases.count, nextPageToken: response.nextPageToken) {
          var table = Table("ID", "NAME", "DOCUMENTS", "CHUNKS", "EMBEDDING", "UPDATED")
          for base in response.knowledgeBases {
            table.append(base.id, base.name, "\(base.documentCount)", "\(base.chunkCount)", base.embeddingModel, Format.time(base.updateTime))
          }
          table.print()
        }
      }
    }
  }

  struct Upload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Upload a file as a document (text, Markdown, HTML, PDF, .doc, .docx).",
      discussion: "A progress bar goes to stderr when it is a terminal. With --wait, waits until the document is indexed (exit 1 if it ends otherwise: FAILED or deleted).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The knowledge base's id.") var knowledgeBase: String
    @Argument(help: "The file.") var file: String
    @Option(help: "The document's title (default: the file name).") var title: String?
    @Option(help: "The content type (default: detected from the bytes).") var contentType = ""
    @Option(help: "A tag (repeatable).") var tag: [String] = []
    @Flag(help: "Wait until the document is indexed (READY) or FAILED.") var wait = false

    /// Pieces of at most 256 KiB (the service takes up to 1 MiB).
    static let pieceSize = 256 * 1024

    func run() async throws {
      let path = self.file
      guard let attributes = try? FileManager.default.attributesOfItem(atPath: path), let size = attributes[.size] as? Int64 else {
        throw CommandFailure("cannot read \(path)")
      }
      let name = URL(fileURLWithPath: path).lastPathComponent
      let header = Platform_Knowledge_V1_CreateDocumentRequest.with {
        $0.knowledgeBaseID = self.knowledgeBase
        $0.title = self.title ?? name
        $0.fileName = name
        $0.contentType = self.contentType
        $0.tags = self.tag
      }
      let progress = ProgressBar(label: name, total: size)
      let json = self.global.json
      try await Session.with(self.global) { session in
        let client = try KnowledgeCommand.client(session)
        var document = try await session.call(long: true) { options in
          try await client.uploadDocument(options: options) { writer in
            try await writer.write(.with { $0.header = header })
            guard let handle = FileHandle(forReadingAtPath: path) else { throw CommandFailure("cannot read \(path)") }
            defer { try? handle.close() }
            var sent: Int64 = 0
            progress.update(0)
            defer { progress.finish() }
            while let piece = try handle.read(upToCount: Self.pieceSize), !piece.isEmpty {
              try await writer.write(.with { $0.data = piece })
              sent += Int64(piece.count)
              progress.update(sent)
            }
          }
        }
        if self.wait {
          document = try await Self.waitForIndexing(document, client: client, session: session, json: json)
        }
        try self.global.emit(document) {
          var fields = Fields()
          fields.add("ID", document.id)
          fields.add("Title", document.title)
          fields.add("Type", document.contentType)
          fields.add("Size", Format.bytes(document.fileSize))
          fields.add("Status", Format.enumName(document.status))
          if document.status == .ready { fields.add("Chunks", "\(document.chunkCount)") }
          if !document.statusMessage.isEmpty { fields.add("Message", document.statusMessage) }
          fields.print()
        }
        // With --wait anything but READY fails: FAILED, or the watch ended first (the document deleted).
        if document.status == .failed || (self.wait && document.status != .ready) {
          let reason = document.statusMessage.isEmpty ? "" : ": \(document.statusMessage)"
          throw CommandFailure("document \(document.id) is \(Format.enumName(document.status)), not READY\(reason)")
        }
      }
    }

    /// Watches the document until it is READY or FAILED, drawing the indexing progress.
    static func waitForIndexing(
      _ document: Platform_Knowledge_V1_Document, client: Platform_Knowledge_V1_KnowledgeServiceClient, session: Session, json: Bool
    ) async throws -> Platform_Knowledge_V1_Document {
      let drawn = stderrIsTerminal && !json
      let last = try await session.call(long: true) { options in
        try await client.watchDocument(.with { $0.id = document.id }, options: options) { updates in
          var last = document
          for try await update in updates {
            last = update
            if drawn {
              let chunks = update.chunkTotal > 0 ? " \(update.chunksIndexed)/\(update.chunkTotal) chunks" : ""
              printError("\rindexing: \(Format.enumName(update.status))\(chunks)\u{1B}[K", terminator: "")
            }
            if update.status == .ready || update.status == .failed { break }
          }
          return last
        }
      }
      if drawn { printError("") }
      return last
    }
  }

  struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Search knowledge bases.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The knowledge base's id (or several, comma-separated).") var knowledgeBase: String
    @Argument(help: "What to look for.") var query: String
    @Option(help: "How to match (the service's default when not given).") var mode: Mode?
    @Option(help: "At most this many results.") var topK: Int32 = 5

    enum Mode: String, CaseIterable, ExpressibleByArgument {
      case keyword, vector, hybrid

      var proto: Platform_Knowledge_V1_SearchMode {
        switch self {
        case .keyword: .keyword
        case .vector: .vector
        case .hybrid: .hybrid
        }
      }
    }

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try KnowledgeCommand.client(session)
        let response = try await session.call { options in
          try await client.search(
            .with {
              $0.knowledgeBaseIds = self.knowledgeBase.split(separator: ",").map(String.init)
              $0.query = self.query
              $0.mode = self.mode?.proto ?? .unspecified
              $0.topK = self.topK
            }, options: options)
        }
        try self.global.emit(response) {
          var table = Table("SCORE", "DOCUMENT", "CHUNK", "TEXT", maxCellWidth: 70)
          for result in response.results {
            table.append(
              String(format: "%.3f", result.score), result.documentTitle, "\(result.chunk.chunkIndex)", result.chunk.content)
          }
          table.print()
        }
      }
    }
  }
}
