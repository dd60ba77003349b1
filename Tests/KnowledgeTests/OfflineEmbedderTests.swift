import Testing
@testable import Knowledge

@Suite("Knowledge: the offline embedder")
struct OfflineEmbedderTests {
  func cosine(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
  }

  @Test("Unit vectors of 384 dimensions, the same for the same text, zero for a text without words")
  func shape() async throws {
    let embedder = OfflineEmbedder()
    let vectors = try await embedder.embed(["Configure the network interface", "Configure the network interface", "", "…!?"])
    #expect(vectors.count == 4 && vectors.allSatisfy { $0.count == 384 })
    #expect(abs(vectors[0].reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
    #expect(vectors[0] == vectors[1])
    #expect(vectors[2].allSatisfy { $0 == 0 } && vectors[3].allSatisfy { $0 == 0 })
    // Hashes are FNV-1a, not Swift's per-process seeded Hasher: a known value.
    #expect(OfflineEmbedder.hash("a") == 0xaf63_dc4c_8601_ec8c)
  }

  @Test("Shared words and word pieces score higher than unrelated text; case and punctuation do not matter")
  func similarity() async throws {
    let embedder = OfflineEmbedder()
    let v = try await embedder.embed([
      "How do I mount a USB drive?", "mounting usb drives", "The kernel schedules processes by priority.",
      "HOW do i MOUNT a usb drive", "copy files between directories",
    ])
    #expect(self.cosine(v[0], v[1]) > self.cosine(v[0], v[2]))
    #expect(self.cosine(v[0], v[1]) > self.cosine(v[0], v[4]))
    #expect(self.cosine(v[0], v[3]) > 0.99)
    #expect(self.cosine(v[0], v[1]) > 0.2, "plurals and inflections share trigrams")
  }

  @Test("A huge text is read up to its limit")
  func bounded() async throws {
    let text = String(repeating: "word ", count: 1_000_000)
    let vector = try await OfflineEmbedder().embed([text])[0]
    #expect(vector.count == 384)
  }
}
