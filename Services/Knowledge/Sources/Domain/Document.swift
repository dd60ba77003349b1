public import Foundation
public import PlatformCore

/// A document of a knowledge base (knowledge_db.documents).
public struct Document: Sendable, Equatable {
  public var id: UUID
  public var ownerID: UUID
  public var knowledgeBaseID: UUID
  public var title: String
  /// The extracted text (empty until extraction, and in listings that leave it out).
  public var content: String
  public var format: DocumentFormat
  public var fileName: String?
  public var fileSize: Int64
  /// The SHA-256 of the original bytes (hex).
  public var contentHash: String
  public var metadata: JSONValue
  public var tags: [String]
  public var chunking: ChunkingOptions
  public var status: DocumentStatus
  public var statusMessage: String?
  public var chunkCount: Int
  public var chunksIndexed: Int
  public var chunkTotal: Int
  /// Bumped by every (re)index request; the job of an older generation does nothing.
  public var generation: Int
  public var version: Int
  public var indexedAt: Date?
  public var createdAt: Date
  public var updatedAt: Date
  public var deletedAt: Date?

  public static let maxTitleCharacters = 255
  /// The extracted text's limit (the column's CHECK).
  public static let maxContentBytes = 32 << 20
  /// `CreateDocument.content`'s and `.file`'s limit: the request stays under the server's 4 MiB
  /// message limit; bigger texts and files stream in UploadDocument.
  public static let maxInlineBytes = 4_000_000
  /// A new text given to UpdateDocument (the same message limit).
  public static let maxInlineContentBytes = 4_000_000
  public static let maxMetadataBytes = 65536
  public static let maxMetadataDepth = 16
  public static let maxTags = 32
  public static let maxTagCharacters = 64
  public static let maxFileNameCharacters = 255
}

/// Where a document is in its processing (documents.status).
public enum DocumentStatus: String, Sendable, CaseIterable {
  /// Stored; its indexing job is queued.
  case uploaded
  /// Being extracted, chunked and embedded.
  case processing
  /// Its chunks are searchable.
  case indexed
  /// Processing failed; `statusMessage` says why. A reindex retries.
  case failed
}

/// What happens to a document's processing.
public enum DocumentEvent: String, Sendable, CaseIterable {
  /// An indexing job takes it up.
  case start
  /// Its chunks were written and are searchable.
  case finish
  /// Processing failed for good (unreadable file, no text, embedding provider refusing).
  case fail
  /// A reindex, or an update of its content or chunking, queues it again.
  case requeue
}

/// The document lifecycle: uploaded → processing → indexed | failed, and back to uploaded when it
/// is reindexed. A crashed worker's job runs again, so `start` is also valid from processing.
public enum DocumentLifecycle {
  public struct InvalidTransition: Error, Equatable, CustomStringConvertible {
    public var status: DocumentStatus
    public var event: DocumentEvent
    public var description: String { "A \(self.status.rawValue) document cannot \(self.event.rawValue)" }
  }

  public static func next(after status: DocumentStatus, on event: DocumentEvent) throws(InvalidTransition) -> DocumentStatus {
    switch (status, event) {
    case (.uploaded, .start), (.processing, .start): .processing
    case (.processing, .finish): .indexed
    case (.uploaded, .fail), (.processing, .fail): .failed
    case (.uploaded, .requeue), (.indexed, .requeue), (.failed, .requeue): .uploaded
    default: throw InvalidTransition(status: status, event: event)
    }
  }

  /// The statuses `event` may leave from (the store's guards).
  public static func sources(of event: DocumentEvent) -> [DocumentStatus] {
    DocumentStatus.allCases.filter { (try? next(after: $0, on: event)) != nil }
  }
}
