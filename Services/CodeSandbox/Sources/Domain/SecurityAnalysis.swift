/// Static findings on code before it runs, and the 0–100 score (README "Security score").
///
/// The analysis reads tokens (names, dotted names, strings; comments skipped), not text, so a
/// word in a comment or a string is not a call, and it follows Python's import aliases
/// (`import subprocess as sp` makes `sp.run` a process spawn). It is advice, not the defence:
/// the sandbox contains whatever the code does.
public struct SecurityFinding: Sendable, Equatable {
  public enum Severity: Int, Sendable, Comparable {
    case low = 1, medium, high, critical

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// What one finding of this severity costs the score.
    var cost: Int {
      switch self {
      case .low: 5
      case .medium: 15
      case .high: 30
      case .critical: 50
      }
    }
  }

  public var rule: String
  public var severity: Severity
  public var message: String
  public var line: Int
  public var column: Int
}

public struct SecurityReport: Sendable, Equatable {
  public var findings: [SecurityFinding]

  /// 100 minus each finding's cost (a rule counts once), at least 0.
  public var score: Int {
    var seen = Set<String>()
    var score = 100
    for finding in self.findings where seen.insert(finding.rule).inserted { score -= finding.severity.cost }
    return max(0, score)
  }

  public var hasCritical: Bool { self.findings.contains { $0.severity == .critical } }
}

public enum SecurityAnalysis {
  /// At most this many findings are reported (the first ones, by position).
  static let maxFindings = 50

  public static func analyze(_ code: String, language: Language) -> SecurityReport {
    let tokens = Tokenizer(code, language: language).tokens()
    var findings: [SecurityFinding] = []
    switch language {
    case .python: findings = self.python(tokens)
    case .javascript, .typescript: findings = self.javascript(tokens)
    }
    findings += self.paths(tokens)
    findings.sort { ($0.line, $0.column) < ($1.line, $1.column) }
    return SecurityReport(findings: Array(findings.prefix(Self.maxFindings)))
  }

  // MARK: Python

  private static let pythonModules: [String: (String, SecurityFinding.Severity, String)] = [
    "subprocess": ("subprocess-spawn", .high, "starts processes"),
    "pty": ("subprocess-spawn", .high, "starts processes on a terminal"),
    "ctypes": ("native-code", .critical, "calls native code and the kernel directly"),
    "cffi": ("native-code", .critical, "calls native code and the kernel directly"),
    "socket": ("network-access", .medium, "opens network connections"),
    "urllib": ("network-access", .medium, "opens network connections"),
    "urllib3": ("network-access", .medium, "opens network connections"),
    "requests": ("network-access", .medium, "opens network connections"),
    "http": ("network-access", .medium, "opens network connections"),
    "aiohttp": ("network-access", .medium, "opens network connections"),
    "ftplib": ("network-access", .medium, "opens network connections"),
    "smtplib": ("network-access", .medium, "opens network connections"),
    "telnetlib": ("network-access", .medium, "opens network connections"),
    "importlib": ("dynamic-code", .high, "imports modules by computed name"),
    "multiprocessing": ("subprocess-spawn", .medium, "starts processes"),
    "resource": ("limits-change", .low, "changes its own resource limits"),
    "signal": ("signal-handling", .low, "handles or sends signals"),
  ]

  private static let pythonCalls: [String: (String, SecurityFinding.Severity, String)] = [
    "os.system": ("subprocess-spawn", .high, "runs a shell command"),
    "os.popen": ("subprocess-spawn", .high, "runs a shell command"),
    "os.fork": ("subprocess-spawn", .medium, "forks the process"),
    "os.forkpty": ("subprocess-spawn", .medium, "forks the process"),
    "os.kill": ("signal-handling", .medium, "signals other processes"),
    "os.killpg": ("signal-handling", .medium, "signals other processes"),
    "os.setuid": ("privilege-change", .high, "changes its user id"),
    "os.chroot": ("fs-escape", .high, "changes its root directory"),
    "os.environ": ("env-access", .low, "reads the environment"),
    "os.getenv": ("env-access", .low, "reads the environment"),
    "eval": ("dynamic-code", .high, "evaluates a string as code"),
    "exec": ("dynamic-code", .high, "executes a string as code"),
    "compile": ("dynamic-code", .medium, "compiles a string as code"),
    "__import__": ("dynamic-code", .high, "imports modules by computed name"),
    "__builtins__": ("dynamic-code", .medium, "reaches the builtins directly"),
    "__subclasses__": ("sandbox-introspection", .high, "walks the class hierarchy (a classic escape from restricted Python)"),
    "__globals__": ("sandbox-introspection", .high, "reaches a function's globals"),
  ]

