internal import Dispatch
internal import Foundation
internal import SwiftProtobuf

/// A table for people: columns padded to their widest cell, long cells cut with "…".
///
/// ```
/// ID                                    NAME     VERSION
/// 0b5c…                                 Pirate   1
/// ```
struct Table {
  var headers: [String]
  var rows: [[String]] = []
  /// Cells longer than this are cut. Default: 60 characters (a UUID fits).
  var maxCellWidth = 60

  init(_ headers: [String], maxCellWidth: Int = 60) {
    self.headers = headers
    self.maxCellWidth = maxCellWidth
  }

  init(_ headers: String..., maxCellWidth: Int = 60) {
    self.init(headers, maxCellWidth: maxCellWidth)
  }

  mutating func append(_ cells: String...) {
    self.rows.append(cells)
  }

  mutating func append(row cells: [String]) {
    self.rows.append(cells)
  }

  func render() -> String {
    let cells = ([self.headers] + self.rows).map { row in
      self.headers.indices.map { index in Self.cell(index < row.count ? row[index] : "", width: self.maxCellWidth) }
    }
    let widths = self.headers.indices.map { index in cells.map { $0[index].count }.max() ?? 0 }
    return cells.map { row in
      row.enumerated().map { index, cell in
        index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
      }.joined(separator: "  ").trimmingTrailingSpaces()
    }.joined(separator: "\n")
  }

  func print() {
    PlatformCLI.print(self.render())
  }

  /// One line (newlines and tabs become spaces), cut to `width` characters.
  static func cell(_ text: String, width: Int) -> String {
    let line = String(text.map { $0.isNewline || $0 == "\t" ? " " : $0 })
    guard line.count > width else { return line }
    return String(line.prefix(max(width - 1, 0))) + "…"
  }
}

/// Field: value lines for one object.
struct Fields {
  var pairs: [(String, String)] = []

  mutating func add(_ name: String, _ value: String) {
    self.pairs.append((name, value))
  }

  func print() {
    let width = self.pairs.map(\.0.count).max() ?? 0
    for (name, value) in self.pairs {
      PlatformCLI.print("\(name):".padding(toLength: width + 1, withPad: " ", startingAt: 0) + " " + value)
    }
  }
}

extension String {
  fileprivate func trimmingTrailingSpaces() -> String {
    var text = self
    while text.last == " " { text.removeLast() }
    return text
  }
}

extension GlobalOptions {
  /// Prints `message` as one line of protobuf JSON when --json is given, else runs `human`.
  func emit(_ message: some SwiftProtobuf.Message, human: () throws -> Void) throws {
    if self.json {
      print(try message.jsonString())
    } else {
      try human()
    }
  }

  /// Prints `message` as `emit` does; for people, notes on stderr when the list has more
  /// pages than the `shown` entries.
  func emitList(_ message: some SwiftProtobuf.Message, shown: Int, nextPageToken: String, human: () throws -> Void) throws {
    try self.emit(message, human: human)
    if !self.json, !nextPageToken.isEmpty {
      printError("(the first \(shown); more with a larger --limit)")
    }
  }
}

// MARK: Writing

/// Writes `text` to stdout. Every line the commands print goes this one way, straight to file
/// descriptor 1 with no buffer in between, so printed lines, a program's streamed output and
/// stderr stay in the order they were written, and each `--json` line of a stream arrives when
/// it is printed. (Shadows `Swift.print` in this module.)
func print(_ text: String = "", terminator: String = "\n") {
  Output.write(Data((text + terminator).utf8), to: .standardOutput)
}

/// Writes to stderr (progress, notes that must not mix with the output).
func printError(_ text: String, terminator: String = "\n") {
  Output.write(Data((text + terminator).utf8), to: .standardError)
}

enum Output {
  /// Writes `data` unbuffered (a program's output chunks as they come).
  static func write(_ data: Data, to handle: FileHandle) {
    handle.write(data)
  }
}

var stderrIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }

// MARK: Values for people

enum Format {
  static func time(_ timestamp: Google_Protobuf_Timestamp?) -> String {
    guard let timestamp, timestamp.seconds != 0 || timestamp.nanos != 0 else { return "" }
    return timestamp.date.formatted(.iso8601)
  }

  /// A protobuf enum case as its proto-style name: `.notFound` → NOT_FOUND, `.codeExecutor` →
  /// CODE_EXECUTOR.
  static func enumName(_ value: some SwiftProtobuf.Enum) -> String {
    var name = ""
    for character in "\(value)" {
      if character.isUppercase, !name.isEmpty { name.append("_") }
      name.append(character.uppercased())
    }
    return name
  }

  /// A JSON value as text: strings as they are, numbers without a needless ".0", null as NULL.
  static func value(_ value: Google_Protobuf_Value) -> String {
    switch value.kind {
    case .nullValue, .none: "NULL"
    case .stringValue(let text): text
    case .boolValue(let flag): flag ? "true" : "false"
    case .numberValue(let number):
      number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    case .structValue, .listValue: (try? value.jsonString()) ?? ""
    }
  }

  static func json(_ value: Google_Protobuf_Struct) -> String {
    value.fields.isEmpty ? "" : ((try? value.jsonString()) ?? "")
  }

