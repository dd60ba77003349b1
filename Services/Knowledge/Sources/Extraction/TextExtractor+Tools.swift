internal import Foundation

// The out-of-process formats: each writes the bytes to a private temporary file (removed on
// every path), runs its tool under `ToolSandbox`, and turns what went wrong into a short
// sentence for the document's status_message. A tool's own diagnostics are used to pick the
// sentence, never shown.
extension TextExtractor {
  /// A PDF through `pdftotext -enc UTF-8 -eol unix FILE -` (no -layout: reading order; no
  /// -nopgbrk: pdftotext ends every page with a form feed, and the one after the last page is
  /// dropped here so that pages are separated by exactly one).
  ///
  /// A file without `%%EOF` in its last KiB is refused before the tool runs: it was cut short,
  /// and pdftotext would reconstruct whatever pages it could and succeed with part of the text.
  /// (Acrobat has the same rule, so files that other readers open pass it.)
  func extractPDF(_ bytes: [UInt8]) async throws(ExtractionError) -> String {
    guard MarkupScanner.find(Array("%%EOF".utf8), in: bytes, from: max(0, bytes.count - 1024)) != nil else {
      throw .unreadable("the PDF is damaged: it is cut short (it has no %%EOF marker at its end)")
    }
    let pdftotext = try ToolSandbox.require("pdftotext", package: "poppler-utils")
    let input = try TemporaryInput(bytes: bytes, sandboxName: "document.pdf")
    defer { input.remove() }
    let run = try await self.runTool(pdftotext, input: input, maxOutputBytes: self.limits.maxOutputBytes) {
      ["-enc", "UTF-8", "-eol", "unix", $0, "-"]
    }
    try self.checkRun(
      run, subject: "the PDF", tool: "pdftotext",
      outputCap: "more than \(describeByteCount(self.limits.maxOutputBytes)) of text")
    guard run.termination == .exited(0) else {
      if Self.diagnostics(run, contain: ["incorrect password", "encrypted"]) {
        throw .unreadable("the PDF is encrypted (it needs a password)")
      }
      throw .unreadable("the PDF is damaged or encrypted")
    }
    var output = run.standardOutput
    if output.last == 0x0C { output.removeLast() }
    return Self.toolText(output)
  }

  /// A Word 97–2003 file through `antiword -w 0 -m UTF-8.txt FILE` (no wrapping, UTF-8), or,
  /// when antiword is not installed or refuses the file, `catdoc -w -d utf-8 FILE`.
  ///
  /// antiword comes first: it follows the piece table and fast-saved files and renders tables
  /// and lists; catdoc reads some files antiword rejects or crashes on (Word 2, odd writers,
  /// files missing a structure antiword assumes) and needs no mapping files. catdoc only ever
  /// sees OLE2 files (detection checks the header): on anything else it prints the bytes as
  /// they are. A timeout or the output cap ends the extraction at once; a refusal or a crash of
  /// antiword is catdoc's turn. Each printed line is a paragraph; they are returned
  /// separated by blank lines (paragraphs for the chunker). Form feeds (hard page breaks, which
  /// catdoc keeps and antiword drops) become paragraph breaks: a Word file has no fixed pages,
  /// so the chunker must not count them.
  func extractWord97(_ bytes: [UInt8]) async throws(ExtractionError) -> String {
    let antiword = ToolSandbox.locate("antiword")
    let catdoc = ToolSandbox.locate("catdoc")
    guard antiword != nil || catdoc != nil else {
      throw .toolMissing("neither antiword nor catdoc is installed (Debian packages antiword, catdoc)")
    }
    let input = try TemporaryInput(bytes: bytes, sandboxName: "document.doc")
    defer { input.remove() }
    let outputCap = "more than \(describeByteCount(self.limits.maxOutputBytes)) of text"
    // What the refusing tools said (antiword names Excel and PowerPoint files; catdoc mostly
    // exits 69 without a word), and how antiword crashed, if it did.
    var diagnostics: [UInt8] = []
    var crash: ExtractionError?
    if let antiword {
      let run = try await self.runTool(antiword, input: input, maxOutputBytes: self.limits.maxOutputBytes) {
        ["-w", "0", "-m", "UTF-8.txt", $0]
      }
      // The timeout or the output cap is final: catdoc gets no second go at a bomb. Anything
      // else (a refusal, a crash: antiword reads past short structures) is catdoc's turn.
      if run.timedOut || run.outputCapped || run.cancelled {
        try self.checkRun(run, subject: "the Word file", tool: "antiword", outputCap: outputCap)
      }
      if run.termination == .exited(0) { return Self.wordText(run.standardOutput) }
      do {
        try self.checkRun(run, subject: "the Word file", tool: "antiword", outputCap: outputCap)
        diagnostics += run.standardErrorPrefix + [0x0A]
      } catch {
        crash = error
      }
    }
    if let catdoc {
      let run = try await self.runTool(catdoc, input: input, maxOutputBytes: self.limits.maxOutputBytes) {
        ["-w", "-d", "utf-8", $0]
      }
      try self.checkRun(run, subject: "the Word file", tool: "catdoc", outputCap: outputCap)
      if run.termination == .exited(0) { return Self.wordText(run.standardOutput) }
      diagnostics += run.standardErrorPrefix
    } else if let crash {
      throw crash
    }
    throw Self.wordRefusal(diagnostics)
  }

