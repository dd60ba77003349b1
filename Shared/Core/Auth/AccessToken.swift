public import Foundation
internal import JWTKit
internal import Synchronization

/// The claims of the platform's access tokens (HS256 JWTs the agent service issues).
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

  /// Claims are checked by `TokenVerifier`, which knows the configured issuer, audience and
  /// leeway; the signature check alone happens here.
  func verify(using algorithm: some JWTAlgorithm) async throws {}
}

extension AuthConfiguration {
  /// The HS256 key of `secret`, the one key tokens are signed and verified with.
  func signingKeys() async -> JWTKeyCollection {
    await JWTKeyCollection().add(hmac: HMACKey(from: self.secret), digestAlgorithm: .sha256)
  }
}

/// Why a bearer token was refused. The message is safe to show the caller.
public enum TokenError: Error, Equatable, Sendable, CustomStringConvertible {
  case missing
  case malformed
  case unsupportedAlgorithm(String)
  case badSignature
  case expired
  case notYetValid
  case wrongIssuer
  case wrongAudience
  case invalidSubject

  public var description: String {
    switch self {
    case .missing: "The call needs `authorization: Bearer <token>`"
    case .malformed: "The bearer token is not a well-formed JWT"
    case .unsupportedAlgorithm(let alg): "The token's algorithm \(alg.isEmpty ? "(none)" : alg) is not accepted; tokens are HS256"
    case .badSignature: "The token's signature is invalid"
    case .expired: "The token has expired"
    case .notYetValid: "The token is not valid yet"
    case .wrongIssuer: "The token's issuer is not accepted"
    case .wrongAudience: "The token's audience is not accepted"
    case .invalidSubject: "The token's subject is not a user id"
    }
  }
}

/// Verifies access tokens locally: HS256 signature with the shared secret, then issuer, audience,
/// expiry and not-before (with leeway). Any other algorithm, `none` included, is refused before
/// the signature is looked at.
///
/// A client sends the same token on every call until it expires, and checking its signature and
/// decoding its claims cost more CPU than the rest of a cached read; so tokens that passed are
/// remembered (up to `cacheCapacity`) and a repeat only has its expiry and not-before checked
/// again. A token is remembered by its whole text, signature included.
public struct TokenVerifier: Sendable {
  private let keys: JWTKeyCollection
  private let configuration: AuthConfiguration
  private let verified: VerifiedTokens

  public init(configuration: AuthConfiguration, cacheCapacity: Int = 10_000) async {
    self.configuration = configuration
    self.keys = await configuration.signingKeys()
    self.verified = VerifiedTokens(capacity: cacheCapacity)
  }

  /// - Returns: the caller the token stands for.
  /// - Throws: `TokenError`.
  public func verify(_ token: String, now: Date = Date()) async throws(TokenError) -> Caller {
    if let known = self.verified[token] {
      try self.checkValidity(expiresAt: known.expiresAt, notBefore: known.notBefore, now: now)
      return known.caller
    }
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, let header = Self.decodeJSONObject(parts[0]) else { throw .malformed }
    let algorithm = header["alg"] as? String ?? ""
    // The name goes back to the caller in the status message: keep it short.
    guard algorithm == "HS256" else { throw .unsupportedAlgorithm(String(algorithm.prefix(16))) }

    let claims: AccessTokenClaims
    do {
      claims = try await self.keys.verify(token, as: AccessTokenClaims.self)
    } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
      throw .badSignature
    } catch {
      throw .malformed
    }
    try self.checkValidity(expiresAt: claims.exp.value, notBefore: claims.nbf?.value, now: now)
    guard claims.iss.value == self.configuration.issuer else { throw .wrongIssuer }
    guard claims.aud.value.contains(self.configuration.audience) else { throw .wrongAudience }
    guard let userID = UUID(uuidString: claims.sub.value) else { throw .invalidSubject }
    let caller = Caller(
      userID: userID,
      email: claims.email,
      roles: (claims.roles ?? []).compactMap(Role.init(storedName:)),
      extraPermissions: (claims.permissions ?? []).map(Permission.init(rawValue:))
    )
    self.verified[token] = VerifiedTokens.Entry(caller: caller, expiresAt: claims.exp.value, notBefore: claims.nbf?.value)
    return caller
  }

  private func checkValidity(expiresAt: Date, notBefore: Date?, now: Date) throws(TokenError) {
    let leeway = Double(self.configuration.leeway.components.seconds)
    guard expiresAt.timeIntervalSince(now) > -leeway else { throw .expired }
    if let notBefore, notBefore.timeIntervalSince(now) > leeway { throw .notYetValid }
  }

  private static func decodeJSONObject(_ part: Substring) -> [String: Any]? {
    var base64 = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
    guard let data = Data(base64Encoded: base64) else { return nil }
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
  }
}

/// The tokens a `TokenVerifier` accepted, by their text. When full it starts afresh: a working
/// set of live tokens refills it in one round of calls, and no entry outlives its usefulness.
final class VerifiedTokens: Sendable {
  struct Entry: Sendable {
    var caller: Caller
    var expiresAt: Date
    var notBefore: Date?
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

/// Issues access tokens with the shared secret: the agent service's login, and tests.
public struct TokenIssuer: Sendable {
  private let keys: JWTKeyCollection
  private let configuration: AuthConfiguration

  public init(configuration: AuthConfiguration) async {
    self.configuration = configuration
    self.keys = await configuration.signingKeys()
  }

  /// A signed token for `userID`, valid for `lifetime` from `now`.
  public func issue(
    userID: UUID,
    email: String? = nil,
    roles: [Role],
    permissions: [Permission] = [],
    lifetime: Duration = .seconds(900),
    now: Date = Date()
  ) async throws -> String {
    let claims = AccessTokenClaims(
      sub: SubjectClaim(value: userID.uuidString.lowercased()),
      iss: IssuerClaim(value: self.configuration.issuer),
      aud: AudienceClaim(value: [self.configuration.audience]),
      exp: ExpirationClaim(value: now.addingTimeInterval(Double(lifetime.components.seconds))),
      iat: IssuedAtClaim(value: now),
      nbf: nil,
      email: email,
      roles: roles.map(\.rawValue),
      permissions: permissions.map(\.rawValue)
    )
    return try await self.keys.sign(claims)
  }
}
