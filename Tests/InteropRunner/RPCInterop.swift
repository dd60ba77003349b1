internal import ArgumentParser
internal import CMalloc
internal import Dispatch
internal import GRPCRuntime
internal import GRPCRuntimeServices
internal import InteropSupport
internal import NIOSSL
internal import PlatformProtos
internal import SwiftProtobuf
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
    subcommands: [Server.self, Client.self, EchoServer.self, ClientChurn.self, Load.self]
  )

  struct Server: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve grpc.testing.TestService and platform.echo.v1.EchoService.")
    @Option(help: "The port to listen on (loopback).") var port: Int
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain: serve TLS with ALPN h2.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.") var tlsKey: String?

    func run() async throws {
      MallocTuning.applyByReexecuting()  // as the platform's executables do
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
      let heapReport = HeapReport.onSIGUSR1()
      try await server.run()
      heapReport.cancel()
    }
  }

  struct EchoServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "echo-server", abstract: "Serve platform.echo.v1.EchoService for the benchmark.")
    @Option(help: "The port to listen on (loopback).") var port: Int
    @Option(
      help: """
        The interceptor chain: three pass-through interceptors where a service's tracing, metrics and error mapping sit, \
        synchronous (as the platform's are) or async (each an `intercept` frame); or none.
        """)
    var interceptors: InterceptorShape = .synchronous

    enum InterceptorShape: String, ExpressibleByArgument { case synchronous, async, none }

    func run() async throws {
      MallocTuning.applyByReexecuting()  // as the platform's executables do
      let chain: [any ServerInterceptor] =
        switch self.interceptors {
        case .synchronous: [PassThroughInterceptor(), PassThroughInterceptor(), PassThroughInterceptor()]
        case .async: [AsyncPassThroughInterceptor(), AsyncPassThroughInterceptor(), AsyncPassThroughInterceptor()]
        case .none: []
        }
      let server = RPCServer(configuration: .defaults { $0.port = self.port }, services: [EchoService()], interceptors: chain)
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

/// The client side of the connection memory test: one `RPCClient` makes Echo calls one after
/// another against a server that closes every connection, so each call has the pool open a new
/// one. After the warm-up and again at the end it waits for the closed connections to be torn
/// down and prints its own resident memory (`RSS <phase> <KiB> <calls answered> <calls failed>`).
struct ClientChurn: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "client-churn", abstract: "Reconnect again and again; print the client's RSS after a warm-up and at the end.")
  @Option(help: "The server's port (loopback).") var port: Int
  @Option(name: .customLong("warm-up"), help: "Calls before the first measurement.") var warmUp = 2_000
  @Option(help: "Calls between the two measurements.") var calls = 5_000

  func run() async throws {
    // The server ends some connections as they open, which counts as a failed attempt; a short
    // reconnection backoff keeps the test fast (the backoff itself is tested elsewhere).
    let client = try RPCClient(configuration: .defaults(targets: ["127.0.0.1:\(self.port)"]) {
      $0.backoff = .init(initial: .milliseconds(1), multiplier: 1.6, maximum: .milliseconds(2), jitter: 0.2)
    })
    let echo = Platform_Echo_V1_EchoServiceClient(channel: client)
    var answered = 0
    var failed = 0
    for (phase, count) in [("warm-up", self.warmUp), ("end", self.calls)] {
      for _ in 0..<count {
        do {
          _ = try await echo.echo(.with { $0.text = "hello" }, options: CallOptions(timeout: .seconds(5)))
          answered += 1
        } catch {
          failed += 1
          if failed <= 3 { printLine("ERROR \(error)") }
          // Past the reconnection backoff, so that the next call opens a connection.
          try await Task.sleep(for: .milliseconds(3))
        }
      }
      try await Task.sleep(for: .seconds(1))
      printLine("RSS \(phase) \(Self.residentKiB()) \(answered) \(failed)")
    }
    await client.close()
  }

  private static func residentKiB() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return -1 }
    let fields = statm.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return -1 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
  }
}

/// On SIGUSR1 the server hands its free pages back to the system (malloc_trim) and prints
/// `HEAP <bytes>`: what glibc's allocator has handed out and not had back, over every arena
/// (mallinfo2's `uordblks` + `hblkhd`). The connection memory test reads both to tell a leak
/// (live allocations that only grow) from the resident size's steps, which follow the arenas'
/// high-water marks.
enum HeapReport {
  static func onSIGUSR1() -> any DispatchSourceSignal {
    signal(SIGUSR1, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: .global())
    source.setEventHandler {
      malloc_trim(0)
      let info = mallinfo2()
      printLine("HEAP \(info.uordblks + info.hblkhd)")
    }
    source.resume()
    return source
  }
}

/// Writes one line to standard output at once (unbuffered: a reading process sees it now).
func printLine(_ line: String) {
  FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// An interceptor that only passes the call on: the benchmark's stand-in for the platform's
/// tracing, metrics and error mapping, which are synchronous interceptors, to measure the chain's
/// own cost.
struct PassThroughInterceptor: SynchronousServerInterceptor {}

/// The same as an async interceptor (one `intercept` frame each), as authentication is.
struct AsyncPassThroughInterceptor: ServerInterceptor {
  func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    try await next(context)
  }
}
