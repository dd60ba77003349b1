internal import ArgumentParser
internal import GRPCRuntime
internal import GRPCRuntimeServices
internal import InteropSupport
internal import NIOSSL
internal import PlatformProtos
internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// The interop and benchmark binary: our server and client, for other gRPC implementations to
/// test against and for the load tool.
@main
struct RPCInterop: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rpc-interop",
    abstract: "gRPC interop server and client, and the benchmark echo server.",
    subcommands: [Server.self, Client.self, EchoServer.self]
  )

  struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve grpc.testing.TestService and platform.echo.v1.EchoService.")
    @Option(help: "The port to listen on (loopback).") var port: Int
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain: serve TLS with ALPN h2.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.") var tlsKey: String?

    func run() async throws {
      var configuration = RPCServerConfiguration.defaults { $0.port = self.port }
      if let tlsCert, let tlsKey {
        configuration.tls = TLSConfiguration.makeServerConfiguration(
          certificateChain: try NIOSSLCertificate.fromPEMFile(tlsCert).map { .certificate($0) },
          privateKey: .privateKey(try NIOSSLPrivateKey(file: tlsKey, format: .pem)))
      }
      let services: [any RPCService] = [TestService(), EchoService(), HealthService()]
      let reflection = try ReflectionService(
        descriptorSet: Array(Data(base64Encoded: PlatformDescriptors.fileDescriptorSetBase64) ?? Data()),
        serviceNames: Array(RPCRouter(services: services).serviceNames))
      let server = RPCServer(configuration: configuration, services: services + [reflection])
      try await server.run()
    }
  }

  struct EchoServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "echo-server", abstract: "Serve platform.echo.v1.EchoService for the benchmark.")
    @Option(help: "The port to listen on (loopback).") var port: Int
    @Flag(
      inversion: .prefixedNo,
      help: "Install a chain of three pass-through interceptors, where a service's auth, tracing and metrics sit.")
    var interceptors = true

    func run() async throws {
      let server = RPCServer(
        configuration: .defaults { $0.port = self.port },
        services: [EchoService()],
        interceptors: self.interceptors ? [PassThroughInterceptor(), PassThroughInterceptor(), PassThroughInterceptor()] : [])
      try await server.run()
    }
  }

  struct Client: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one interop test case against a server.")
    @Option(help: "The server's host.") var host = "127.0.0.1"
    @Option(help: "The server's port.") var port: Int
    @Option(name: .customLong("test-case"), help: "One of: \(InteropTestCase.allCases.map(\.rawValue).joined(separator: ", ")).")
    var testCase: String
    @Flag(help: "Connect with TLS.") var tls = false
    @Option(help: "PEM CA certificate to trust (with --tls).") var ca: String?
    @Option(name: .customLong("server-host-override"), help: "The name to verify in the server's certificate.")
    var serverHostOverride: String?

    func run() async throws {
      guard let testCase = InteropTestCase(rawValue: self.testCase) else {
        throw ValidationError("Unknown test case '\(self.testCase)'")
      }
      var configuration = RPCClientConfiguration.defaults(targets: ["\(self.host):\(self.port)"])
      if self.tls {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = self.ca {
          tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
        }
        configuration.tls = tls
        configuration.serverHostname = self.serverHostOverride
      }
      let client = try RPCClient(configuration: configuration)
      do {
        try await testCase.run(using: client)
        await client.close()
        print("PASS \(testCase.rawValue)")
      } catch {
        await client.close()
        print("FAIL \(testCase.rawValue): \(error)")
        throw ExitCode(1)
      }
    }
  }
}

/// An interceptor that only passes the call on: the benchmark's stand-in for the platform's
/// auth, tracing and metrics interceptors, to measure the chain's own cost.
struct PassThroughInterceptor: ServerInterceptor {
  func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    try await next(context)
  }
}
