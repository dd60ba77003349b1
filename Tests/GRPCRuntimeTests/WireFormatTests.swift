import Testing
@testable import GRPCRuntime

@Suite("Wire format")
struct WireFormatTests {
  @Test("grpc-timeout parses every unit and rejects malformed values")
  func timeoutParsing() {
    #expect(Timeout.parse("1H") == .seconds(3600))
    #expect(Timeout.parse("2M") == .seconds(120))
    #expect(Timeout.parse("3S") == .seconds(3))
    #expect(Timeout.parse("4m") == .milliseconds(4))
    #expect(Timeout.parse("5u") == .microseconds(5))
    #expect(Timeout.parse("6n") == .nanoseconds(6))
    #expect(Timeout.parse("99999999S") == .seconds(99_999_999))
    for bad in ["", "S", "1", "123456789S", "1x", "-1S", "1.5S", " 1S"] {
      #expect(Timeout.parse(bad) == nil, "\(bad)")
    }
  }

  @Test("grpc-timeout encodes with at most eight digits, rounding up")
  func timeoutEncoding() {
    #expect(Timeout.encode(.milliseconds(1)) == "1000000n")
    #expect(Timeout.encode(.seconds(30)) == "30000000u")
    #expect(Timeout.encode(.seconds(3600 * 1000)) == "3600000S")
    #expect(Timeout.encode(.zero) == "1n")
    for duration: Duration in [.nanoseconds(7), .milliseconds(250), .seconds(12), .seconds(86_400), .seconds(400_000_000)] {
      let encoded = Timeout.encode(duration)
      #expect(encoded.count <= 9, "\(encoded)")
      let parsed = Timeout.parse(encoded)!
      #expect(parsed >= duration)
    }
  }

  @Test("grpc-message percent-encoding round-trips Unicode and control characters")
  func percentEncoding() {
    let message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n 100%"
    let encoded = PercentEncoding.encode(message)
    #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E })
    #expect(PercentEncoding.decode(encoded) == message)
    #expect(PercentEncoding.encode("plain") == "plain")
    #expect(PercentEncoding.decode("bad %zz escape %4") == "bad %zz escape %4")
  }

