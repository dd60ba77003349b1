public import Foundation
internal import JWTKit
internal import Synchronization

/// The claims of the platform's access tokens (EdDSA JWTs the agent service issues).
struct AccessTokenClaims: JWTPayload {
  var sub: SubjectClaim
  var iss: IssuerClaim
  var aud: AudienceClaim
  var exp: ExpirationClaim
  var iat: IssuedAtClaim?
  var nbf: NotBeforeClaim?
  var email: String?
  var roles: [String]?
  var permissions: [String]?
  /// The login session the token belongs to (`session:{user_id}` in Redis).
  var sid: String?

  /// Claims are checked by `TokenVerifier`, which knows the configured issuer, audience and
  /// leeway; the signature check alone happens here.
  func verify(using algorithm: some JWTAlgorithm) async throws {}
}

extension AuthConfiguration {
  /// The public keys, each under its `kid`: what tokens are verified with.
  func verificationKeys() async -> JWTKeyCollection {
    let keys = JWTKeyCollection()
    for key in self.publicKeys.keys {
      await keys.add(eddsa: EdDSA.PublicKey(backing: key.key), kid: JWKIdentifier(string: key.id))
    }
    return keys
  }
}

/// Why a bearer token was refused. The message is safe to show the caller.
public enum TokenError: Error, Equatable, Sendable, CustomStringConvertible {
  case missing
  case multipleAuthorizationHeaders
  case malformed
  case unsupportedAlgorithm(String)
  case unknownKey
  case unsupportedCriticalExtension
  case badSignature
  case expired
  case notYetValid
  case issuedInFuture
  case wrongIssuer
  case wrongAudience
  case invalidSubject

  public var description: String {
    switch self {
    case .missing: "The call needs `authorization: Bearer <token>`"
    case .multipleAuthorizationHeaders: "The call carries more than one `authorization` header"
    case .malformed: "The bearer token is not a well-formed JWT"
    case .unsupportedAlgorithm(let alg): "The token's algorithm \(alg.isEmpty ? "(none)" : alg) is not accepted; tokens are EdDSA"
    case .unknownKey: "The token's key (kid) is not one this service trusts"
    case .unsupportedCriticalExtension: "The token's header names critical extensions (crit), which are not supported"
    case .badSignature: "The token's signature is invalid"
    case .expired: "The token has expired"
    case .notYetValid: "The token is not valid yet"
    case .issuedInFuture: "The token's issue time is in the future"
    case .wrongIssuer: "The token's issuer is not accepted"
    case .wrongAudience: "The token's audience is not accepted"
    case .invalidSubject: "The token's subject is not a user id"
    }
  }
}

/// Verifies access tokens locally: an EdDSA (Ed25519) signature by one of the trusted public keys,
/// named by the token's `kid`, then issuer, audience, expiry, not-before and issued-at (with
/// leeway). Any other algorithm (`none` and HS256 included, so a token "signed" with a public key
/// as an HMAC secret means nothing) and an unknown `kid` are refused before the signature is
/// looked at.
///
/// The token is read strictly first (`CompactJWS`: canonical base64url, strict JSON without
/// duplicate names), then its header: a `crit` parameter is refused (RFC 7515 §4.1.11; no
/// extension is understood here), and the time claims must be numbers. Only then does jwt-kit
/// check the signature and decode the claims, which by then cannot mean anything else to it.
/// The subject must be a UUID in its canonical text (`UUID(strict:)`).
///
/// A client sends the same token on every call until it expires, and checking its signature and
/// decoding its claims cost more CPU than the rest of a cached read; so tokens that passed are
/// remembered (up to `cacheCapacity`) and a repeat only has its expiry, not-before and issue time
/// checked again. A token is remembered by its whole text, signature included.
public struct TokenVerifier: Sendable {
  private let keys: JWTKeyCollection
  private let configuration: AuthConfiguration
  private let verified: VerifiedTokens

  public init(configuration: AuthConfiguration, cacheCapacity: Int = 10_000) async {
    self.configuration = configuration
    self.keys = await configuration.verificationKeys()
    self.verified = VerifiedTokens(capacity: cacheCapacity)
  }

