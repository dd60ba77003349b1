internal import Foundation
internal import NIOSSL
public import PlatformRedis

extension RedisConfiguration {
  /// Reads Redis settings: `REDIS_URL` (default redis://127.0.0.1:6379), `REDIS_POOL_SIZE` (2),
  /// `REDIS_COMMAND_TIMEOUT_SECONDS` (1), `REDIS_CONNECT_TIMEOUT_SECONDS` (1),
  /// `REDIS_MAX_REPLY_BYTES` (16 MiB) and `REDIS_TLS_CA_FILE` (PEM roots for `rediss://`;
  /// default the system's).
  /// - Throws: `Environment.InvalidValue` naming the first malformed variable (never echoing a
  ///   password).
  public init(environment: Environment) throws {
    let url = environment.string("REDIS_URL", default: "redis://127.0.0.1:6379")
    do {
      try self.init(url: url)
    } catch let error as RedisConfiguration.InvalidURL {
      throw Environment.InvalidValue(variable: "REDIS_URL", value: error.url, expected: error.expected)
    }
    self.poolSize = try environment.int("REDIS_POOL_SIZE", default: 2, range: 1...64)
    self.commandTimeout = try environment.seconds("REDIS_COMMAND_TIMEOUT_SECONDS", default: .seconds(1))
    self.connectTimeout = try environment.seconds("REDIS_CONNECT_TIMEOUT_SECONDS", default: .seconds(1))
    for (name, value) in [("REDIS_COMMAND_TIMEOUT_SECONDS", self.commandTimeout), ("REDIS_CONNECT_TIMEOUT_SECONDS", self.connectTimeout)]
    where value < .milliseconds(1) {
      throw Environment.InvalidValue(variable: name, value: "\(value)", expected: "at least 0.001 seconds")
    }
    self.maxReplyBytes = try environment.int(
      "REDIS_MAX_REPLY_BYTES", default: 16 * 1024 * 1024, range: 1024...(512 * 1024 * 1024))
    if let caFile = environment["REDIS_TLS_CA_FILE"] {
      guard var tls = self.tls else {
        throw Environment.InvalidValue(variable: "REDIS_TLS_CA_FILE", value: caFile, expected: "a rediss:// REDIS_URL")
      }
      guard FileManager.default.isReadableFile(atPath: caFile) else {
        throw Environment.InvalidValue(variable: "REDIS_TLS_CA_FILE", value: caFile, expected: "a readable PEM file")
      }
      tls.trustRoots = .file(caFile)
      self.tls = tls
    }
  }
}