  private static func python(_ tokens: [Token]) -> [SecurityFinding] {
    var findings: [SecurityFinding] = []
    var aliases: [String: String] = [:]  // local name → module path
    var index = 0
    func module(_ name: String, at token: Token) {
      let root = String(name.split(separator: ".").first ?? "")
      if let (rule, severity, what) = Self.pythonModules[root] {
        findings.append(SecurityFinding(rule: rule, severity: severity, message: "imports \(name), which \(what)", line: token.line, column: token.column))
      }
    }
    while index < tokens.count {
      let token = tokens[index]
      guard case .name(let name) = token.kind else {
        index += 1
        continue
      }
      // import a.b [as c], d
      if name == "import" && !Self.precededByFrom(tokens, index) {
        var cursor = index + 1
        while cursor < tokens.count, case .name(let imported) = tokens[cursor].kind {
          module(imported, at: tokens[cursor])
          var local = String(imported.split(separator: ".").first ?? "")
          if cursor + 2 < tokens.count, Self.isName(tokens[cursor + 1], "as"), case .name(let alias) = tokens[cursor + 2].kind {
            local = alias
            aliases[alias] = imported
            cursor += 2
          } else {
            aliases[local] = local
          }
          cursor += 1
          guard cursor < tokens.count, case .punctuation(",") = tokens[cursor].kind else { break }
          cursor += 1
        }
        index = cursor
        continue
      }
      // from a.b import c [as d], e
      if name == "from", index + 2 < tokens.count, case .name(let source) = tokens[index + 1].kind, Self.isName(tokens[index + 2], "import") {
        module(source, at: tokens[index + 1])
        var cursor = index + 3
        if cursor < tokens.count, case .punctuation("(") = tokens[cursor].kind { cursor += 1 }
        while cursor < tokens.count, case .name(let imported) = tokens[cursor].kind {
          var local = imported
          if cursor + 2 < tokens.count, Self.isName(tokens[cursor + 1], "as"), case .name(let alias) = tokens[cursor + 2].kind {
            local = alias
            cursor += 2
          }
          aliases[local] = "\(source).\(imported)"
          Self.pythonCall("\(source).\(imported)", at: tokens[cursor], into: &findings)
          cursor += 1
          guard cursor < tokens.count, case .punctuation(",") = tokens[cursor].kind else { break }
          cursor += 1
        }
        index = cursor
        continue
      }
      // A use: the dotted name with its first part resolved through the aliases.
      let parts = name.split(separator: ".", maxSplits: 1)
      let head = String(parts[0])
      let resolved = (aliases[head] ?? head) + (parts.count > 1 ? ".\(parts[1])" : "")
      let before = findings.count
      Self.pythonCall(resolved, at: token, into: &findings)
      // A use of an imported risky module (`sp.run` after `import subprocess as sp`).
      if findings.count == before, parts.count > 1, aliases[head] != nil,
        let (rule, severity, what) = Self.pythonModules[String(resolved.split(separator: ".")[0])]
      {
        findings.append(SecurityFinding(rule: rule, severity: severity, message: "\(resolved) \(what)", line: token.line, column: token.column))
      }
      for attribute in name.split(separator: ".").dropFirst() where attribute.hasPrefix("__") {
        Self.pythonCall(String(attribute), at: token, into: &findings)
      }
      index += 1
    }
    return findings
  }

  private static func pythonCall(_ name: String, at token: Token, into findings: inout [SecurityFinding]) {
    var candidate = Substring(name)
    while true {
      if let (rule, severity, what) = Self.pythonCalls[String(candidate)] {
        findings.append(SecurityFinding(rule: rule, severity: severity, message: "\(name) \(what)", line: token.line, column: token.column))
        return
      }
      guard let dot = candidate.lastIndex(of: ".") else { return }
      candidate = candidate[..<dot]
    }
  }

  private static func precededByFrom(_ tokens: [Token], _ index: Int) -> Bool {
    // "from X import …": the import is part of a from-statement.
    var cursor = index - 1
    while cursor >= 0, case .name = tokens[cursor].kind, tokens[cursor].line == tokens[index].line {
      if Self.isName(tokens[cursor], "from") { return true }
      cursor -= 1
    }
    return false
  }

