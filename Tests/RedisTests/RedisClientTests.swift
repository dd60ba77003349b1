import Foundation
import Logging
import NIOCore
import NIOSSL
import PlatformTesting
import Synchronization
import Testing

@testable import PlatformRedis

/// The client against real `redis-server` processes, one per test on its own port, so a test
/// can kill and restart its server.
@Suite("Redis client against redis-server")
struct RedisClientTests {
  static let logger = TestPostgres.quietLogger

  func withClient<T>(
    _ server: RedisTestServer, configure: (inout RedisConfiguration) -> Void = { _ in },
    _ body: (RedisClient) async throws -> T
  ) async throws -> T {
    var configuration = try RedisConfiguration(url: server.url)
    configure(&configuration)
    let client = try RedisClient(configuration: configuration, logger: Self.logger)
    do {
      let result = try await body(client)
      await client.close()
      return result
    } catch {
      await client.close()
      throw error
    }
  }

  @Test("typed commands round-trip binary-safe values; server errors are thrown with their prefix")
  func commands() async throws {
    let server = try await RedisTestServer()
    try await self.withClient(server) { redis in
      try await redis.ping()
      let binary = ByteBuffer(bytes: [0, 13, 10, 255, 36, 42])
      #expect(try await redis.set("k", to: .bytes(binary)))
      #expect(try await redis.get("k") == binary)
      #expect(try await redis.get("missing") == nil)
      #expect(try await redis.set("k", to: "new", condition: .ifAbsent) == false)
      #expect(try await redis.set("k2", to: "v", expiration: .seconds(60), condition: .ifAbsent))
      let ttl = try #require(try await redis.timeToLive("k2"))
      #expect(ttl > .seconds(55) && ttl <= .seconds(60))
      #expect(try await redis.increment("n", by: 5) == 5)
      #expect(try await redis.hashSet("h", fields: [("a", "1"), ("b", .integer(2))]) == 2)
      #expect(try await redis.hashGetAll("h") == ["a": ByteBuffer(string: "1"), "b": ByteBuffer(string: "2")])
      #expect(try await redis.exists(["k", "k2", "nope"]) == 2)
      #expect(try await redis.delete(["k", "k2"]) == 2)
      await #expect(throws: RedisError.self) { try await redis.increment("h") }
      do {
        _ = try await redis.increment("h")
      } catch let error as RedisError {
        #expect(error.code == .server && error.serverErrorPrefix == "WRONGTYPE")
      }
    }
  }

