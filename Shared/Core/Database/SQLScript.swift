/// Splits a SQL script into statements at top-level semicolons: not inside quotes, quoted
/// identifiers, dollar-quoted bodies or comments. (PostgreSQL's extended protocol, which
/// postgres-nio speaks, takes one statement at a time.)
public enum SQLScript {
  public static func statements(in script: String) -> [String] {
    var statements: [String] = []
    var current = ""
    var meaningful = false  // the statement has more than whitespace and comments
    let characters = Array(script)
    var index = 0

    func take(_ count: Int = 1) {
      current.append(contentsOf: characters[index..<min(index + count, characters.count)])
      index += count
    }
    func startsWith(_ text: String, at position: Int) -> Bool {
      let needle = Array(text)
      guard position + needle.count <= characters.count else { return false }
      return Array(characters[position..<position + needle.count]) == needle
    }

    while index < characters.count {
      let character = characters[index]
      switch character {
      case "-" where startsWith("--", at: index):
        while index < characters.count && characters[index] != "\n" { take() }
      case "/" where startsWith("/*", at: index):
        var depth = 0
        repeat {
          if startsWith("/*", at: index) {
            depth += 1
            take(2)
          } else if startsWith("*/", at: index) {
            depth -= 1
            take(2)
          } else {
            take()
          }
        } while depth > 0 && index < characters.count
      case "'", "\"":
        meaningful = true
        take()
        while index < characters.count {
          if characters[index] == character {
            if index + 1 < characters.count && characters[index + 1] == character {
              take(2)  // doubled quote: an escaped one
              continue
            }
            take()
            break
          }
          take()
        }
      case "$":
        meaningful = true
        // A dollar-quote tag: $$ or $name$ (name: letters, digits, underscores; not a digit first).
        var end = index + 1
        while end < characters.count && (characters[end].isLetter || characters[end] == "_" || (characters[end].isNumber && end > index + 1)) {
          end += 1
        }
        if end < characters.count && characters[end] == "$" {
          let tag = String(characters[index...end])
          take(tag.count)
          while index < characters.count && !startsWith(tag, at: index) { take() }
          take(tag.count)
        } else {
          take()
        }
      case ";":
        index += 1
        if meaningful { statements.append(current.trimmingWhitespace()) }
        current = ""
        meaningful = false
      default:
        if !character.isWhitespace { meaningful = true }
        take()
      }
    }
    if meaningful { statements.append(current.trimmingWhitespace()) }
    return statements
  }
}

extension String {
  fileprivate func trimmingWhitespace() -> String {
    var trimmed = self[...]
    while trimmed.first?.isWhitespace == true { trimmed = trimmed.dropFirst() }
    while trimmed.last?.isWhitespace == true { trimmed = trimmed.dropLast() }
    return String(trimmed)
  }
}
