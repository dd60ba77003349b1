internal import Foundation

/// Turns texts into vectors for search (DESIGN.md "Models": an offline deterministic default,
/// an OpenAI-compatible provider, a local MiniLM server).
public protocol Embedder: Sendable {
  var model: EmbeddingModel { get }
  /// One unit vector (or all zeros, for a text without words) of `model.dimension` per text, in
  /// order.
  func embed(_ texts: [String]) async throws(EmbeddingError) -> [[Float]]
}

public enum EmbeddingError: Error, Equatable, Sendable {
  /// The provider is unreachable or failed.
  case unavailable(String)
}

/// The offline deterministic default, `offline-hash-384`: no model, only lexical overlap.
/// Each text's words (lowercased runs of letters and digits), its word pairs and each word's
/// character trigrams are hashed (FNV-1a, the same on every run and machine) into 384 signed
/// buckets, weighted 1, 0.5 and 0.25 (sublinear in repetitions), and the vector is scaled to unit
/// length, so cosine similarity measures shared words, phrases and word pieces. It finds what
/// keyword search finds, a little more forgivingly (plurals and inflections share trigrams); it
/// knows no synonyms: use the local MiniLM server or a provider for meaning.
public struct OfflineEmbedder: Embedder {
  public let model = EmbeddingModel.offline

  public init() {}

  /// At most this many characters of a text are read (chunks are far smaller).
  static let maxCharacters = 100_000

  public func embed(_ texts: [String]) async throws(EmbeddingError) -> [[Float]] {
    texts.map(self.vector)
  }

  func vector(_ text: String) -> [Float] {
    let dimension = self.model.dimension
    var counts: [UInt64: Float] = [:]
    var previous: String?
    for word in Self.words(text.prefix(Self.maxCharacters)) {
      counts[Self.hash("w:" + word), default: 0] += 1
      if let previous { counts[Self.hash("b:" + previous + " " + word), default: 0] += 0.5 }
      let padded = Array(("#" + word + "#").unicodeScalars)
      if padded.count > 4 {
        for start in 0...(padded.count - 3) {
          var trigram = "t:"
          trigram.unicodeScalars.append(contentsOf: padded[start..<start + 3])
          counts[Self.hash(trigram), default: 0] += 0.25
        }
      }
      previous = word
    }
    var vector = [Float](repeating: 0, count: dimension)
    for (hash, weight) in counts {
      // Sublinear: a word said ten times is not ten times the evidence.
      let scaled = weight >= 1 ? 1 + log(weight) : weight
      let index = Int(hash % UInt64(dimension))
      vector[index] += hash & (1 << 63) == 0 ? scaled : -scaled
    }
    let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return norm > 0 ? vector.map { $0 / norm } : vector
  }

  /// Lowercased runs of letters and digits.
  static func words(_ text: Substring) -> [String] {
    var words: [String] = []
    var current = ""
    for character in text.lowercased() {
      if character.isLetter || character.isNumber {
        current.append(character)
      } else if !current.isEmpty {
        words.append(current)
        current = ""
      }
    }
    if !current.isEmpty { words.append(current) }
    return words
  }

  /// FNV-1a, 64 bits, of the UTF-8 bytes.
  static func hash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x0000_0100_0000_01B3
    }
    return hash
  }
}
