// TEMPORARY: replaced by the extraction module.
public enum DocumentFormat: String, Sendable, CaseIterable {
  case plainText = "text/plain", markdown = "text/markdown", html = "text/html", pdf = "application/pdf"
  case msword = "application/msword"
  case docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
  public static func detect(_ bytes: [UInt8]) -> DocumentFormat? { nil }
}
public struct ExtractionLimits: Sendable { public var timeout: Duration = .seconds(30); public var memoryBytes = 1 << 30; public init() {} }
public enum ExtractionError: Error, Equatable, Sendable {
  case formatMismatch(declared: DocumentFormat, detected: DocumentFormat?)
  case unreadable(String)
  case toolMissing(String)
}
public struct ExtractedText: Sendable, Equatable { public var text: String }
public struct TextExtractor: Sendable {
  public init(limits: ExtractionLimits = .init()) {}
  public func extract(_ bytes: [UInt8], declared: DocumentFormat) async throws(ExtractionError) -> ExtractedText { .init(text: "") }
}
