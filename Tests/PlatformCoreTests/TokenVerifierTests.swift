import Foundation
import GRPCRuntime
import Crypto
import PlatformCore
import Testing

@Suite("Token verification")
struct TokenVerifierTests {
  static let key = TokenSigningKey.generate(id: "unit-test")
  static let auth = AuthConfiguration(signingKey: key)
  static let user = UUID()

  static func base64URL(_ text: String) -> String {
    Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
  }

  static func base64URL(bytes: some Sequence<UInt8>) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
  }

  static let header = #"{"alg":"EdDSA","kid":"unit-test","typ":"JWT"}"#

  /// `header.payload.signature` for exactly these segment texts, signed with the test key: a
  /// token the issuer could have made, however odd its text.
  static func signed(encodedHeader: String, encodedPayload: String, key: TokenSigningKey = key) async throws -> String {
    let input = encodedHeader + "." + encodedPayload
    return input + "." + Self.base64URL(bytes: try key.signature(for: Array(input.utf8)))
  }

  /// A signed token with exactly this header and payload JSON text.
  static func signed(header: String = header, payload: String) async throws -> String {
    try await Self.signed(encodedHeader: Self.base64URL(header), encodedPayload: Self.base64URL(payload))
  }

  /// A valid payload for `user`, with `extra` members (`,"name":value…`) at its end.
  static func payload(_ extra: String = "", sub: String = user.uuidString) -> String {
    let exp = Int(Date().timeIntervalSince1970) + 300
    return #"{"sub":"\#(sub)","iss":"platform","aud":"platform","exp":\#(exp),"roles":["viewer"]\#(extra)}"#
  }

  static func claims(exp: Date = Date().addingTimeInterval(300)) -> String {
    #"{"sub":"\#(user.uuidString)","iss":"platform","aud":"platform","exp":\#(Int(exp.timeIntervalSince1970)),"roles":["admin"]}"#
  }

  @Test("A token the issuer made verifies, with the caller's roles and permissions")
  func validToken() async throws {
    let token = try await TokenIssuer(configuration: Self.auth).issue(
      userID: Self.user, roles: [.viewer], permissions: ["persona:write"])
    let caller = try await TokenVerifier(configuration: Self.auth).verify(token)
    #expect(caller.userID == Self.user)
    #expect(caller.roles == [.viewer])
    #expect(caller.has("persona:read"))
    #expect(caller.has("persona:write"))
    #expect(!caller.has("agent:write"))
  }

  @Test("alg none is refused in every spelling, even with a plausible payload", arguments: ["none", "None", "NONE", "nOnE", ""])
  func algNone(alg: String) async throws {
    let token = Self.base64URL(#"{"alg":"\#(alg)","typ":"JWT","kid":"unit-test"}"#) + "." + Self.base64URL(Self.claims()) + "."
    await #expect(throws: TokenError.unsupportedAlgorithm(alg)) {
      try await TokenVerifier(configuration: Self.auth).verify(token)
    }
  }

  @Test("HS256 signed with the public key as its secret (key confusion) is refused, as is every other algorithm")
  func keyConfusion() async throws {
    let publicKey = Self.key.verificationKey.key.rawRepresentation
    let jwkText = Self.key.verificationKey.jwk.jsonText
    for secret in [Array(publicKey), Array(jwkText.utf8)] {
      let input = Self.base64URL(#"{"alg":"HS256","typ":"JWT","kid":"unit-test"}"#) + "." + Self.base64URL(Self.claims())
      let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: secret))
      let token = input + "." + Self.base64URL(bytes: mac)
      await #expect(throws: TokenError.unsupportedAlgorithm("HS256")) { try await TokenVerifier(configuration: Self.auth).verify(token) }
    }
    for alg in ["ES256", "RS256", "HS512", "EdDSA "] {
      let token = Self.base64URL(#"{"alg":"\#(alg)","typ":"JWT","kid":"unit-test"}"#) + "." + Self.base64URL(Self.claims()) + ".c2ln"
      await #expect(throws: TokenError.unsupportedAlgorithm(alg)) { try await TokenVerifier(configuration: Self.auth).verify(token) }
    }
  }

  @Test("A token naming no key or an unknown kid is refused before its signature is looked at")
  func unknownKey() async throws {
    let stranger = TokenSigningKey.generate(id: "stranger")
    for header in [#"{"alg":"EdDSA","typ":"JWT"}"#, #"{"alg":"EdDSA","kid":"stranger"}"#, #"{"alg":"EdDSA","kid":7}"#] {
      let token = try await Self.signed(
        encodedHeader: Self.base64URL(header), encodedPayload: Self.base64URL(Self.claims()), key: stranger)
      await #expect(throws: TokenError.unknownKey) { try await TokenVerifier(configuration: Self.auth).verify(token) }
    }
  }

  @Test("During a rotation tokens of the old key and of the new one both verify; the new issuer signs with the new kid")
  func rotation() async throws {
    let next = TokenSigningKey.generate(id: "next")
    var rotated = AuthConfiguration(publicKeys: try TokenKeySet(keys: [Self.key.verificationKey, next.verificationKey]))
    rotated.signingKey = next
    let verifier = await TokenVerifier(configuration: rotated)
    let old = try await TokenIssuer(configuration: Self.auth).issue(userID: Self.user, roles: [.viewer])
    let new = try await TokenIssuer(configuration: rotated).issue(userID: Self.user, roles: [.viewer])
    #expect(try await verifier.verify(old).userID == Self.user)
    #expect(try await verifier.verify(new).userID == Self.user)
    let header = try #require(CompactHeader.kid(of: new))
    #expect(header == "next")
    await #expect(throws: TokenError.unknownKey) { try await TokenVerifier(configuration: Self.auth).verify(new) }
  }

  @Test("A verifying service cannot issue tokens: it has no signing key")
  func verifierCannotIssue() async throws {
    let verifyOnly = AuthConfiguration(publicKeys: try TokenKeySet(keys: [Self.key.verificationKey]))
    await #expect(throws: TokenKeyError.self) { _ = try await TokenIssuer(configuration: verifyOnly) }
  }

  @Test("A token signed with another key under the same kid has a bad signature")
  func forged() async throws {
    let forger = AuthConfiguration(signingKey: TokenSigningKey.generate(id: "unit-test"))
    let token = try await TokenIssuer(configuration: forger).issue(userID: Self.user, roles: [.admin])
    await #expect(throws: TokenError.badSignature) {
      try await TokenVerifier(configuration: Self.auth).verify(token)
    }
  }

  @Test("Changing the payload breaks the signature")
  func tampered() async throws {
    let token = try await TokenIssuer(configuration: Self.auth).issue(userID: Self.user, roles: [.viewer])
    let parts = token.split(separator: ".").map(String.init)
    let tampered = [parts[0], Self.base64URL(Self.claims()), parts[2]].joined(separator: ".")
    await #expect(throws: TokenError.badSignature) {
      try await TokenVerifier(configuration: Self.auth).verify(tampered)
    }
  }

  @Test("An expired token is refused (beyond the leeway)")
  func expired() async throws {
    let token = try await TokenIssuer(configuration: Self.auth).issue(
      userID: Self.user, roles: [.viewer], lifetime: .seconds(60), now: Date().addingTimeInterval(-120))
    await #expect(throws: TokenError.expired) {
      try await TokenVerifier(configuration: Self.auth).verify(token)
    }
  }

  @Test("A token verified before is still checked for expiry; a tampered copy is not let in")
  func verifiedBefore() async throws {
    let verifier = await TokenVerifier(configuration: Self.auth)
    let now = Date()
    let token = try await TokenIssuer(configuration: Self.auth).issue(
      userID: Self.user, roles: [.viewer], lifetime: .seconds(60), now: now)
    #expect(try await verifier.verify(token, now: now).userID == Self.user)
    #expect(try await verifier.verify(token, now: now).userID == Self.user)
    await #expect(throws: TokenError.expired) { try await verifier.verify(token, now: now.addingTimeInterval(600)) }
    var parts = token.split(separator: ".").map(String.init)
    var signature = Array(parts[2])
    signature[10] = signature[10] == "A" ? "B" : "A"
    parts[2] = String(signature)
    await #expect(throws: TokenError.badSignature) { try await verifier.verify(parts.joined(separator: "."), now: now) }
  }

  @Test("Wrong issuer and wrong audience are refused")
  func issuerAndAudience() async throws {
    var otherIssuer = Self.auth
    otherIssuer.issuer = "someone-else"
    let token1 = try await TokenIssuer(configuration: otherIssuer).issue(userID: Self.user, roles: [.viewer])
    await #expect(throws: TokenError.wrongIssuer) { try await TokenVerifier(configuration: Self.auth).verify(token1) }

    var otherAudience = Self.auth
    otherAudience.audience = "another-platform"
    let token2 = try await TokenIssuer(configuration: otherAudience).issue(userID: Self.user, roles: [.viewer])
    await #expect(throws: TokenError.wrongAudience) { try await TokenVerifier(configuration: Self.auth).verify(token2) }
  }

  @Test("Garbage is malformed", arguments: ["", "abc", "a.b", "a.b.c.d", "!!!.???.***"])
  func malformed(token: String) async throws {
    await #expect(throws: TokenError.malformed) { try await TokenVerifier(configuration: Self.auth).verify(token) }
  }

  @Test("Roles grant their permissions; admin grants everything; unknown roles nothing")
  func roles() {
    let admin = Caller(userID: Self.user, roles: [.admin])
    #expect(admin.has("agent:admin") && admin.has("persona:write"))
    let developer = Caller(userID: Self.user, roles: [.developer])
    #expect(developer.has("persona:write") && developer.has("workflow:execute") && !developer.has("agent:admin"))
    let analyst = Caller(userID: Self.user, roles: [.analyst])
    #expect(analyst.has("sql:execute") && !analyst.has("persona:write"))
    #expect(Role(storedName: "user") == .viewer)
    #expect(Role(storedName: "root") == nil)
  }

  @Test("The test helper's hand-made tokens verify, so the refusals below are about their one defect")
  func handMade() async throws {
    let verifier = await TokenVerifier(configuration: Self.auth)
    #expect(try await verifier.verify(Self.signed(payload: Self.payload())).userID == Self.user)
    #expect(
      try await verifier.verify(Self.signed(payload: Self.payload(sub: Self.user.uuidString.lowercased()))).userID
        == Self.user)
    let now = Int(Date().timeIntervalSince1970)
    #expect(
      try await verifier.verify(Self.signed(payload: Self.payload(#","iat":\#(now + 10),"nbf":\#(now)"#))).userID
        == Self.user)
    #expect(
      try await verifier.verify(Self.signed(payload: Self.payload(#","email":"escaped \u0000 is fine""#))).email
        == "escaped \0 is fine")
  }

  @Test(
    "A payload naming a claim twice is malformed, whichever the claim (RFC 7519 §4)",
    arguments: [
      #","sub":"\#(UUID().uuidString)""#, #","roles":["admin"]"#, #","exp":1"#, #","iss":"platform""#,
      #","email":"a@example.com","email":"b@example.com""#, #","\u0073ub":"\#(UUID().uuidString)""#,
    ])
  func duplicateClaims(extra: String) async throws {
    let token = try await Self.signed(payload: Self.payload(extra))
    await #expect(throws: TokenError.malformed) { try await TokenVerifier(configuration: Self.auth).verify(token) }
  }

  @Test(
    "A header naming a parameter twice is malformed",
    arguments: [
      #"{"alg":"EdDSA","kid":"unit-test","typ":"JWT","typ":"JWT"}"#, #"{"alg":"EdDSA","kid":"unit-test","alg":"EdDSA","kid":"unit-test"}"#, #"{"alg":"none","alg":"EdDSA","kid":"unit-test"}"#,
      #"{"alg":"EdDSA","kid":"unit-test","alg":"none"}"#, #"{"alg":"EdDSA","kid":"unit-test","kid":"a","kid":"b"}"#,
    ])
  func duplicateHeaderParameters(header: String) async throws {
    let token = try await Self.signed(header: header, payload: Self.payload())
    await #expect(throws: TokenError.malformed) { try await TokenVerifier(configuration: Self.auth).verify(token) }
  }

  @Test(
    "A crit header is refused: no extension is understood (RFC 7515 §4.1.11)",
    arguments: [#""crit":["exp"],"exp":1"#, #""crit":["b64"],"b64":true"#, #""crit":["x-unknown"]"#])
  func criticalExtension(parameters: String) async throws {
    let token = try await Self.signed(header: #"{"alg":"EdDSA","kid":"unit-test","typ":"JWT",\#(parameters)}"#, payload: Self.payload())
    await #expect(throws: TokenError.unsupportedCriticalExtension) {
      try await TokenVerifier(configuration: Self.auth).verify(token)
    }
  }

  @Test("A malformed crit header is malformed", arguments: ["[]", #""b64""#, "[1]", "null", "{}", #"["b64",2]"#])
  func malformedCritical(crit: String) async throws {
    let token = try await Self.signed(header: #"{"alg":"EdDSA","kid":"unit-test","typ":"JWT","crit":\#(crit)}"#, payload: Self.payload())
    await #expect(throws: TokenError.malformed) { try await TokenVerifier(configuration: Self.auth).verify(token) }
  }

  /// Ways to spell a segment other than canonical unpadded base64url.
  enum Misspelling: String, CaseIterable, CustomTestStringConvertible {
    case padded, doublyPadded, standardAlphabet, trailingBits, lineBreak, space, percentEncoded
    var testDescription: String { self.rawValue }

    /// `segment` misspelled; nil when this spelling cannot apply to it.
    func apply(to segment: String) -> String? {
      let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
      let padding = String(repeating: "=", count: (4 - segment.count % 4) % 4)
      switch self {
      case .padded: return padding.isEmpty ? nil : segment + padding
      case .doublyPadded: return segment + padding + "=="
      case .standardAlphabet:
        let standard = segment.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        return standard == segment ? nil : standard
      case .trailingBits:
        // The last character carries 2 (or 4) bits past the last byte; set the lowest.
        guard segment.count % 4 != 0, let index = alphabet.firstIndex(of: segment.last!) else { return nil }
        return String(segment.dropLast()) + String(alphabet[index | 1])
      case .lineBreak: return String(segment.prefix(8)) + "\n" + String(segment.dropFirst(8))
      case .space: return String(segment.prefix(8)) + " " + String(segment.dropFirst(8))
      case .percentEncoded:
        return "%" + String(segment.utf8.first!, radix: 16, uppercase: true) + String(segment.dropFirst())
      }
    }
  }

  @Test("A signature spelled other than canonical unpadded base64url is malformed", arguments: Misspelling.allCases)
  func misspelledSignature(misspelling: Misspelling) async throws {
    // A signature with both a '-' and '_' and with set trailing bits room: every misspelling applies.
    var token = ""
    for index in 0..<1000 {
      token = try await Self.signed(payload: Self.payload(#","email":"user\#(index)@example.com""#))
      let signature = token.split(separator: ".")[2]
      if signature.contains("-") && signature.contains("_") { break }
    }
    let parts = token.split(separator: ".").map(String.init)
    let misspelled = try #require(misspelling.apply(to: parts[2]))
    let verifier = await TokenVerifier(configuration: Self.auth)
    #expect(try await verifier.verify(token).userID == Self.user)
    await #expect(throws: TokenError.malformed) {
      try await verifier.verify([parts[0], parts[1], misspelled].joined(separator: "."))
    }
  }

  @Test(
    "A header or payload spelled other than canonical unpadded base64url is malformed, even when signed",
    arguments: Misspelling.allCases)
  func misspelledHeaderOrPayload(misspelling: Misspelling) async throws {
    let verifier = await TokenVerifier(configuration: Self.auth)
    // Payloads of each length modulo 3, so that padding and trailing bits apply to one of them.
    var checked = 0
    for spaces in 0..<3 {
      // Runs of '?' and '~' encode to '_' and '-' whatever their alignment.
      let payload = Self.base64URL(
        Self.payload(#","email":"??????~~~~~~@example.com\#(String(repeating: " ", count: spaces))""#))
      let header = Self.base64URL(#"{"alg":"EdDSA","kid":"unit-test","typ":"JWT"\#(String(repeating: " ", count: spaces))}"#)
      if let misspelled = misspelling.apply(to: payload) {
        await #expect(throws: TokenError.malformed, "payload \(misspelled)") {
          try await verifier.verify(Self.signed(encodedHeader: header, encodedPayload: misspelled))
        }
        checked += 1
      }
      if let misspelled = misspelling.apply(to: header) {
        await #expect(throws: TokenError.malformed, "header \(misspelled)") {
          try await verifier.verify(Self.signed(encodedHeader: misspelled, encodedPayload: payload))
        }
        checked += 1
      }
    }
    #expect(checked > 0)
  }

  @Test(
    "An unescaped control character or invalid UTF-8 in the header or payload is malformed (RFC 8259)",
    arguments: ["\u{0}", "\n", "\r", "\t", "\u{1F}"])
  func controlCharacters(character: String) async throws {
    let verifier = await TokenVerifier(configuration: Self.auth)
    let payload = Self.payload(#","email":"a\#(character)b@example.com""#)
    await #expect(throws: TokenError.malformed) { try await verifier.verify(Self.signed(payload: payload)) }
    let header = #"{"alg":"EdDSA","kid":"unit-test","typ":"J\#(character)WT"}"#
    await #expect(throws: TokenError.malformed) {
      try await verifier.verify(Self.signed(header: header, payload: Self.payload()))
    }
  }

  @Test("Anything after the JSON object, a NUL included, or bytes that are not UTF-8, are malformed")
  func trailingAndInvalidBytes() async throws {
    let verifier = await TokenVerifier(configuration: Self.auth)
    let header = Self.base64URL(Self.header)
    for trailer: [UInt8] in [[0], [0, 0x7B, 0x7D], [0x0A, 0x7B, 0x7D]] {
      let payload = Self.base64URL(bytes: Array(Self.payload().utf8) + trailer)
      await #expect(throws: TokenError.malformed) {
        try await verifier.verify(Self.signed(encodedHeader: header, encodedPayload: payload))
      }
    }
    let invalidUTF8 = Array(Self.payload(#","email":"a"#).utf8) + [0xFF, 0xFE] + Array(#"b"}"#.utf8)
    await #expect(throws: TokenError.malformed) {
      try await verifier.verify(Self.signed(encodedHeader: header, encodedPayload: Self.base64URL(bytes: invalidUTF8)))
    }
    let bom = Self.base64URL(bytes: [0xEF, 0xBB, 0xBF] + Array(Self.payload().utf8))
    await #expect(throws: TokenError.malformed) {
      try await verifier.verify(Self.signed(encodedHeader: header, encodedPayload: bom))
    }
  }

  @Test("iat later than now plus the leeway is refused, also for a token verified before; iat must be a number")
  func issuedAt() async throws {
    let verifier = await TokenVerifier(configuration: Self.auth)
    let now = Date()
    let seconds = Int(now.timeIntervalSince1970)
    let future = try await Self.signed(payload: Self.payload(#","iat":\#(seconds + 3600)"#))
    await #expect(throws: TokenError.issuedInFuture) { try await verifier.verify(future, now: now) }
    // Within the leeway (30 s): a clock a little ahead is tolerated.
    let soon = try await Self.signed(payload: Self.payload(#","iat":\#(seconds + 20)"#))
    #expect(try await verifier.verify(soon, now: now).userID == Self.user)
    await #expect(throws: TokenError.issuedInFuture) {
      try await verifier.verify(soon, now: now.addingTimeInterval(-60))
    }
    for value in [#""\#(seconds)""#, "null", "true", "[1]", "{}"] {
      let token = try await Self.signed(payload: Self.payload(#","iat":\#(value)"#))
      await #expect(throws: TokenError.malformed, "iat \(value)") { try await verifier.verify(token, now: now) }
    }
    let stringExpiry = try await Self.signed(
      payload: #"{"sub":"\#(Self.user)","iss":"platform","aud":"platform","exp":"\#(seconds + 300)"}"#)
    await #expect(throws: TokenError.malformed) { try await verifier.verify(stringExpiry, now: now) }
  }

  @Test(
    "A subject that is not exactly a UUID is refused",
    arguments: [
      #"\#(user.uuidString)\u0000junk"#, #"\#(user.uuidString)\u0000"#, "{\(user.uuidString)}", " \(user.uuidString)",
      "\(user.uuidString) ", user.uuidString.replacingOccurrences(of: "-", with: ""),
      String(user.uuidString.dropLast()),
      "urn:uuid:\(user.uuidString)", #"\#(user.uuidString)\n"#,
    ])
  func subject(sub: String) async throws {
    let token = try await Self.signed(payload: Self.payload(sub: sub))
    await #expect(throws: TokenError.invalidSubject) { try await TokenVerifier(configuration: Self.auth).verify(token) }
  }

  @Test("One authorization header gives its bearer token; two are refused, whatever they hold")
  func authorizationHeaders() throws {
    #expect(try AuthInterceptor.bearerToken(in: ["Bearer abc.def.ghi"]) == "abc.def.ghi")
    #expect(try AuthInterceptor.bearerToken(in: ["bearer   abc.def.ghi"]) == "abc.def.ghi")
    #expect(throws: TokenError.multipleAuthorizationHeaders) {
      try AuthInterceptor.bearerToken(in: ["Bearer abc.def.ghi", "Bearer abc.def.ghi"])
    }
    #expect(throws: TokenError.multipleAuthorizationHeaders) { try AuthInterceptor.bearerToken(in: ["", "Bearer abc.def.ghi"]) }
    #expect(try AuthInterceptor.bearerToken(in: ["BEARER x"]) == "x")
    for refused in ["Basic abc", "Bearer ", "Bearer", "Bearer\u{0}abc", "Bearer\tabc", "Bearerabc", "Béarer abc", ""] {
      #expect(throws: TokenError.missing, "\(refused.debugDescription)") { try AuthInterceptor.bearerToken(in: [refused]) }
    }
    #expect(throws: TokenError.missing) { try AuthInterceptor.bearerToken(in: []) }
  }
}

/// Reads a token's `kid` header (the tests' own reading, not the verifier's).
enum CompactHeader {
  static func kid(of token: String) -> String? {
    guard let first = token.split(separator: ".").first else { return nil }
    var text = first.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while text.count % 4 != 0 { text += "=" }
    guard let data = Data(base64Encoded: text),
      let header = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return nil }
    return header["kid"] as? String
  }
}