  /// A .docx: `unzip -p -C FILE word/document.xml` out of process, its output capped at
  /// `maxDecompressedBytes` whatever the zip's headers claim (a zip bomb is killed at the cap),
  /// then `DocxText` in process on that bounded XML.
  func extractDocx(_ bytes: [UInt8]) async throws(ExtractionError) -> String {
    let unzip = try ToolSandbox.require("unzip", package: "unzip")
    let input = try TemporaryInput(bytes: bytes, sandboxName: "document.docx")
    defer { input.remove() }
    let run = try await self.runTool(unzip, input: input, maxOutputBytes: self.limits.maxDecompressedBytes) {
      ["-p", "-C", $0, "word/document.xml"]
    }
    if run.outputCapped {
      throw .unreadable("the .docx expands beyond \(describeByteCount(self.limits.maxDecompressedBytes))")
    }
    try self.checkRun(run, subject: "the .docx", tool: "unzip", outputCap: "")
    switch run.termination {
    case .exited(0), .exited(1):
      // 1: warnings only (extra bytes, odd headers); the entry was extracted.
      break
    case .exited(11):
      throw .unreadable("the .docx has no word/document.xml")
    case .exited(81), .exited(82):
      throw .unreadable("the .docx is encrypted or uses an unsupported compression")
    default:
      throw .unreadable("the .docx is damaged (not a readable zip archive)")
    }
    return DocxText.text(fromDocumentXML: run.standardOutput)
  }

  /// Runs `tool` on `input` under the limits; a child killed by a signal inside bubblewrap (which
  /// exits 128 + the signal then) is reported as killed by that signal.
  /// - Throws: `.toolMissing` when the run cannot start (prlimit missing, spawn failure).
  func runTool(
    _ tool: String, input: TemporaryInput, maxOutputBytes: Int, arguments: (_ inputPath: String) -> [String]
  ) async throws(ExtractionError) -> ToolRunResult {
    let invocation = try ToolSandbox.invocation(
      tool: tool, arguments: arguments, input: input, limits: self.limits, maxOutputBytes: maxOutputBytes)
    var run: ToolRunResult
    do {
      run = try await ToolProcess.run(invocation)
    } catch {
      throw .toolMissing("cannot start the extraction tool: \(error.reason)")
    }
    if case .sandboxed = ToolSandbox.isolation, case .exited(let code) = run.termination, (129...192).contains(code) {
      run.termination = .signaled(code - 128)
    }
    return run
  }

