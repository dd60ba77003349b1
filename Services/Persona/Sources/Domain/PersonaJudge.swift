internal import PlatformCore

/// What the judge is asked about: the persona and its template rendered with sample variables.
public struct JudgeRequest: Sendable {
  public var personaName: String
  public var personaDescription: String
  public var renderedPrompt: String
}

/// A judge's verdict on a rendered persona prompt.
public struct JudgeVerdict: Sendable, Hashable {
  /// 0–10.
  public var score: Double
  public var isValid: Bool
  public var issues: [String]
  /// Which model judged, such as `offline-heuristic-judge/1`.
  public var model: String
  public var explanation: String
}

/// A model that judges persona prompts (the seed's "GPT-4 judge"). An OpenAI-compatible
/// provider plugs in here; the default is offline.
public protocol PersonaJudge: Sendable {
  /// - Throws: `PersonaError.judgeUnavailable` when the model cannot be reached.
  func judge(_ request: JudgeRequest) async throws -> JudgeVerdict
}

/// The offline default judge: deterministic rules, no model call. The same prompt always gets
/// the same verdict, and the verdict says that no LLM was involved.
public struct OfflineHeuristicJudge: PersonaJudge {
  public static let model = "offline-heuristic-judge/1"
  /// Verdicts at or above this score pass.
  public static let passingScore = 6.0

  public init() {}

  static let overridePhrases = [
    "ignore previous instructions", "ignore all previous", "ignore the above", "disregard previous",
    "disregard all previous", "jailbreak", "do anything now", "without any restrictions", "no restrictions",
    "bypass your", "pretend you have no",
  ]
  static let roleMarkers = ["you are", "you're", "act as", "your role", "as a ", "as an "]
  static let guidanceMarkers = ["tone", "style", "format", "respond", "answer", "reply", "concise", "explain", "speak", "write"]

  public func judge(_ request: JudgeRequest) async throws -> JudgeVerdict {
    let prompt = request.renderedPrompt.lowercased()
    var score = 10.0
    var issues: [String] = []
    var notes: [String] = []

    if let phrase = Self.overridePhrases.first(where: prompt.contains) {
      score -= 6
      issues.append("contains the instruction-override phrase \"\(phrase)\" (prompt-injection risk)")
    }
    if !Self.roleMarkers.contains(where: prompt.contains) {
      score -= 2
      issues.append("does not state a role (e.g. \"You are …\" or \"Act as …\")")
    } else {
      notes.append("states a role")
    }
    let length = request.renderedPrompt.trimmingWhitespace().count
    if length < 40 {
      score -= 2
      issues.append("is very short (\(length) characters): too little to guide the model")
    } else if length > 8000 {
      score -= 1
      issues.append("is very long (\(length) characters): long prompts dilute the instructions")
    }
    if !Self.guidanceMarkers.contains(where: prompt.contains) {
      score -= 1
      issues.append("gives no guidance on tone, style or format")
    } else {
      notes.append("guides tone, style or format")
    }
    if request.renderedPrompt.contains("{{") || request.renderedPrompt.contains("}}") {
      score -= 1
      issues.append("still contains `{{` or `}}` after rendering")
    }
    score = max(0, score)
    let isValid = score >= Self.passingScore
    let explanation =
      "Offline deterministic judge (no LLM was called): \(isValid ? "passes" : "fails") with \(score)/10 "
      + "(pass at \(Self.passingScore)). "
      + (notes.isEmpty ? "" : "It " + notes.joined(separator: " and ") + ". ")
      + (issues.isEmpty ? "No problems found." : "Problems: the prompt " + issues.joined(separator: "; it ") + ".")
    return JudgeVerdict(score: score, isValid: isValid, issues: issues, model: Self.model, explanation: explanation)
  }
}

extension String {
  func trimmingWhitespace() -> Substring {
    var trimmed = self[...]
    while trimmed.first?.isWhitespace == true { trimmed = trimmed.dropFirst() }
    while trimmed.last?.isWhitespace == true { trimmed = trimmed.dropLast() }
    return trimmed
  }
}
