import Crypto
import Foundation
import Logging
import PlatformCore
import SwiftProtobuf
import Testing

@Suite("Trace context")
struct TraceContextTests {
  @Test("A valid traceparent parses and prints back")
  func roundTrip() throws {
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    let context = try #require(TraceContext(traceparent: header))
    #expect(context.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
    #expect(context.traceparent == header)
    let child = context.child()
    #expect(child.traceID == context.traceID && child.spanID != context.spanID)
  }

  @Test(
    "Malformed traceparents are ignored",
    arguments: [
      "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01",
    ])
  func malformed(header: String) {
    #expect(TraceContext(traceparent: header) == nil)
  }

  @Test("A later version's extra fields are tolerated")
  func futureVersion() {
    #expect(TraceContext(traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever") != nil)
  }

  @Test("New traces have distinct, valid ids of the right length")
  func newTrace() {
    let traces = (0..<1000).map { _ in TraceContext.newTrace() }
    for trace in traces {
      #expect(trace.traceID.count == 32 && trace.spanID.count == 16)
      #expect(TraceContext(traceparent: trace.traceparent) == trace)
    }
    #expect(Set(traces.map(\.traceID)).count == 1000 && Set(traces.map(\.spanID)).count == 1000)
    let child = traces[0].child()
    #expect(child.traceID == traces[0].traceID && child.spanID != traces[0].spanID)
  }
}

@Suite("Configuration")
struct ConfigurationTests {
  @Test("Defaults: loopback, the service's port and database, the development keys")
  func defaults() {
    let configuration = ServiceConfiguration.defaults(for: .textToSQL)
    #expect(configuration.host == "127.0.0.1")
    #expect(configuration.port == 50054)
    #expect(configuration.database.database == "sql_db")
    #expect(configuration.auth.usesDevelopmentKeys)
    #expect(configuration.peers[.codeSandbox] == "127.0.0.1:50053")
    #expect(PlatformServiceName.codeSandbox.addressVariable == "CODE_SANDBOX_ADDR")
  }

  @Test("Settings come from the environment")
  func fromEnvironment() throws {
    let configuration = try ServiceConfiguration.fromEnvironment(
      service: .persona,
      environment: Environment([
        "PORT": "6000", "DATABASE_URL": "postgres://u:p%40ss%2541@db.internal:6543/personas?sslmode=require",
        "JWT_PUBLIC_KEYS": Self.jwks, "LOG_LEVEL": "DEBUG", "AGENT_ADDR": "agent:50051",
      ]))
    #expect(configuration.port == 6000)
    #expect(configuration.database.host == "db.internal" && configuration.database.port == 6543)
    #expect(configuration.database.password == "p@ss%41" && configuration.database.requireTLS)  // decoded once
    #expect(configuration.database.description == "postgres://u@db.internal:6543/personas")
    #expect(configuration.logLevel == .debug)
    #expect(configuration.peers[.agent] == "agent:50051")
    #expect(!configuration.auth.usesDevelopmentKeys)
    // A fixed-size pool unless told otherwise.
    #expect(configuration.database.poolSize == 8 && configuration.database.minimumConnections == 8)
    let smaller = try ServiceConfiguration.fromEnvironment(
      service: .persona, environment: Environment(["DATABASE_POOL_SIZE": "12", "DATABASE_POOL_MIN": "2"]))
    #expect(smaller.database.poolSize == 12 && smaller.database.minimumConnections == 2)
  }

  static let signingKey = TokenSigningKey.generate(id: "configuration-test")
  static let jwks = try! TokenKeySet(keys: [signingKey.verificationKey]).jwks

