internal import Crypto

/// A Lua script run by its SHA-1 (`EVALSHA`), loaded into the server when the server does not
/// know it (after a restart or `SCRIPT FLUSH`).
public struct RedisScript: Sendable, Hashable {
  public let source: String
  /// The SHA-1 of the source, in lowercase hex: the name Redis knows the script by.
  public let sha1: String

  public init(_ source: String) {
    self.source = source
    self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
      let hex = String(byte, radix: 16)
      return byte < 16 ? "0" + hex : hex
    }.joined()
  }
}

extension RedisClient {
  /// Runs `script` with `keys` and `arguments` (`EVALSHA`); when Redis answers `NOSCRIPT` the
  /// script is loaded (`SCRIPT LOAD`) and run again.
  /// - Throws: `RedisError.Code.server` for an error the script raised.
  public func evaluate(
    _ script: RedisScript, keys: [String] = [], arguments: [RedisArgument] = []
  ) async throws -> RESPValue {
    let command = RedisCommand(
      "EVALSHA", [.string(script.sha1), .integer(Int64(keys.count))] + keys.map { .string($0) } + arguments)
    do {
      return try await self.send(command)
    } catch let error as RedisError where error.serverErrorPrefix == "NOSCRIPT" {
      let loaded = try await self.send(RedisCommand("SCRIPT", "LOAD", .string(script.source)))
      guard loaded.string == script.sha1 else {
        throw RedisError(.unexpectedReply, "SCRIPT LOAD answered with another SHA-1 than the script's")
      }
      return try await self.send(command)
    }
  }
}
