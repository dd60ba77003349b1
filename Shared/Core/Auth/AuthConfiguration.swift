/// How the services verify bearer tokens: HS256 with a shared secret, a fixed issuer and
/// audience.
public struct AuthConfiguration: Sendable {
  /// The HS256 secret (`JWT_SECRET`).
  public var secret: String
  /// The expected `iss` (`JWT_ISSUER`, default `platform`).
  public var issuer: String
  /// The expected `aud` (`JWT_AUDIENCE`, default `platform`).
  public var audience: String
  /// Allowed clock difference for `exp`, `nbf` and `iat` (`JWT_LEEWAY_SECONDS`, default 30).
  public var leeway: Duration

  /// The secret used when `JWT_SECRET` is unset: fine on a laptop, never in production (the
  /// service logs a warning at start).
  public static let developmentSecret = "development-secret-do-not-use-in-production"

  public var usesDevelopmentSecret: Bool { self.secret == Self.developmentSecret }

  public init(secret: String, issuer: String = "platform", audience: String = "platform", leeway: Duration = .seconds(30)) {
    self.secret = secret
    self.issuer = issuer
    self.audience = audience
    self.leeway = leeway
  }

  init(environment: Environment) throws {
    let secret = environment.string("JWT_SECRET", default: Self.developmentSecret)
    guard secret.utf8.count >= 32 else {
      throw Environment.InvalidValue(variable: "JWT_SECRET", value: "<\(secret.utf8.count) bytes>", expected: "at least 32 bytes (HS256 keys are as long as the hash)")
    }
    self.init(
      secret: secret,
      issuer: environment.string("JWT_ISSUER", default: "platform"),
      audience: environment.string("JWT_AUDIENCE", default: "platform"),
      leeway: try environment.seconds("JWT_LEEWAY_SECONDS", default: .seconds(30))
    )
  }
}