  // MARK: JavaScript and TypeScript

  private static let jsModules: [String: (String, SecurityFinding.Severity, String)] = [
    "child_process": ("subprocess-spawn", .high, "starts processes"),
    "cluster": ("subprocess-spawn", .medium, "starts processes"),
    "worker_threads": ("subprocess-spawn", .low, "starts threads"),
    "net": ("network-access", .medium, "opens network connections"),
    "http": ("network-access", .medium, "opens network connections"),
    "https": ("network-access", .medium, "opens network connections"),
    "http2": ("network-access", .medium, "opens network connections"),
    "dgram": ("network-access", .medium, "opens network connections"),
    "dns": ("network-access", .medium, "resolves names"),
    "tls": ("network-access", .medium, "opens network connections"),
    "vm": ("dynamic-code", .high, "evaluates strings as code"),
    "v8": ("native-code", .medium, "reaches the engine's internals"),
    "inspector": ("native-code", .high, "drives the debugger"),
    "ffi-napi": ("native-code", .critical, "calls native code"),
  ]

  private static let jsCalls: [String: (String, SecurityFinding.Severity, String)] = [
    "eval": ("dynamic-code", .high, "evaluates a string as code"),
    "Function": ("dynamic-code", .high, "builds a function from a string"),
    "process.binding": ("native-code", .critical, "reaches Node's native bindings"),
    "process._linkedBinding": ("native-code", .critical, "reaches Node's native bindings"),
    "process.dlopen": ("native-code", .critical, "loads native code"),
    "process.env": ("env-access", .low, "reads the environment"),
    "process.kill": ("signal-handling", .medium, "signals processes"),
    "fetch": ("network-access", .medium, "opens network connections"),
    "WebSocket": ("network-access", .medium, "opens network connections"),
    "XMLHttpRequest": ("network-access", .medium, "opens network connections"),
  ]

  private static func javascript(_ tokens: [Token]) -> [SecurityFinding] {
    var findings: [SecurityFinding] = []
    for (index, token) in tokens.enumerated() {
      switch token.kind {
      case .string(let text):
        // require("x"), import … from "x", import("x"): a module name.
        let module = text.hasPrefix("node:") ? String(text.dropFirst(5)) : text
        guard let (rule, severity, what) = Self.jsModules[module.split(separator: "/").first.map(String.init) ?? module] else { continue }
        let previous = index > 0 ? tokens[index - 1] : nil
        let beforeThat = index > 1 ? tokens[index - 2] : nil
        let isModule = (previous.map { Self.isName($0, "from") || Self.isName($0, "import") } ?? false)
          || (previous?.kind == .punctuation("(") && beforeThat.map { Self.isName($0, "require") || Self.isName($0, "import") } == true)
        if isModule {
          findings.append(SecurityFinding(rule: rule, severity: severity, message: "uses \(text), which \(what)", line: token.line, column: token.column))
        }
      case .name(let name):
        var candidate = Substring(name)
        while true {
          if let (rule, severity, what) = Self.jsCalls[String(candidate)] {
            findings.append(SecurityFinding(rule: rule, severity: severity, message: "\(name) \(what)", line: token.line, column: token.column))
            break
          }
          guard let dot = candidate.lastIndex(of: ".") else { break }
          candidate = candidate[..<dot]
        }
      case .punctuation: continue
      }
    }
    return findings
  }

  // MARK: Paths

  private static let sensitivePrefixes = ["/proc", "/etc", "/sys", "/dev", "/root", "/home", "/var/run", "/run", "/boot"]

  /// String literals naming the host's files, or climbing out with "..".
  private static func paths(_ tokens: [Token]) -> [SecurityFinding] {
    var findings: [SecurityFinding] = []
    for token in tokens {
      guard case .string(let text) = token.kind else { continue }
      if let prefix = Self.sensitivePrefixes.first(where: { text == $0 || text.hasPrefix($0 + "/") }) {
        let severity: SecurityFinding.Severity = text.hasPrefix("/proc/self/root") || text.hasPrefix("/etc/shadow") ? .high : .medium
        findings.append(SecurityFinding(rule: "fs-escape", severity: severity, message: "names \(prefix) on the host", line: token.line, column: token.column))
      } else if text.hasPrefix("../") || text.contains("/../") {
        findings.append(SecurityFinding(rule: "fs-escape", severity: .low, message: "climbs out of its directory with ..", line: token.line, column: token.column))
      }
    }
    return findings
  }

