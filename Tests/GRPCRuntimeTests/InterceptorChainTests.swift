import GRPCRuntime
import GRPCRuntimeServices
import InteropSupport
import PlatformProtos
import SwiftProtobuf
import Synchronization
import Testing

/// What the interceptors of one server did, in order.
final class Journal: Sendable {
  let entries = Mutex<[String]>([])

  func record(_ entry: String) {
    self.entries.withLock { $0.append(entry) }
  }

  /// The entries so far, and a fresh start.
  func take() -> [String] {
    self.entries.withLock { entries in
      defer { entries = [] }
      return entries
    }
  }
}

/// A synchronous interceptor that records its hooks. The call's `x-refuse` metadata names the
/// interceptor that refuses to start, `x-fail-after` the one whose `succeeded` throws; with
/// `replaces`, its `failed` answers UNAVAILABLE instead of the error it sees.
struct RecordingHook: SynchronousServerInterceptor {
  var name: String
  let journal: Journal
  var replaces = false
  /// Methods it leaves alone.
  var skipping: Set<String> = []

  func interceptor(for method: MethodDescriptor) -> (any ServerInterceptor)? {
    if self.skipping.contains(method.method) { return nil }
    var made = self
    made.name = "\(self.name):\(method.method)"
    return made
  }

  func start(context: ServerContext) throws {
    self.journal.record("\(self.name) start")
    if context.requestMetadataStrings(forKey: "x-refuse").contains(self.name) {
      throw RPCError(.permissionDenied, "refused by \(self.name)")
    }
  }

  func succeeded(context: ServerContext) throws {
    self.journal.record("\(self.name) succeeded")
    if context.requestMetadataStrings(forKey: "x-fail-after").contains(self.name) {
      throw RPCError(.dataLoss, "failed after by \(self.name)")
    }
  }

  func failed(context: ServerContext, error: any Error) -> any Error {
    let message = (error as? RPCError)?.message ?? "\(error)"
    self.journal.record("\(self.name) failed: \(message)")
    return self.replaces ? RPCError(.unavailable, "\(message), replaced by \(self.name)") : error
  }
}

/// An async interceptor that records entering and leaving.
struct RecordingWrapper: ServerInterceptor {
  let name: String
  let journal: Journal

  func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    self.journal.record("\(self.name) in")
    do {
      try await next(context)
      self.journal.record("\(self.name) out")
    } catch {
      self.journal.record("\(self.name) out: \((error as? RPCError)?.message ?? "\(error)")")
      throw error
    }
  }
}

@Suite("Interceptor chains")
struct InterceptorChainTests {
  /// A, B (synchronous, run in the call's frame), C (async), D (synchronous, nested in C's
  /// `intercept`), E (synchronous, not on Echo).
  func withChain(_ body: (Platform_Echo_V1_EchoServiceClient, Journal) async throws -> Void) async throws {
    let journal = Journal()
    let interceptors: [any ServerInterceptor] = [
      RecordingHook(name: "A", journal: journal), RecordingHook(name: "B", journal: journal, replaces: true),
      RecordingWrapper(name: "C", journal: journal), RecordingHook(name: "D", journal: journal),
      RecordingHook(name: "E", journal: journal, skipping: ["Echo"]),
    ]
    try await withServer(services: [ProbeService(recorder: Recorder())], interceptors: interceptors) { client, _ in
      try await body(Platform_Echo_V1_EchoServiceClient(channel: client), journal)
    }
  }

  func call(_ echo: Platform_Echo_V1_EchoServiceClient, _ metadata: [String: String] = [:]) async -> RPCError? {
    var options = CallOptions.defaults
    for (key, value) in metadata { options.metadata.addString(value, forKey: key) }
    do {
      _ = try await echo.echo(.with { $0.text = "hi" }, options: options)
      return nil
    } catch let error as RPCError {
      return error
    } catch {
      return RPCError(.unknown, "\(error)")
    }
  }

  @Test("Synchronous interceptors nest as async ones do, each made for its method")
  func nesting() async throws {
    try await withChain { echo, journal in
      #expect(await self.call(echo) == nil)
      #expect(
        journal.take() == [
          "A:Echo start", "B:Echo start", "C in", "D:Echo start", "D:Echo succeeded", "C out", "B:Echo succeeded", "A:Echo succeeded",
        ])

      // E intercepts the other methods.
      let collected = try await echo.collect { requests in try await requests.write(.with { $0.text = "x" }) }
      #expect(collected.text == "1")
      #expect(journal.take().contains("E:Collect succeeded"))
    }
  }

  @Test("A refusal ends the interceptors started before it, innermost first, and no more")
  func refusals() async throws {
    try await withChain { echo, journal in
      let first = await self.call(echo, ["x-refuse": "A:Echo"])
      #expect(first?.code == .permissionDenied && first?.message == "refused by A:Echo")
      #expect(journal.take() == ["A:Echo start"])

      // B replaces what it sees, and A sees B's error.
      let second = await self.call(echo, ["x-refuse": "B:Echo"])
      #expect(second?.code == .permissionDenied)
      #expect(journal.take() == ["A:Echo start", "B:Echo start", "A:Echo failed: refused by B:Echo"])

      let nested = await self.call(echo, ["x-refuse": "D:Echo"])
      #expect(nested?.code == .unavailable && nested?.message == "refused by D:Echo, replaced by B:Echo")
      #expect(
        journal.take() == [
          "A:Echo start", "B:Echo start", "C in", "D:Echo start", "C out: refused by D:Echo", "B:Echo failed: refused by D:Echo",
          "A:Echo failed: refused by D:Echo, replaced by B:Echo",
        ])
    }
  }

  @Test("An interceptor failing a call after it succeeded is seen by those outside it")
  func failingAfterSuccess() async throws {
    try await withChain { echo, journal in
      let afterD = await self.call(echo, ["x-fail-after": "D:Echo"])
      #expect(afterD?.code == .unavailable && afterD?.message == "failed after by D:Echo, replaced by B:Echo")
      #expect(
        journal.take() == [
          "A:Echo start", "B:Echo start", "C in", "D:Echo start", "D:Echo succeeded", "C out: failed after by D:Echo",
          "B:Echo failed: failed after by D:Echo", "A:Echo failed: failed after by D:Echo, replaced by B:Echo",
        ])

      let afterB = await self.call(echo, ["x-fail-after": "B:Echo"])
      #expect(afterB?.code == .dataLoss)
      #expect(
        journal.take() == [
          "A:Echo start", "B:Echo start", "C in", "D:Echo start", "D:Echo succeeded", "C out", "B:Echo succeeded",
          "A:Echo failed: failed after by B:Echo",
        ])
    }
  }
}
