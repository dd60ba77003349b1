import GRPCRuntime
import InteropSupport
import Testing

@Suite("Interop cases against our own server")
struct InteropTests {
  @Test("Interop case", arguments: InteropTestCase.allCases)
  func interop(_ testCase: InteropTestCase) async throws {
    try await withServer { client, _ in
      try await testCase.run(using: client)
    }
  }

  @Test("Interop cases over TLS with ALPN h2")
  func tls() async throws {
    let certificate = try TestCertificate.make()
    try await withServer(configure: { $0.tls = certificate.serverConfiguration }) { _, port in
      let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(port)"]) {
        $0.tls = certificate.clientConfiguration
        $0.serverHostname = "localhost"
      })
      defer { Task { await client.close() } }
      for testCase in [InteropTestCase.largeUnary, .pingPong, .customMetadata, .echo] {
        try await testCase.run(using: client)
      }
    }
  }

  @Test("A TLS client checks the certificate against the target's own host name")
  func tlsHostnameFromTarget() async throws {
    // Without an IP address in the certificate, only the name can match.
    let certificate = try TestCertificate.make(ipAddress: false)
    try await withServer(configure: { $0.tls = certificate.serverConfiguration }) { _, port in
      // No serverHostname override: "localhost" from the target is verified and sent as SNI.
      let client = try RPCClient(configuration: .defaults(targets: ["localhost:\(port)"]) {
        $0.tls = certificate.clientConfiguration
        $0.backoff.initial = .milliseconds(50)
      })
      defer { Task { await client.close() } }
      try await InteropTestCase.emptyUnary.run(using: client)
      // A name the certificate does not hold is refused.
      let wrongName = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(port)"]) {
        $0.tls = certificate.clientConfiguration
        $0.serverHostname = "example.com"
      })
      defer { Task { await wrongName.close() } }
      await #expect(throws: RPCError.self) { try await InteropTestCase.emptyUnary.run(using: wrongName) }
    }
  }
}
