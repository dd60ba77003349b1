import Foundation
import NIOCore
import Testing
@testable import PlatformCore

@Suite("Egress policy and sealed secrets")
struct EgressAndSecretsTests {
  @Test("Special-use addresses are refused, public ones allowed, CIDR and host rules override; mapped IPv4 is IPv4")
  func egress() async throws {
    let policy = try EgressPolicy(parsing: "", variable: "TEST_ALLOWED_HOSTS")
    for address in [
      "127.0.0.1", "127.255.0.9", "10.0.0.1", "172.16.5.5", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
      "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd12::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
      "::127.0.0.1", "64:ff9b::a00:1", "2002:a00:1::",
    ] {
      await #expect(throws: EgressPolicy.Refusal.self, "\(address)") { _ = try await policy.resolve(host: address, port: 5432) }
    }
    for address in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "[2606:4700::1111]"] {
      let resolved = try await policy.resolve(host: address, port: 5432)
      #expect(resolved.port == 5432, "\(address)")
    }
    // Names resolve first: localhost is loopback.
    await #expect(throws: EgressPolicy.Refusal.self) { _ = try await policy.resolve(host: "localhost", port: 80) }
    await #expect(throws: EgressPolicy.Refusal.unresolved("no-such-host.invalid")) {
      _ = try await policy.resolve(host: "no-such-host.invalid", port: 80)
    }
    let allowing = try EgressPolicy(parsing: "127.0.0.0/8, db.internal, fd00::/8", variable: "TEST_ALLOWED_HOSTS")
    #expect(try await allowing.resolve(host: "127.0.0.1", port: 5432).ipAddress == "127.0.0.1")
    #expect(try await allowing.resolve(host: "fd12::1", port: 5432).port == 5432)
    await #expect(throws: EgressPolicy.Refusal.self) { _ = try await allowing.resolve(host: "10.0.0.1", port: 5432) }
    #expect(throws: Environment.InvalidValue.self) { _ = try EgressPolicy(parsing: "10.0.0.0/33", variable: "X") }
    #expect(throws: Environment.InvalidValue.self) { _ = try EgressPolicy(parsing: "a b", variable: "X") }
    // The protected endpoint is refused on its port even when public.
    let protected = EgressPolicy(rules: [], protectedEndpoints: [try SocketAddress(ipAddress: "8.8.8.8", port: 5432)], variable: "X")
    await #expect(throws: EgressPolicy.Refusal.self) { _ = try await protected.resolve(host: "8.8.8.8", port: 5432) }
    #expect(try await protected.resolve(host: "8.8.8.8", port: 5433).port == 5433)
  }

  @Test("A sealed secret opens only with its key and its row; rotation keeps old rows readable")
  func secrets() throws {
    let old = Data(repeating: 1, count: 32).base64EncodedString()
    let new = Data(repeating: 2, count: 32).base64EncodedString()
    let box = try SecretBox(parsing: "k1:\(old)", variable: "KEY")
    let sealed = try box.seal(Array("secret".utf8), context: "row-1")
    #expect(try box.open(sealed.sealed, keyID: "k1", context: "row-1") == Array("secret".utf8))
    #expect(throws: SecretBox.Failure.unauthentic) { _ = try box.open(sealed.sealed, keyID: "k1", context: "row-2") }
    var bytes = Array(Data(base64Encoded: sealed.sealed)!)
    bytes[14] ^= 0x80
    #expect(throws: SecretBox.Failure.unauthentic) { _ = try box.open(Data(bytes).base64EncodedString(), keyID: "k1", context: "row-1") }
    #expect(throws: SecretBox.Failure.unknownKey("k9")) { _ = try box.open(sealed.sealed, keyID: "k9", context: "row-1") }
    let rotated = try SecretBox(parsing: "k2:\(new), k1:\(old)", variable: "KEY")
    #expect(try rotated.open(sealed.sealed, keyID: "k1", context: "row-1") == Array("secret".utf8))
    #expect(try rotated.seal([1], context: "x").keyID == "k2" && rotated.isStale("k1"))
    #expect(throws: Environment.InvalidValue.self) { _ = try SecretBox(parsing: "short", variable: "KEY") }
    #expect(throws: Environment.InvalidValue.self) { _ = try SecretBox(parsing: "", variable: "KEY") }
    #expect(throws: Environment.InvalidValue.self) { _ = try SecretBox(parsing: "a:\(old),a:\(new)", variable: "KEY") }
  }
}