  @Test("-bin metadata base64 round-trips, padded or not", arguments: [0, 1, 2, 3, 4, 5, 64, 255])
  func base64(length: Int) {
    let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37) }
    let encoded = Base64.encode(bytes)
    #expect(!encoded.contains("="))
    #expect(Base64.decode(Substring(encoded)) == bytes)
    let padding = String(repeating: "=", count: (4 - encoded.count % 4) % 4)
    #expect(Base64.decode(Substring(encoded + padding)) == bytes)
    #expect(Base64.decode("a!b=") == nil)
  }

  @Test("The deframer splits messages across any chunking")
  func deframerChunking() throws {
    let messages: [[UInt8]] = [[], [1], Array(repeating: 7, count: 1000), [1, 2, 3]]
    var wire: [UInt8] = []
    for message in messages {
      wire += [0] + withUnsafeBytes(of: UInt32(message.count).bigEndian, Array.init) + message
    }
    for chunkSize in [1, 2, 5, 6, 13, 1000, wire.count] {
      var deframer = MessageDeframer(maxMessageSize: 4096)
      var received: [[UInt8]] = []
      var offset = 0
      while offset < wire.count {
        let end = min(offset + chunkSize, wire.count)
        try wire[offset..<end].withUnsafeBytes { chunk in
          try deframer.append(chunk) { received.append($0.payload) }
        }
        offset = end
      }
      #expect(received == messages, "chunk size \(chunkSize)")
      #expect(!deframer.hasPartialMessage)
    }
  }

  @Test("The deframer rejects oversize lengths before buffering and bad flags")
  func deframerLimits() {
    var deframer = MessageDeframer(maxMessageSize: 10)
    let oversize: [UInt8] = [0, 0, 0, 0, 11]
    #expect(throws: RPCError.self) {
      try oversize.withUnsafeBytes { try deframer.append($0) { _ in } }
    }
    var flagged = MessageDeframer(maxMessageSize: 10)
    let badFlag: [UInt8] = [2, 0, 0, 0, 1, 0]
    do {
      try badFlag.withUnsafeBytes { try flagged.append($0) { _ in } }
      Issue.record("a flag of 2 was accepted")
    } catch let error as RPCError {
      #expect(error.code == .internal)
    } catch {
      Issue.record("unexpected \(error)")
    }
    var truncated = MessageDeframer(maxMessageSize: 10)
    let partial: [UInt8] = [0, 0, 0, 0, 5, 1, 2]
    try? partial.withUnsafeBytes { try truncated.append($0) { _ in Issue.record("emitted a partial message") } }
    #expect(truncated.hasPartialMessage)
  }

  @Test("gzip round-trips and refuses to inflate past the limit")
  func gzip() throws {
    let input = Array(repeating: UInt8(ascii: "a"), count: 100_000)
    let compressed = Gzip.compress(input)
    #expect(compressed.count < 1000)
    #expect(try Gzip.decompress(compressed, limit: 100_000) == input)
    do {
      _ = try Gzip.decompress(compressed, limit: 50_000)
      Issue.record("a gzip bomb was inflated past the limit")
    } catch {
      #expect(error.code == .resourceExhausted)
    }
    #expect(throws: RPCError.self) { try Gzip.decompress([1, 2, 3, 4], limit: 100) }
  }

  @Test("Metadata keeps order, lower-cases keys and drops reserved ones on the wire")
  func metadata() {
    var metadata: Metadata = ["X-Trace": "a", "x-trace": "b"]
    metadata.addBinary([1, 2], forKey: "blob-bin")
    metadata.addString("no", forKey: "grpc-status")
    metadata.addString("no", forKey: "Bad Key")
    #expect(metadata.firstString(forKey: "x-trace") == "a")
    var wire: [(String, String)] = []
    metadata.forEachWireHeader { wire.append(($0, $1)) }
    #expect(wire.map(\.0) == ["x-trace", "x-trace", "blob-bin"])
    #expect(wire.last?.1 == "AQI")
  }

  @Test("Reserved and binary keys are recognised by their bytes, whatever their length")
  func reservedKeys() {
    let reserved = [
      "te", "host", "upgrade", "connection", "keep-alive", "grpc-status", "content-type", "grpc-message", "grpc-timeout",
      "grpc-encoding", "proxy-connection", "transfer-encoding", "grpc-accept-encoding", "grpc-status-details-bin",
      ":path", ":",
    ]
    for key in reserved { #expect(Metadata.isReserved(key), "\(key)") }
    for key in ["", "tf", "hosts", "x-trace-id", "grpc-statuz", "content-typ", "grpc-timeouts", "authorization", "grpc-status-details-bim"] {
      #expect(!Metadata.isReserved(key), "\(key)")
    }
    #expect(Metadata.isBinaryKey("a-bin") && Metadata.isBinaryKey("-bin") && Metadata.isBinaryKey(String(Substring("x-trace-bin"))))
    #expect(!Metadata.isBinaryKey("bin") && !Metadata.isBinaryKey("a-bim") && !Metadata.isBinaryKey("a-BIN") && !Metadata.isBinaryKey(""))
    #expect(Metadata.lowercased("x-trace") == "x-trace" && Metadata.lowercased("X-Trace-ID") == "x-trace-id")
  }

  @Test("Unknown grpc-status values become UNKNOWN; HTTP statuses map per the spec")
  func statusCodes() {
    #expect(StatusCode(wireValue: 99) == .unknown)
    #expect(StatusCode(wireValue: 14) == .unavailable)
    #expect(StatusCode(httpStatus: 404) == .unimplemented)
    #expect(StatusCode(httpStatus: 503) == .unavailable)
    #expect(StatusCode(httpStatus: 401) == .unauthenticated)
  }
}