  @Test("The public development keys are refused unless the service listens on loopback only")
  func developmentKeys() throws {
    #expect(try ServiceConfiguration.fromEnvironment(service: .agent, environment: Environment(["HOST": "::1"])).auth.usesDevelopmentKeys)
    #expect {
      try ServiceConfiguration.fromEnvironment(service: .agent, environment: Environment(["HOST": "0.0.0.0"]))
    } throws: { error in
      (error as? Environment.InvalidValue)?.variable == "JWT_PUBLIC_KEYS"
    }
    let own = Environment(["HOST": "0.0.0.0", "JWT_PUBLIC_KEYS": Self.jwks])
    #expect(try ServiceConfiguration.fromEnvironment(service: .agent, environment: own).host == "0.0.0.0")
  }

  @Test("Token keys: a JWKS (inline or a file), the agent's private key in it; a private part in the JWKS or a stray kid is refused")
  func tokenKeys() throws {
    let next = TokenSigningKey.generate(id: "next")
    let rotation = try TokenKeySet(keys: [Self.signingKey.verificationKey, next.verificationKey]).jwks
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("jwks-\(UUID().uuidString).json").path
    try rotation.write(toFile: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: file) }
    let agent = try AuthConfiguration(environment: Environment(["JWT_PUBLIC_KEYS": file, "JWT_PRIVATE_KEY": next.jwk]))
    #expect(agent.publicKeys.keys.map(\.id) == ["configuration-test", "next"] && agent.signingKey?.id == "next")
    #expect(!agent.usesDevelopmentKeys)
    #expect(throws: Environment.InvalidValue.self) {
      try AuthConfiguration(environment: Environment(["JWT_PUBLIC_KEYS": Self.jwks, "JWT_PRIVATE_KEY": next.jwk]))
    }
    #expect(throws: TokenKeyError.self) { try TokenKeySet(jwks: #"{"keys":[\#(next.jwk)]}"#) }
    #expect(throws: TokenKeyError.self) { try TokenKeySet(jwks: #"{"keys":[]}"#) }
    #expect(throws: TokenKeyError.self) { try TokenKeySet(jwks: rotation.replacingOccurrences(of: "next", with: "configuration-test")) }
    #expect(throws: TokenKeyError.self) { try TokenSigningKey(jwk: next.jwk.replacingOccurrences(of: "\"kid\":\"next\"", with: "\"kid\":\"\"")) }
    let mismatched = next.jwk.replacingOccurrences(
      of: Self.base64x(next), with: Self.base64x(Self.signingKey))
    #expect(throws: TokenKeyError.self) { try TokenSigningKey(jwk: mismatched) }
    #expect(try TokenSigningKey(jwk: next.jwk).verificationKey.key.rawRepresentation == next.verificationKey.key.rawRepresentation)
  }

  static func base64x(_ key: TokenSigningKey) -> String {
    key.verificationKey.jwk.objectValue?["x"]?.stringValue ?? ""
  }

  @Test(
    "A malformed setting is an error naming the variable (and never echoing a password)",
    arguments: [
      ("PORT", "http"), ("PORT", "70000"), ("DATABASE_URL", "mysql://u:secret@h/db"), ("DATABASE_URL", "postgres://u:secret@h"),
      ("LOG_LEVEL", "loud"), ("LOG_FORMAT", "xml"), ("JWT_SECRET", "short"), ("JWT_PUBLIC_KEYS", "{}"), ("JWT_PRIVATE_KEY", "/nonexistent/key.jwk"), ("DATABASE_POOL_SIZE", "0"),
      ("DATABASE_POOL_MIN", "9"), ("DATABASE_POOL_MIN", "-1"),
      ("DATABASE_URL", "postgres://u:secret@h/db?sslmode=prefer"), ("SHUTDOWN_GRACE_SECONDS", "1e16"),
      ("SHUTDOWN_GRACE_SECONDS", "-1"),
    ])
  func invalid(variable: String, value: String) {
    #expect {
      try ServiceConfiguration.fromEnvironment(service: .agent, environment: Environment([variable: value]))
    } throws: { error in
      let invalid = error as? Environment.InvalidValue
      return invalid?.variable == variable && !(invalid?.description.contains("secret@") ?? true)
    }
  }
}