  static func bytes(_ count: Int64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var size = Double(count)
    var unit = 0
    while size >= 1024, unit < units.count - 1 {
      size /= 1024
      unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f %@", size, units[unit])
  }
}

// MARK: Input

enum Input {
  /// A JSON object option (`--variables '{"role": "pirate"}'`) as a protobuf Struct.
  static func structure(_ json: String?, option: String) throws -> Google_Protobuf_Struct {
    guard let json, !json.isEmpty else { return Google_Protobuf_Struct() }
    do {
      return try Google_Protobuf_Struct(jsonString: json)
    } catch {
      throw CommandFailure("\(option) is not a JSON object: \(error)", exitCode: 64)
    }
  }

  /// KEY=VALUE pairs as a Struct of strings, merged over `base`.
  static func pairs(_ pairs: [String], over base: Google_Protobuf_Struct, option: String) throws -> Google_Protobuf_Struct {
    var result = base
    for pair in pairs {
      guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
        throw CommandFailure("\(option) wants KEY=VALUE, not '\(pair)'", exitCode: 64)
      }
      result.fields[String(pair[..<equals])] = Google_Protobuf_Value(stringValue: String(pair[pair.index(after: equals)...]))
    }
    return result
  }

  /// The bytes of the file at `path`.
  ///
  /// - Parameter maxBytes: Refuse a larger file before reading it. Default: no limit.
  /// - Throws: `CommandFailure` (exit 1) when it cannot be read or is larger.
  static func file(_ path: String, maxBytes: Int? = nil) throws -> Data {
    if let maxBytes {
      var info = stat()
      guard stat(path, &info) == 0 else { throw CommandFailure("cannot read \(path): \(String(cString: strerror(errno)))") }
      guard info.st_size <= maxBytes else {
        throw CommandFailure("\(path) is \(Format.bytes(Int64(info.st_size))); at most \(Format.bytes(Int64(maxBytes))) is taken")
      }
    }
    do {
      return try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw CommandFailure("cannot read \(path): \((error as NSError).localizedDescription)")
    }
  }

  /// The file at `path` as UTF-8 text (see `file(_:maxBytes:)`).
  static func text(_ path: String, maxBytes: Int? = nil) throws -> String {
    String(decoding: try self.file(path, maxBytes: maxBytes), as: UTF8.self)
  }

  /// A password: from stdin (`--password-stdin`, its first line), PLATFORM_PASSWORD, or a prompt
  /// without echo on the terminal (/dev/tty, else stdin when it is one).
  static func password(fromStdin: Bool, prompt: String = "Password: ") throws -> String {
    if fromStdin {
      guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw CommandFailure("no password on stdin") }
      return line
    }
    if let password = ProcessInfo.processInfo.environment["PLATFORM_PASSWORD"], !password.isEmpty { return password }
    let tty = open("/dev/tty", O_RDWR | O_CLOEXEC)
    defer { if tty >= 0 { close(tty) } }
    let terminal = tty >= 0 ? tty : STDIN_FILENO
    guard isatty(terminal) != 0 else {
      throw CommandFailure("no password: use --password-stdin or PLATFORM_PASSWORD (no terminal)", exitCode: 64)
    }
    guard let line = self.readWithoutEcho(terminal, prompt: prompt), !line.isEmpty else { throw CommandFailure("no password given") }
    return line
  }

  /// Reads a line from the terminal `descriptor` with echo off; echo comes back however the
  /// read ends, Ctrl-C included (then the process exits 130, as a shell expects).
  private static func readWithoutEcho(_ descriptor: Int32, prompt: String) -> String? {
    let echo = descriptor == STDIN_FILENO ? STDERR_FILENO : descriptor
    _ = prompt.withCString { write(echo, $0, strlen($0)) }
    var saved = termios()
    tcgetattr(descriptor, &saved)
    var silent = saved
    silent.c_lflag &= ~tcflag_t(ECHO)
    tcsetattr(descriptor, TCSAFLUSH, &silent)

    let restore = { [saved] in
      var saved = saved
      tcsetattr(descriptor, TCSAFLUSH, &saved)
      _ = write(echo, "\n", 1)
    }
    signal(SIGINT, SIG_IGN)
    let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    interrupt.setEventHandler {
      restore()
      exit(130)
    }
    interrupt.resume()
    defer {
      interrupt.cancel()
      signal(SIGINT, SIG_DFL)
      restore()
    }

    var line = Data()
    var byte: UInt8 = 0
    while read(descriptor, &byte, 1) == 1, byte != UInt8(ascii: "\n") { line.append(byte) }
    return String(decoding: line, as: UTF8.self)
  }
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct ProgressBar {
  let label: String
  let total: Int64
  let enabled = stderrIsTerminal

  func update(_ done: Int64) {
    guard self.enabled, self.total > 0 else { return }
    let fraction = min(Double(done) / Double(self.total), 1)
    let filled = Int(fraction * 30)
    let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: 30 - filled)
    printError(
      "\r\(self.label) [\(bar)] \(String(format: "%3d", Int(fraction * 100)))%  \(Format.bytes(done))/\(Format.bytes(self.total))",
      terminator: "")
  }

  func finish() {
    if self.enabled { printError("") }
  }
}