  private static func isName(_ token: Token, _ name: String) -> Bool {
    if case .name(name) = token.kind { return true }
    return false
  }
}

/// A token: a (dotted) name, a string literal's text, or one punctuation character.
struct Token: Sendable, Equatable {
  enum Kind: Sendable, Equatable {
    case name(String)
    case string(String)
    case punctuation(Character)
  }

  var kind: Kind
  var line: Int
  var column: Int
}

/// Comments skipped, strings read (Python's prefixes and triple quotes, JavaScript's template
/// literals as strings), names joined across dots (`os . path . join` → `os.path.join`).
/// Linear in the code's length; no recursion.
struct Tokenizer {
  private let scalars: [Unicode.Scalar]
  private let language: Language

  init(_ code: String, language: Language) {
    self.scalars = Array(code.unicodeScalars)
    self.language = language
  }

  func tokens() -> [Token] {
    var tokens: [Token] = []
    var index = 0, line = 1, lineStart = 0
    let count = self.scalars.count
    func peek(_ offset: Int) -> Unicode.Scalar? { index + offset < count ? self.scalars[index + offset] : nil }
    func isNameStart(_ c: Unicode.Scalar) -> Bool { c == "_" || c == "$" || c.properties.isAlphabetic }
    func isNamePart(_ c: Unicode.Scalar) -> Bool { isNameStart(c) || ("0"..."9").contains(c) }
    while index < count {
      let c = self.scalars[index]
      let column = index - lineStart + 1
      if c == "\n" {
        line += 1
        index += 1
        lineStart = index
        continue
      }
      if c.properties.isWhitespace {
        index += 1
        continue
      }
      // Comments.
      if self.language == .python && c == "#" || self.language != .python && c == "/" && peek(1) == "/" {
        while index < count && self.scalars[index] != "\n" { index += 1 }
        continue
      }
      if self.language != .python && c == "/" && peek(1) == "*" {
        index += 2
        while index < count && !(self.scalars[index] == "*" && peek(1) == "/") {
          if self.scalars[index] == "\n" {
            line += 1
            lineStart = index + 1
          }
          index += 1
        }
        index += 2
        continue
      }
      // Strings, with Python's prefixes (r, b, f, u and pairs).
      var prefixLength = 0
      if self.language == .python && isNameStart(c) {
        while prefixLength < 2, let p = peek(prefixLength), "rRbBfFuU".unicodeScalars.contains(p) { prefixLength += 1 }
        if !(peek(prefixLength) == "'" || peek(prefixLength) == "\"") { prefixLength = 0 }
      }
      if let quote = peek(prefixLength), quote == "'" || quote == "\"" || (quote == "`" && self.language != .python) {
        let startLine = line
        index += prefixLength
        let triple = self.language == .python && peek(1) == quote && peek(2) == quote
        index += triple ? 3 : 1
        var text = String.UnicodeScalarView()
        while index < count {
          let s = self.scalars[index]
          if s == "\\" && index + 1 < count {
            text.append(self.scalars[index + 1])
            index += 2
            continue
          }
          if s == quote && (!triple || (peek(1) == quote && peek(2) == quote)) {
            index += triple ? 3 : 1
            break
          }
          if s == "\n" {
            line += 1
            lineStart = index + 1
            if !triple && quote != "`" { break }
          }
          if text.count < 4096 { text.append(s) }
          index += 1
        }
        tokens.append(Token(kind: .string(String(text)), line: startLine, column: column))
        continue
      }
      if isNameStart(c) {
        var name = String.UnicodeScalarView()
        while index < count {
          while index < count && isNamePart(self.scalars[index]) {
            if name.count < 256 { name.append(self.scalars[index]) }
            index += 1
          }
          // A dot (spaces allowed around it) followed by another name continues the name.
          var look = index
          while look < count && self.scalars[look] == " " { look += 1 }
          guard look < count, self.scalars[look] == "." else { break }
          look += 1
          while look < count && self.scalars[look] == " " { look += 1 }
          guard look < count, isNameStart(self.scalars[look]) else { break }
          name.append(".")
          index = look
        }
        tokens.append(Token(kind: .name(String(name)), line: line, column: column))
        continue
      }
      tokens.append(Token(kind: .punctuation(Character(c)), line: line, column: column))
      index += 1
    }
    return tokens
  }
}