  /// - Returns: the caller the token stands for.
  /// - Throws: `TokenError`.
  public func verify(_ token: String, now: Date = Date()) async throws(TokenError) -> Caller {
    if let known = self.verified[token] {
      try self.checkValidity(expiresAt: known.expiresAt, notBefore: known.notBefore, issuedAt: known.issuedAt, now: now)
      return known.caller
    }
    let jws = try CompactJWS(token)
    let algorithm = jws.header["alg"]?.stringValue ?? ""
    // The name goes back to the caller in the status message: keep it short.
    guard algorithm == "EdDSA" else { throw .unsupportedAlgorithm(String(algorithm.prefix(16))) }
    guard let keyID = jws.header["kid"]?.stringValue, self.configuration.publicKeys.key(id: keyID) != nil else {
      throw .unknownKey
    }
    if let critical = jws.header["crit"] {
      // A non-empty array of names (RFC 7515 §4.1.11); any name is an extension not understood.
      guard case .array(let names) = critical, !names.isEmpty, names.allSatisfy({ $0.stringValue != nil }) else {
        throw .malformed
      }
      throw .unsupportedCriticalExtension
    }
    // NumericDate values are JSON numbers (RFC 7519 §2); null or a string is not an absent claim.
    for name in ["exp", "nbf", "iat"] {
      switch jws.payload[name] {
      case nil, .number?: break
      default: throw .malformed
      }
    }

    let claims: AccessTokenClaims
    do {
      claims = try await self.keys.verify(token, as: AccessTokenClaims.self)
    } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
      throw .badSignature
    } catch {
      throw .malformed
    }
    try self.checkValidity(
      expiresAt: claims.exp.value, notBefore: claims.nbf?.value, issuedAt: claims.iat?.value, now: now)
    guard claims.iss.value == self.configuration.issuer else { throw .wrongIssuer }
    guard claims.aud.value.contains(self.configuration.audience) else { throw .wrongAudience }
    guard let userID = UUID(strict: claims.sub.value) else { throw .invalidSubject }
    let caller = Caller(
      userID: userID,
      email: claims.email,
      roles: (claims.roles ?? []).compactMap(Role.init(storedName:)),
      extraPermissions: (claims.permissions ?? []).map(Permission.init(rawValue:)),
      sessionID: claims.sid
    )
    self.verified[token] = VerifiedTokens.Entry(
      caller: caller, expiresAt: claims.exp.value, notBefore: claims.nbf?.value, issuedAt: claims.iat?.value)
    return caller
  }

  private func checkValidity(expiresAt: Date, notBefore: Date?, issuedAt: Date?, now: Date) throws(TokenError) {
    let leeway = Double(self.configuration.leeway.components.seconds)
    guard expiresAt.timeIntervalSince(now) > -leeway else { throw .expired }
    if let notBefore, notBefore.timeIntervalSince(now) > leeway { throw .notYetValid }
    if let issuedAt, issuedAt.timeIntervalSince(now) > leeway { throw .issuedInFuture }
  }
}

/// The tokens a `TokenVerifier` accepted, by their text. When full it starts afresh: a working
/// set of live tokens refills it in one round of calls, and no entry outlives its usefulness.
final class VerifiedTokens: Sendable {
  struct Entry: Sendable {
    var caller: Caller
    var expiresAt: Date
    var notBefore: Date?
    var issuedAt: Date?
  }

  private let capacity: Int
  private let entries = Mutex<[String: Entry]>([:])

  init(capacity: Int) {
    self.capacity = capacity
  }

  subscript(token: String) -> Entry? {
    get { self.entries.withLock { $0[token] } }
    set {
      guard self.capacity > 0 else { return }
      self.entries.withLock { entries in
        if entries.count >= self.capacity { entries.removeAll(keepingCapacity: true) }
        entries[token] = newValue
      }
    }
  }
}

/// Issues access tokens with the signing key: the agent service's login, and tests.
public struct TokenIssuer: Sendable {
  private let keys: JWTKeyCollection
  private let keyID: JWKIdentifier
  private let configuration: AuthConfiguration

  /// - Throws: `TokenKeyError` when the configuration has no signing key (only the agent
  ///   service has one).
  public init(configuration: AuthConfiguration) async throws(TokenKeyError) {
    guard let signingKey = configuration.signingKey else {
      throw TokenKeyError("no signing key: only the agent service issues tokens (JWT_PRIVATE_KEY)")
    }
    self.configuration = configuration
    self.keyID = JWKIdentifier(string: signingKey.id)
    self.keys = await JWTKeyCollection().add(eddsa: EdDSA.PrivateKey(backing: signingKey.key), kid: self.keyID)
  }

  /// A signed token for `userID`, valid for `lifetime` from `now`, naming its key (`kid`).
  public func issue(
    userID: UUID,
    email: String? = nil,
    roles: [Role],
    permissions: [Permission] = [],
    sessionID: String? = nil,
    lifetime: Duration = .seconds(900),
    now: Date = Date()
  ) async throws -> String {
    let claims = AccessTokenClaims(
      sub: SubjectClaim(value: userID.lowercasedString),
      iss: IssuerClaim(value: self.configuration.issuer),
      aud: AudienceClaim(value: [self.configuration.audience]),
      exp: ExpirationClaim(value: now.addingTimeInterval(Double(lifetime.components.seconds))),
      iat: IssuedAtClaim(value: now),
      nbf: nil,
      email: email,
      roles: roles.map(\.rawValue),
      permissions: permissions.map(\.rawValue),
      sid: sessionID
    )
    return try await self.keys.sign(claims, kid: self.keyID)
  }
}