@Suite("SQL scripts")
struct SQLScriptTests {
  @Test("Statements split at top-level semicolons only")
  func split() {
    let script = """
      -- a comment; with a semicolon
      CREATE TABLE a (x TEXT DEFAULT 'semi;colon', "weird;name" INT);
      /* block; /* nested; */ comment */
      CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
      INSERT INTO a VALUES ('it''s; fine', 2);;
      SELECT $$;$$
      """
    let statements = SQLScript.statements(in: script)
    #expect(statements.count == 4)
    #expect(statements[0].hasSuffix(#""weird;name" INT)"#))
    #expect(statements[1].contains("$body$ SELECT 1; $body$"))
    #expect(statements[2].contains("'it''s; fine'"))
    #expect(statements[3] == "SELECT $$;$$")
  }

  @Test("A script of comments and whitespace has no statements")
  func empty() {
    #expect(SQLScript.statements(in: "  -- nothing\n /* here */ ;\n").isEmpty)
  }
}

@Suite("JSON values")
struct JSONValueTests {
  @Test("JSON text and google.protobuf.Struct round-trip")
  func roundTrip() throws {
    let text = #"{"a":[1,2.5,"x",true,null],"b":{"c":"d\"e"},"n":-3}"#
    let value = try JSONValue(jsonText: text)
    #expect(value.jsonText == text)
    #expect(JSONValue(value.protobufStruct) == value)
    #expect(try JSONValue(jsonText: "true") == .bool(true))
    #expect(try JSONValue(jsonText: "1") == .number(1))
    #expect(value.nodeCount == 10 && value.depth == 2)
  }

  @Test("Escapes, surrogate pairs, numbers and whitespace parse as RFC 8259 says")
  func parsing() throws {
    let text = " {\"s\" : \"tab\\t quote\\\" slash\\/ \\u00e9 \\ud83d\\ude00 é\",\n\"n\":[0,-0.5,1e3,2E-2,-12.75e+1],\"e\":{},\"a\":[]}\r\n"
    let value = try JSONValue(jsonText: text)
    #expect(value == .object([
      "s": .string("tab\t quote\" slash/ é 😀 é"),
      "n": .array([.number(0), .number(-0.5), .number(1000), .number(0.02), .number(-127.5)]),
      "e": .object([:]), "a": .array([]),
    ]))
    #expect(try JSONValue(jsonText: value.jsonText) == value)
    #expect(throws: JSONParseError.self) { try JSONValue(jsonText: #"{"k":1,"k":2}"#) }
    let deep = String(repeating: "[", count: NestingLimit.maximumDepth) + String(repeating: "]", count: NestingLimit.maximumDepth)
    #expect(try JSONValue(jsonText: deep).depth == NestingLimit.maximumDepth)
  }

  @Test(
    "Malformed JSON is an error naming where, not a crash",
    arguments: [
      "", " ", "{", "[1,]", #"{"a":1,}"#, "{a:1}", "'x'", "01", "1.", ".5", "-", "1e", "+1", "NaN", "1e999",
      "tru", "nul", "[1 2]", #"{"a" 1}"#, #""open"#, #""bad \x escape""#, #""\u12""#, #""\ud800""#,
      #""\udc00""#, #""\ud800\u0041""#, "\"raw\ttab\"", "1 2", "[1]x", "{}}",
      String(repeating: "[", count: 513) + String(repeating: "]", count: 513),
    ])
  func malformed(text: String) {
    #expect(throws: JSONParseError.self) { try JSONValue(jsonText: text) }
  }

  @Test("Page tokens round-trip and garbage does not decode")
  func pageTokens() {
    struct Cursor: Codable, Equatable { var key: Int64; var id: String }
    let token = PageToken.encode(Cursor(key: 42, id: "x/y+z"))
    #expect(PageToken.decode(token, as: Cursor.self) == Cursor(key: 42, id: "x/y+z"))
    #expect(PageToken.decode("not-a-token", as: Cursor.self) == nil)
    #expect(PageToken.pageSize(0, default: 50, maximum: 1000) == 50)
    #expect(PageToken.pageSize(5000, default: 50, maximum: 1000) == 1000)
    #expect(PageToken.pageSize(-1, default: 50, maximum: 1000) == nil)
  }
}
