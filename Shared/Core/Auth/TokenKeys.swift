public import Crypto
public import Foundation

/// Why a key or key set was refused. Never contains key material.
public struct TokenKeyError: Error, CustomStringConvertible, Equatable {
  public var description: String

  public init(_ description: String) {
    self.description = description
  }
}

/// An Ed25519 public key that verifies access tokens, named by the `kid` tokens carry.
public struct TokenVerificationKey: Sendable {
  public let id: String
  public let key: Curve25519.Signing.PublicKey

  public init(id: String, key: Curve25519.Signing.PublicKey) {
    self.id = id
    self.key = key
  }

  /// The public JWK (RFC 8037): `{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":…,"x":…}`.
  public var jwk: JSONValue {
    .object([
      "kty": .string("OKP"), "crv": .string("Ed25519"), "alg": .string("EdDSA"), "use": .string("sig"),
      "kid": .string(self.id), "x": .string(Base64URL.encode(self.key.rawRepresentation)),
    ])
  }
}

/// The keys services verify access tokens with, read from a JWKS document (RFC 7517 §5) of
/// Ed25519 keys (RFC 8037), each with its own `kid`. During a rotation it holds the old key and
/// the new one; tokens name theirs.
public struct TokenKeySet: Sendable {
  public let keys: [TokenVerificationKey]

  /// The most keys a set may hold (a rotation needs two).
  public static let maxKeys = 16

  public init(keys: [TokenVerificationKey]) throws(TokenKeyError) {
    guard !keys.isEmpty else { throw TokenKeyError("the key set is empty") }
    guard keys.count <= Self.maxKeys else { throw TokenKeyError("the key set holds more than \(Self.maxKeys) keys") }
    guard Set(keys.map(\.id)).count == keys.count else { throw TokenKeyError("two keys have the same kid") }
    self.keys = keys
  }

  /// Reads a JWKS document: `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":…,"x":…}, …]}`. A key
  /// with a private part (`d`) is refused: the document is public and goes to every service.
  public init(jwks text: String) throws(TokenKeyError) {
    guard let document = try? JSONValue(jsonText: text), case .array(let entries)? = document.objectValue?["keys"] else {
      throw TokenKeyError("not a JWKS document (a JSON object with a \"keys\" array)")
    }
    var keys: [TokenVerificationKey] = []
    for (index, entry) in entries.enumerated() {
      guard let members = entry.objectValue else { throw TokenKeyError("key \(index) is not a JSON object") }
      guard members["d"] == nil else {
        throw TokenKeyError("key \(index) has a private part (d): a public key set must not hold private keys")
      }
      keys.append(try Self.publicKey(members, at: "key \(index)"))
    }
    try self.init(keys: keys)
  }

  /// The JWKS document.
  public var jwks: String {
    JSONValue.object(["keys": .array(self.keys.map(\.jwk))]).jsonText
  }

  public func key(id: String) -> TokenVerificationKey? {
    self.keys.first { $0.id == id }
  }

  static func publicKey(_ members: [String: JSONValue], at place: String) throws(TokenKeyError) -> TokenVerificationKey {
    guard members["kty"]?.stringValue == "OKP", members["crv"]?.stringValue == "Ed25519" else {
      throw TokenKeyError("\(place) is not an Ed25519 key (kty OKP, crv Ed25519)")
    }
    if let algorithm = members["alg"], algorithm.stringValue != "EdDSA" {
      throw TokenKeyError("\(place) is for another algorithm than EdDSA")
    }
    guard let id = members["kid"]?.stringValue, !id.isEmpty, id.utf8.count <= 128,
      id.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
    else { throw TokenKeyError("\(place) has no kid (1 to 128 printable ASCII characters)") }
    guard let x = members["x"]?.stringValue.flatMap(Base64URL.decode), x.count == 32,
      let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x)
    else { throw TokenKeyError("\(place) (kid \(id)) has no valid x (32 bytes, base64url)") }
    return TokenVerificationKey(id: id, key: key)
  }
}

/// The agent service's token signing key: an Ed25519 private key with its `kid`. Only the agent
/// service holds one; every other service has the public half alone, so none of them can mint
/// a token.
public struct TokenSigningKey: Sendable {
  public let id: String
  let key: Curve25519.Signing.PrivateKey

  /// A new random key.
  public static func generate(id: String) -> TokenSigningKey {
    TokenSigningKey(id: id, key: Curve25519.Signing.PrivateKey())
  }

  init(id: String, key: Curve25519.Signing.PrivateKey) {
    self.id = id
    self.key = key
  }

  /// Reads a private JWK: `{"kty":"OKP","crv":"Ed25519","kid":…,"x":…,"d":…}` (`x` must be the
  /// public half of `d`).
  public init(jwk text: String) throws(TokenKeyError) {
    guard let members = (try? JSONValue(jsonText: text))?.objectValue else {
      throw TokenKeyError("the private key is not a JWK (a JSON object)")
    }
    let verification = try TokenKeySet.publicKey(members, at: "the private key")
    guard let d = members["d"]?.stringValue.flatMap(Base64URL.decode), d.count == 32,
      let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: d)
    else { throw TokenKeyError("the private key (kid \(verification.id)) has no valid d (32 bytes, base64url)") }
    guard key.publicKey.rawRepresentation == verification.key.rawRepresentation else {
      throw TokenKeyError("the private key's x (kid \(verification.id)) is not the public half of its d")
    }
    self.init(id: verification.id, key: key)
  }

  /// The Ed25519 signature of a JWS signing input (`header.payload`): the token's third part.
  /// (The issuer signs through jwt-kit; this is for tools and tests that build tokens by hand.)
  public func signature(for signingInput: some DataProtocol) throws -> Data {
    try self.key.signature(for: signingInput)
  }

  /// The private JWK.
  public var jwk: String {
    guard case .object(var members) = self.verificationKey.jwk else { return "" }
    members["d"] = .string(Base64URL.encode(self.key.rawRepresentation))
    return JSONValue.object(members).jsonText
  }

  public var verificationKey: TokenVerificationKey {
    TokenVerificationKey(id: self.id, key: self.key.publicKey)
  }
}

/// Unpadded base64url (RFC 4648 §5), read in its one canonical spelling.
public enum Base64URL {
  public static func encode(_ bytes: some DataProtocol) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
  }

  public static func decode(_ text: String) -> [UInt8]? {
    CompactJWS.base64URLDecoded(text.utf8)
  }

  /// `bytes` bytes from the system's CSPRNG, as unpadded base64url: ids and secrets.
  public static func randomToken(bytes: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    return Self.encode((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
  }
}
