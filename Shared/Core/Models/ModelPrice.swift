internal import Foundation

/// What a model costs: USD per million prompt and completion tokens.
public struct ModelPrice: Sendable, Equatable {
  public var promptPerMillion: Double
  public var completionPerMillion: Double

  public init(promptPerMillion: Double, completionPerMillion: Double) {
    self.promptPerMillion = promptPerMillion
    self.completionPerMillion = completionPerMillion
  }

  public static let free = ModelPrice(promptPerMillion: 0, completionPerMillion: 0)

  public func cost(promptTokens: Int, completionTokens: Int) -> Double {
    (Double(promptTokens) * self.promptPerMillion + Double(completionTokens) * self.completionPerMillion) / 1_000_000
  }

  /// A price table as the services' `*_MODEL_PRICES` variables give it: `model=prompt/completion`
  /// in USD per million tokens, comma-separated (`gpt-4o-mini=0.15/0.6,other=1/2`).
  /// - Throws: `Environment.InvalidValue` naming `variable` and the entry that is wrong.
  public static func table(parsing text: String, variable: String) throws -> [String: ModelPrice] {
    var prices: [String: ModelPrice] = [:]
    for entry in text.split(separator: ",") {
      let parts = entry.split(separator: "=", maxSplits: 1)
      let amounts = parts.count == 2 ? parts[1].split(separator: "/") : []
      guard parts.count == 2, amounts.count == 2, let prompt = Double(amounts[0]), let completion = Double(amounts[1]),
        prompt >= 0, completion >= 0, prompt.isFinite, completion.isFinite
      else {
        throw Environment.InvalidValue(
          variable: variable, value: String(entry), expected: "model=prompt/completion in USD per million tokens, e.g. gpt-4o-mini=0.15/0.6")
      }
      prices[parts[0].trimmingCharacters(in: .whitespaces)] = ModelPrice(promptPerMillion: prompt, completionPerMillion: completion)
    }
    return prices
  }
}