  @Test("10,000 concurrent commands on one connection each get their own reply")
  func pipelining() async throws {
    let server = try await RedisTestServer()
    try await self.withClient(server, configure: { $0.poolSize = 1 }) { redis in
      try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<10_000 {
          group.addTask {
            let reply = try await redis.send(RedisCommand("ECHO", .string("reply-\(index)")))
            #expect(reply.string == "reply-\(index)")
          }
        }
        try await group.waitForAll()
      }
      let replies = try await redis.pipeline((0..<1000).map { RedisCommand("INCR", .string("counter-\($0 % 7)")) })
      #expect(replies.count == 1000)
      // Each counter's replies count up 1, 2, 3, … in the order the commands were sent.
      var expected = [Int64](repeating: 0, count: 7)
      for (index, reply) in replies.enumerated() {
        expected[index % 7] += 1
        #expect(reply == .integer(expected[index % 7]))
      }
      let mixed = try await redis.pipeline([RedisCommand("SET", "s", "v"), RedisCommand("INCR", "s"), RedisCommand("GET", "s")])
      #expect(mixed[0] == .simpleString("OK"))
      #expect(mixed[1].isError)
      #expect(mixed[2].string == "v")
    }
  }

  @Test("a server killed and restarted mid-pipeline: commands fail or succeed, never get another command's reply")
  func killMidPipeline() async throws {
    let server = try await RedisTestServer()
    try await self.withClient(server, configure: { $0.reconnectBackoff = (.milliseconds(20), .milliseconds(200)) }) { redis in
      let counters = Counters()
      try await withThrowingTaskGroup(of: Void.self) { group in
        for worker in 0..<32 {
          group.addTask {
            var sequence = 0
            while !counters.stop.load(ordering: .relaxed) {
              sequence += 1
              let text = "\(worker)-\(sequence)-" + String(repeating: "x", count: sequence % 300)
              do {
                let batch = try await redis.pipeline([RedisCommand("ECHO", .string(text)), RedisCommand("ECHO", .string(text + "!"))])
                if batch[0].string == text && batch[1].string == text + "!" {
                  counters.succeeded.add(1, ordering: .relaxed)
                } else {
                  counters.mismatched.add(1, ordering: .relaxed)
                }
                let single = try await redis.send(RedisCommand("ECHO", .string(text)))
                if single.string != text { counters.mismatched.add(1, ordering: .relaxed) }
              } catch is RedisError {
                counters.failed.add(1, ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(1))
              }
            }
          }
        }
        let warmUp = ContinuousClock.now + .seconds(5)
        while counters.succeeded.load(ordering: .relaxed) < 200 && ContinuousClock.now < warmUp {
          try await Task.sleep(for: .milliseconds(10))
        }
        let before = counters.succeeded.load(ordering: .relaxed)
        server.kill()
        try await Task.sleep(for: .milliseconds(200))
        try await server.restart()
        // The client reconnects by itself once its backoff allows.
        let deadline = ContinuousClock.now + .seconds(5)
        let afterRestart = counters.succeeded.load(ordering: .relaxed)
        while counters.succeeded.load(ordering: .relaxed) < afterRestart + 1000 && ContinuousClock.now < deadline {
          try await Task.sleep(for: .milliseconds(20))
        }
        counters.stop.store(true, ordering: .relaxed)
        try await group.waitForAll()
        #expect(before >= 200)
        #expect(counters.succeeded.load(ordering: .relaxed) >= afterRestart + 1000, "did not recover after the restart")
      }
      #expect(counters.failed.load(ordering: .relaxed) > 0, "the kill should have failed some commands")
      #expect(counters.mismatched.load(ordering: .relaxed) == 0)
    }
  }

  @Test("a command without a reply in time fails with timeout; the next command works")
  func timeout() async throws {
    let server = try await RedisTestServer()
    try await self.withClient(server, configure: { $0.commandTimeout = .milliseconds(200); $0.poolSize = 1 }) { redis in
      try await redis.ping()
      let start = ContinuousClock.now
      do {
        _ = try await redis.send(RedisCommand("DEBUG", "SLEEP", "1"))
        Issue.record("DEBUG SLEEP 1 answered within a 200 ms timeout")
      } catch let error as RedisError {
        #expect(error.code == .timeout)
      }
      // Well before DEBUG SLEEP 1 would have answered (then the call would have succeeded).
      #expect(ContinuousClock.now - start < .milliseconds(950))
      try await Task.sleep(for: .seconds(1))
      try await redis.ping()
    }
  }

  @Test("while Redis is down commands fail fast with unavailable; when it is back they work again")
  func outage() async throws {
    let server = try await RedisTestServer()
    try await self.withClient(server, configure: { $0.reconnectBackoff = (.milliseconds(50), .milliseconds(300)) }) { redis in
      try await redis.set("a", to: "1")
      server.kill()
      // The first commands find their connections closed, then cannot reconnect.
      await #expect(throws: RedisError.self) { try await redis.get("a") }
      for _ in 0..<50 where redis.isReachable {
        _ = try? await redis.get("a")
        try await Task.sleep(for: .milliseconds(10))
      }
      #expect(!redis.isReachable)
      let start = ContinuousClock.now
      for _ in 0..<1000 {
        do {
          _ = try await redis.get("a")
        } catch let error as RedisError {
          #expect(error.code == .unavailable)
        }
      }
      #expect(ContinuousClock.now - start < .milliseconds(500), "commands waited during the outage")
      try await server.start()
      let deadline = ContinuousClock.now + .seconds(3)
      var back = false
      while !back && ContinuousClock.now < deadline {
        back = (try? await redis.set("a", to: "2")) == true
        if !back { try await Task.sleep(for: .milliseconds(20)) }
      }
      #expect(back)
      #expect(redis.isReachable)
    }
  }

  @Test("ACL user, password and database number from the URL; a wrong password is refused without echoing it")
  func authentication() async throws {
    let server = try await RedisTestServer(configuration: [
      "user default off", "user app on >app-secret ~* &* +@all",
    ])
    var configuration = try RedisConfiguration(url: "redis://app:app-secret@127.0.0.1:\(server.port)/3")
    let inThree = try RedisClient(configuration: configuration, logger: Self.logger)
    try await inThree.set("where", to: "three")
    configuration.database = 0
    let inZero = try RedisClient(configuration: configuration, logger: Self.logger)
    #expect(try await inZero.get("where") == nil)
    #expect(try await inThree.get("where") == ByteBuffer(string: "three"))
    await inThree.close()
    await inZero.close()

    let wrong = try RedisClient(
      configuration: RedisConfiguration(url: "redis://app:not-the-secret@127.0.0.1:\(server.port)"), logger: Self.logger)
    do {
      try await wrong.ping()
      Issue.record("a wrong password was accepted")
    } catch let error as RedisError {
      #expect(error.code == .unavailable)
      #expect(error.message.contains("WRONGPASS"))
      #expect(!error.message.contains("not-the-secret"))
    }
    await wrong.close()
    let none = try RedisClient(configuration: RedisConfiguration(url: server.url), logger: Self.logger)
    await #expect(throws: RedisError.self) { try await none.ping() }
    await none.close()
  }

  @Test("EVALSHA loads the script when the server does not know it (NOSCRIPT)")
  func scripts() async throws {
    let server = try await RedisTestServer()
    try await self.withClient(server) { redis in
      let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
      #expect(script.sha1.count == 40)
      #expect(try await redis.evaluate(script, keys: ["s"], arguments: [.integer(3)]) == .integer(3))
      _ = try await redis.send(RedisCommand("SCRIPT", "FLUSH"))
      #expect(try await redis.evaluate(script, keys: ["s"], arguments: [.integer(4)]) == .integer(7))
      let failing = RedisScript("return redis.error_reply('BOOM broken')")
      do {
        _ = try await redis.evaluate(failing)
        Issue.record("a script error was not thrown")
      } catch let error as RedisError {
        #expect(error.serverErrorPrefix == "BOOM")
      }
    }
  }

  @Test("a reply over the size cap closes its connection with a protocol error; the client goes on")
  func replyCap() async throws {
    let server = try await RedisTestServer()
    try await self.withClient(server, configure: { $0.maxReplyBytes = 4096; $0.poolSize = 1 }) { redis in
      try await redis.set("big", to: .string(String(repeating: "b", count: 5000)))
      try await redis.set("small", to: .string(String(repeating: "s", count: 4000)))
      do {
        _ = try await redis.get("big")
        Issue.record("a 5,000-byte reply passed a 4,096-byte cap")
      } catch let error as RedisError {
        #expect(error.code == .protocolViolation)
      }
      #expect(try await redis.get("small")?.readableBytes == 4000)
    }
  }

  @Test("pub/sub: messages arrive; after a restart the subscription is made again and says so")
  func publishSubscribe() async throws {
    let server = try await RedisTestServer()
    try await self.withClient(server, configure: { $0.reconnectBackoff = (.milliseconds(20), .milliseconds(200)) }) { redis in
      let (events, continuation) = AsyncStream.makeStream(of: RedisSubscriberEvent.self)
      let subscriber = Task {
        try await redis.subscribe(to: ["news", "sport"]) { event in continuation.yield(event) }
      }
      defer { subscriber.cancel() }
      var iterator = events.makeAsyncIterator()
      #expect(await iterator.next() == .subscribed)
      #expect(try await redis.publish("hello", to: "news") == 1)
      #expect(await iterator.next() == .message(channel: "news", payload: ByteBuffer(string: "hello")))
      try await redis.publish(.bytes(ByteBuffer(bytes: [0, 1, 2])), to: "sport")
      #expect(await iterator.next() == .message(channel: "sport", payload: ByteBuffer(bytes: [0, 1, 2])))

      try await server.restart()
      #expect(await iterator.next() == .subscribed)
      let deadline = ContinuousClock.now + .seconds(3)
      var delivered = 0
      while delivered == 0 && ContinuousClock.now < deadline {
        delivered = (try? await redis.publish("again", to: "news")) ?? 0
        if delivered == 0 { try await Task.sleep(for: .milliseconds(20)) }
      }
      #expect(delivered == 1)
      #expect(await iterator.next() == .message(channel: "news", payload: ByteBuffer(string: "again")))
      subscriber.cancel()
      await #expect(throws: CancellationError.self) { try await subscriber.value }
    }
  }

  @Test("a subscriber that falls behind by more than 32 MiB is resubscribed (and told so) instead of buffering without bound")
  func subscriberBacklog() async throws {
    // Redis's own limit on a subscriber's output buffer is lifted: only the client's applies.
    let server = try await RedisTestServer(configuration: ["client-output-buffer-limit pubsub 0 0 0"])
    try await self.withClient(server) { redis in
      let (events, continuation) = AsyncStream.makeStream(of: String.self)
      let gate = AsyncStream.makeStream(of: Void.self)
      let stalled = Atomic(false)
      let subscriber = Task {
        try await redis.subscribe(to: ["firehose"]) { event in
          switch event {
          case .subscribed:
            continuation.yield("subscribed")
          case .message:
            if !stalled.exchange(true, ordering: .relaxed) {
              for await _ in gate.stream { break }  // stalls until the flood is over
            }
          }
        }
      }
      defer { subscriber.cancel() }
      var iterator = events.makeAsyncIterator()
      #expect(await iterator.next() == "subscribed")
      let megabyte = ByteBuffer(repeating: 0x61, count: 1 << 20)
      for _ in 0..<48 { try await redis.publish(.bytes(megabyte), to: "firehose") }
      // The client drops the subscription once what it holds passes 32 MiB (Redis then counts
      // no subscriber), while the handler is still stalled.
      var dropped = false
      for _ in 0..<500 where !dropped {
        let counts = try await redis.send(RedisCommand("PUBSUB", "NUMSUB", "firehose"))
        dropped = counts.elements?.last?.integer == 0
        if !dropped { try await Task.sleep(for: .milliseconds(20)) }
      }
      #expect(dropped, "the subscriber kept buffering past its byte limit")
      gate.continuation.yield()
      let deadline = Task {
        try await Task.sleep(for: .seconds(10))
        continuation.yield("no resubscription within 10 s")
      }
      defer { deadline.cancel() }
      #expect(await iterator.next() == "subscribed", "the subscription was not made again")
    }
  }

  @Test("rediss:// with the server's CA; without it the certificate is refused")
  func tls() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-tls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let certificate = directory.appendingPathComponent("cert.pem").path
    let key = directory.appendingPathComponent("key.pem").path
    let openssl = Process()
    openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    openssl.arguments = [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout", key, "-out", certificate,
    ]
    openssl.standardError = FileHandle.nullDevice
    try openssl.run()
    openssl.waitUntilExit()
    try #require(openssl.terminationStatus == 0)
    let server = try await RedisTestServer(tls: (certificate, key, certificate))
    let tlsPort = try #require(server.tlsPort)

    var configuration = try RedisConfiguration(url: "rediss://localhost:\(tlsPort)")
    configuration.tls?.trustRoots = .file(certificate)
    let trusted = try RedisClient(configuration: configuration, logger: Self.logger)
    try await trusted.set("secure", to: "yes")
    #expect(try await trusted.get("secure") == ByteBuffer(string: "yes"))
    await trusted.close()

    let untrusted = try RedisClient(configuration: RedisConfiguration(url: "rediss://localhost:\(tlsPort)"), logger: Self.logger)
    do {
      try await untrusted.ping()
      Issue.record("a self-signed certificate was trusted")
    } catch let error as RedisError {
      #expect(error.code == .unavailable)
    }
    await untrusted.close()
  }
}

final class Counters: Sendable {
  let stop = Atomic(false)
  let succeeded = Atomic(0)
  let failed = Atomic(0)
  let mismatched = Atomic(0)
}

extension RESPValue {
  var isError: Bool {
    if case .error = self { return true }
    return false
  }
}