  /// Throws when the run hit a limit, was cancelled, crashed, or its sandbox failed; returns
  /// when the tool exited by itself (any status: the caller reads it).
  /// - Parameters:
  ///   - subject: "the PDF", for the message.
  ///   - tool: the tool's name, for the message of a crash.
  ///   - outputCap: what passing the output cap means, after "the PDF has ".
  func checkRun(_ run: ToolRunResult, subject: String, tool: String, outputCap: String) throws(ExtractionError) {
    if run.cancelled { throw .unreadable("\(subject) was not read: the extraction was cancelled") }
    if run.timedOut {
      throw .unreadable(
        "\(subject) could not be read: it took longer than \(self.limits.timeout.extractionDescription)")
    }
    if run.outputCapped { throw .unreadable("\(subject) has \(outputCap)") }
    let diagnostics = run.standardErrorPrefix
    if diagnostics.starts(with: Array("bwrap:".utf8)), case .exited = run.termination {
      throw .toolMissing("the extraction sandbox (bubblewrap) failed to start")
    }
    if diagnostics.starts(with: Array("prlimit:".utf8)) {
      throw .toolMissing("prlimit could not apply the extraction limits")
    }
    let memory = describeByteCount(self.limits.memoryBytes)
    if Self.diagnostics(run, contain: ["bad_alloc", "out of memory", "cannot allocate memory", "memory exhausted"]) {
      throw .unreadable("\(subject) could not be read: it needs more than \(memory) of memory")
    }
    switch run.termination {
    case .exited:
      return
    case .signaled(SIGXCPU):
      throw .unreadable("\(subject) could not be read: it needs more than \(self.limits.cpuSeconds) s of CPU time")
    case .signaled(SIGKILL):
      // Not ours (no timeout, no cap): the CPU rlimit's hard limit or the kernel's OOM killer.
      throw .unreadable(
        "\(subject) could not be read: it needs more than \(self.limits.cpuSeconds) s of CPU time or \(memory) of memory"
      )
    case .signaled(SIGABRT), .signaled(SIGSEGV), .signaled(SIGBUS):
      // An allocation failing under the address-space limit often ends this way too.
      throw .unreadable(
        "\(subject) could not be read: \(tool) crashed on it (it may need more than \(memory) of memory)")
    case .signaled(let signal):
      throw .unreadable("\(subject) could not be read: \(tool) was stopped by signal \(signal)")
    case .unknown:
      throw .unreadable("\(subject) could not be read: \(tool) ended abnormally")
    }
  }

  /// Whether the tool's diagnostics contain one of `needles` (lowercase), ignoring case.
  static func diagnostics(_ run: ToolRunResult, contain needles: [String]) -> Bool {
    let said = String(decoding: run.standardErrorPrefix.map(ASCII.lowercased), as: UTF8.self)
    return needles.contains { said.contains($0) }
  }

  /// Why antiword or catdoc refused a file, from what they said.
  static func wordRefusal(_ diagnostics: [UInt8]) -> ExtractionError {
    let said = String(decoding: diagnostics.map(ASCII.lowercased), as: UTF8.self)
    if said.contains("excel") { return .unreadable("the file is an Excel spreadsheet, not a Word document") }
    if said.contains("powerpoint") { return .unreadable("the file is a PowerPoint presentation, not a Word document") }
    if said.contains("encrypt") || said.contains("password") { return .unreadable("the Word document is encrypted") }
    return .unreadable("the file is not a Word document or is damaged")
  }

  /// A tool's UTF-8 output as text, NUL characters dropped.
  static func toolText(_ output: [UInt8]) -> String {
    String(decoding: output.contains(0) ? output.filter { $0 != 0 } : output, as: UTF8.self)
  }

  /// antiword / catdoc output: one paragraph per line, returned separated by blank lines, with
  /// form feeds as paragraph breaks and trailing blanks trimmed.
  static func wordText(_ output: [UInt8]) -> String {
    let text = Self.toolText(output.map { $0 == 0x0C || $0 == 0x0D ? 0x0A : $0 })
    return text.split(separator: "\n", omittingEmptySubsequences: true)
      .map { line in line.reversed().drop { $0 == " " || $0 == "\t" }.reversed() }
      .filter { !$0.isEmpty }
      .map { String($0) }
      .joined(separator: "\n\n")
  }
}
