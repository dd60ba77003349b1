import Foundation
import PlatformCore
import Testing

@Suite("Token verification")
struct TokenVerifierTests {
  static let auth = AuthConfiguration(secret: "unit-test-secret-0123456789abcdef")
  static let user = UUID()

  static func base64URL(_ text: String) -> String {
    Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
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

  @Test("alg none is refused even with a plausible payload")
  func algNone() async throws {
    let token = Self.base64URL(#"{"alg":"none","typ":"JWT"}"#) + "." + Self.base64URL(Self.claims()) + "."
    await #expect(throws: TokenError.unsupportedAlgorithm("none")) {
      try await TokenVerifier(configuration: Self.auth).verify(token)
    }
  }

  @Test("Another HMAC algorithm is refused")
  func otherAlgorithm() async throws {
    let token = Self.base64URL(#"{"alg":"HS512","typ":"JWT"}"#) + "." + Self.base64URL(Self.claims()) + ".c2ln"
    await #expect(throws: TokenError.unsupportedAlgorithm("HS512")) {
      try await TokenVerifier(configuration: Self.auth).verify(token)
    }
  }

  @Test("A token signed with another secret has a bad signature")
  func forged() async throws {
    let forger = AuthConfiguration(secret: "someone-elses-secret-0123456789abcdef")
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
}
