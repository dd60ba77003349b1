internal import Foundation

/// How the services verify access tokens: EdDSA (Ed25519) signatures checked with public keys
/// (`JWT_PUBLIC_KEYS`), a fixed issuer and audience. Only the agent service signs, with
/// `JWT_PRIVATE_KEY`; a compromised service that only verifies cannot mint a token.
public struct AuthConfiguration: Sendable {
  /// The keys tokens are verified with (`JWT_PUBLIC_KEYS`, a JWKS document).
  public var publicKeys: TokenKeySet
  /// The key tokens are signed with (`JWT_PRIVATE_KEY`, the agent service's); nil elsewhere.
  public var signingKey: TokenSigningKey?
  /// The expected `iss` (`JWT_ISSUER`, default `platform`).
  public var issuer: String
  /// The expected `aud` (`JWT_AUDIENCE`, default `platform`).
  public var audience: String
  /// Allowed clock difference for `exp`, `nbf` and `iat` (`JWT_LEEWAY_SECONDS`, default 30).
  public var leeway: Duration
  /// Whether these are the development keys (whose private half is in the source).
  public var usesDevelopmentKeys: Bool

  public init(
    publicKeys: TokenKeySet, signingKey: TokenSigningKey? = nil, issuer: String = "platform", audience: String = "platform",
    leeway: Duration = .seconds(30)
  ) {
    self.publicKeys = publicKeys
    self.signingKey = signingKey
    self.issuer = issuer
    self.audience = audience
    self.leeway = leeway
    self.usesDevelopmentKeys = false
  }

  /// Signs with `signingKey` and verifies with its public half alone (tests, one-key setups).
  public init(signingKey: TokenSigningKey, issuer: String = "platform", audience: String = "platform", leeway: Duration = .seconds(30)) {
    // One key is always a valid set.
    self.init(
      publicKeys: try! TokenKeySet(keys: [signingKey.verificationKey]), signingKey: signingKey, issuer: issuer,
      audience: audience, leeway: leeway)
  }

  /// The key pair used when `JWT_PUBLIC_KEYS` is unset: fine on a laptop, never in production
  /// (the private half is right here; a service logs a warning, and refuses it unless it listens
  /// on loopback only).
  public static var development: AuthConfiguration {
    var configuration = AuthConfiguration(signingKey: try! TokenSigningKey(jwk: Self.developmentPrivateKey))
    configuration.usesDevelopmentKeys = true
    return configuration
  }

  static let developmentPrivateKey =
    #"{"kty":"OKP","crv":"Ed25519","kid":"development","x":"FxsAVJ9B2b9om7DVq2XdscBz0Jw-N7lxfPd3-4_h7AE","d":"CgmaVpCEuIdVl_0TWAd5uH18vlWNsP5wSMiN97GIIvs"}"#

  public init(environment: Environment) throws {
    if environment["JWT_SECRET"] != nil {
      throw Environment.InvalidValue(
        variable: "JWT_SECRET", value: "<set>",
        expected: "unset: tokens are EdDSA (Ed25519) now; give the public keys in JWT_PUBLIC_KEYS (a JWKS document) and the agent service its private key in JWT_PRIVATE_KEY")
    }
    let signingKey = try Self.read("JWT_PRIVATE_KEY", environment) { text throws(TokenKeyError) in try TokenSigningKey(jwk: text) }
    var publicKeys = try Self.read("JWT_PUBLIC_KEYS", environment) { text throws(TokenKeyError) in try TokenKeySet(jwks: text) }
    if publicKeys == nil, let signingKey { publicKeys = try? TokenKeySet(keys: [signingKey.verificationKey]) }
    let issuer = environment.string("JWT_ISSUER", default: "platform")
    let audience = environment.string("JWT_AUDIENCE", default: "platform")
    let leeway = try environment.seconds("JWT_LEEWAY_SECONDS", default: .seconds(30))
    guard let publicKeys else {
      self = .development
      (self.issuer, self.audience, self.leeway) = (issuer, audience, leeway)
      return
    }
    if let signingKey, publicKeys.key(id: signingKey.id) == nil {
      throw Environment.InvalidValue(
        variable: "JWT_PRIVATE_KEY", value: "<kid \(signingKey.id)>",
        expected: "a key whose kid is in JWT_PUBLIC_KEYS (the other services could not verify its tokens)")
    }
    self.init(publicKeys: publicKeys, signingKey: signingKey, issuer: issuer, audience: audience, leeway: leeway)
  }

  /// A key setting: the JSON itself, or the path of a file holding it.
  private static func read<Value>(
    _ variable: String, _ environment: Environment, _ parse: (String) throws(TokenKeyError) -> Value
  ) throws -> Value? {
    guard let setting = environment[variable]?.trimmingCharacters(in: .whitespacesAndNewlines), !setting.isEmpty else {
      return nil
    }
    var text = setting
    if !setting.hasPrefix("{") {
      guard let contents = try? String(contentsOfFile: setting, encoding: .utf8) else {
        throw Environment.InvalidValue(variable: variable, value: setting, expected: "JSON, or the path of a readable file holding it")
      }
      text = contents
    }
    do {
      return try parse(text)
    } catch {
      throw Environment.InvalidValue(variable: variable, value: "<key material>", expected: error.description)
    }
  }
}
