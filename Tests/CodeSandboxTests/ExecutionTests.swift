import CodeSandbox
import Foundation
import GRPCRuntime
import GRPCRuntimeServices
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing

typealias Client = Platform_Codesandbox_V1_CodeSandboxServiceClient

/// The code-sandbox service over real gRPC against a fresh database; `body` gets a client and a
/// developer's call options.
func withSandbox<T: Sendable>(
  _ settings: [String: String] = [:], _ body: (PlatformTestService, Client, CallOptions) async throws -> T
) async throws -> T {
  // Slot uids of this instance's own: RLIMIT_NPROC counts a uid's processes and threads across
  // the suite's concurrent services.
  let uidBase = 62_000 + 16 * Int.random(in: 0..<10_000)
  return try await PlatformTestService.run(
    CodeSandboxService(), configure: { $0.environment = Environment(["SANDBOX_UID_BASE": "\(uidBase)"].merging(settings) { $1 }) }
  ) { service in
    try await body(service, Client(channel: service.client), try await service.options(for: UUID()))
  }
}

func run(
  _ client: Client, _ options: CallOptions, _ language: Platform_Codesandbox_V1_Language, _ code: String,
  _ configure: (inout Platform_Codesandbox_V1_ExecuteCodeRequest) -> Void = { _ in }
) async throws -> Platform_Codesandbox_V1_CodeExecution {
  var request = Platform_Codesandbox_V1_ExecuteCodeRequest.with {
    $0.language = language
    $0.code = code
  }
  configure(&request)
  return try await client.executeCode(request, options: options)
}

@Suite("Code sandbox: running programs")
struct ExecutionTests {
  @Test("Each language prints, reads stdin, exits non-zero and throws")
  func languages() async throws {
    try await withSandbox { _, client, options in
      let cases: [(Platform_Codesandbox_V1_Language, String, String)] = [
        (.python, "import sys\nprint('hello', sys.stdin.read().strip())", "import sys\nsys.exit(3)"),
        (.javascript, "const s = require('fs').readFileSync(0, 'utf8').trim(); console.log('hello', s)", "process.exit(3)"),
        (.typescript, "const s: string = require('fs').readFileSync(0, 'utf8').trim(); console.log('hello', s)", "process.exit(3)"),
      ]
      for (language, echo, exit) in cases {
        let printed = try await run(client, options, language, echo) { $0.stdin = "world\n" }
        #expect(printed.status == .completed && printed.stdout == "hello world\n" && printed.exitCode == 0, "\(language): \(printed)")
        #expect(printed.terminationReason == .exited && printed.securityScore == 100)
        let exited = try await run(client, options, language, exit)
        #expect(exited.status == .failed && exited.exitCode == 3 && exited.terminationReason == .exited, "\(language): \(exited)")
      }
      let raised = try await run(client, options, .python, "raise ValueError('boom')")
      #expect(raised.status == .failed && raised.exitCode == 1 && raised.stderr.contains("ValueError: boom"))
      let thrown = try await run(client, options, .javascript, "throw new Error('boom')")
      #expect(thrown.status == .failed && thrown.exitCode == 1 && thrown.stderr.contains("Error: boom"))
      let thrownTyped = try await run(client, options, .typescript, "const n: number = 1\nthrow new TypeError(`boom ${n}`)")
      #expect(thrownTyped.status == .failed && thrownTyped.exitCode == 1 && thrownTyped.stderr.contains("TypeError: boom 1"), "\(thrownTyped)")
      // stderr has its own cap and flag; a quiet stdout is not truncated.
      let noisy = try await run(client, options, .python, "import sys\nfor _ in range(100): sys.stderr.write('e' * 1000)") {
        $0.limits.maxOutputBytes = 10_000
      }
      #expect(noisy.stderrTruncated && !noisy.stdoutTruncated && noisy.stderr.utf8.count <= 10_000, "\(noisy)")
    }
  }
}

@Suite("Code sandbox: files, TypeScript, libraries, streaming")
struct FeatureTests {
  @Test("Input files are in the working directory; files written under outputs/ come back, stored, with a content type")
  func files() async throws {
    try await withSandbox { _, client, options in
      let code = """
        import pandas as pd, numpy as np, matplotlib.pyplot as plt, os
        frame = pd.read_csv('data.csv')
        print(int(np.sum(frame['x'])))
        plt.plot(frame['x'], frame['y'])
        plt.savefig('outputs/plot.png')
        os.makedirs('outputs/tables', exist_ok=True)
        frame.to_csv('outputs/tables/copy.csv', index=False)
        """
      let execution = try await run(client, options, .python, code) {
        $0.files = [.with {
          $0.name = "data.csv"
          $0.content = Data("x,y\n1,2\n2,4\n3,9\n".utf8)
        }]
        $0.limits.timeoutMs = 30_000
      }
      #expect(execution.status == .completed && execution.stdout == "6\n", "\(execution.stderr)")
      #expect(execution.outputs.map(\.name) == ["plot.png", "tables/copy.csv"])
      #expect(execution.outputs.map(\.contentType) == ["image/png", "text/csv"])
      #expect(execution.outputs.first?.content.starts(with: [0x89, 0x50, 0x4E, 0x47]) == true)
      let stored = try await client.getCodeExecution(.with { $0.id = execution.id }, options: options)
      #expect(stored.outputs == execution.outputs && stored.memoryUsedMb > 0)
      // Output files are capped in count (SANDBOX_MAX_OUTPUT_FILES, 20) and bytes (1 MiB together):
      // what does not fit is left out and the result says so.
      let many = try await run(client, options, .python, "for i in range(30): open(f'outputs/f{i:02}.txt', 'w').write('x')")
      #expect(many.status == .completed && many.outputs.count == 20 && many.outputsTruncated, "\(many.outputs.count)")
      let large = try await run(client, options, .python, "open('outputs/a.bin', 'wb').write(b'a' * 700_000)\nopen('outputs/b.bin', 'wb').write(b'b' * 700_000)")
      #expect(large.status == .completed && large.outputsTruncated, "\(large)")
      #expect(large.outputs.reduce(0) { $0 + $1.content.count } <= 1 << 20)
      let small = try await run(client, options, .python, "open('outputs/one.txt', 'w').write('1')")
      #expect(small.outputs.count == 1 && !small.outputsTruncated)
      await expectStatus(.invalidArgument) {
        try await run(client, options, .python, "print(1)") { $0.files = [.with { $0.name = "../escape" }] }
      }
      await expectStatus(.invalidArgument) {
        try await run(client, options, .python, "print(1)") { $0.files = [.with { $0.name = "main.py" }] }
      }
    }
  }

  @Test("TypeScript: types stripped and run; with type_check a type error fails the run with the compiler's message")
  func typescript() async throws {
    try await withSandbox { _, client, options in
      let code = "const n: number = 'not a number' as any as string as unknown as number; let s: string = 42 as any; const x: number = \"oops\";\nconsole.log('ran', typeof x)"
      let stripped = try await run(client, options, .typescript, code)
      #expect(stripped.status == .completed && stripped.stdout == "ran string\n", "\(stripped.stderr)")
      let checked = try await run(client, options, .typescript, code) {
        $0.typeCheck = true
        $0.limits.timeoutMs = 60_000
      }
      #expect(checked.status == .failed && checked.terminationReason == .compileError, "\(checked)")
      #expect(checked.stdout.contains("TS2322") || checked.stderr.contains("TS2322"), "\(checked.stdout) \(checked.stderr)")
      await expectStatus(.invalidArgument) { try await run(client, options, .python, "print(1)") { $0.typeCheck = true } }
      let broken = try await run(client, options, .typescript, "const = ;")
      #expect(broken.status == .failed && broken.terminationReason == .compileError && !broken.stderr.isEmpty)
    }
  }

  @Test("Streaming delivers output while the program runs, then the finished execution")
  func streaming() async throws {
    try await withSandbox { _, client, options in
      let request = Platform_Codesandbox_V1_ExecuteCodeRequest.with {
        $0.language = .python
        $0.code = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')"
      }
      let clock = ContinuousClock()
      let start = clock.now
      var firstOutput: ContinuousClock.Instant?
      var completed: (Platform_Codesandbox_V1_CodeExecution, ContinuousClock.Instant)?
      var started = false
      var text = ""
      try await client.streamExecution(request, options: options) { responses in
        for try await response in responses {
          switch response.event {
          case .started(let execution): started = execution.status == .pending || execution.status == .running
          case .output(let chunk):
            if firstOutput == nil { firstOutput = clock.now }
            #expect(chunk.offset == Int64(text.utf8.count))
            text += String(decoding: chunk.data, as: UTF8.self)
          case .completed(let execution): completed = (execution, clock.now)
          case nil: break
          }
        }
      }
      let (execution, end) = try #require(completed)
      #expect(started && text == "first\nsecond\n" && execution.stdout == text && execution.status == .completed)
      let first = try #require(firstOutput)
      #expect(end - first > .milliseconds(1000), "the first line came \(first - start) after the start, \(end - first) before the end")
    }
  }
}

@Suite("Code sandbox: limits and refusals")
struct LimitTests {
  @Test("Time, memory, output and CPU limits end the run with their reason; a forbidden system call is SIGSYS")
  func limits() async throws {
    try await withSandbox { _, client, options in
      let slow = try await run(client, options, .python, "import time\ntime.sleep(30)") { $0.limits.timeoutMs = 500 }
      #expect(slow.status == .timeout && slow.terminationReason == .timeLimit && slow.executionTimeMs < 1500, "\(slow)")
      let hungry = try await run(client, options, .python, "x = bytearray(200 << 20)\nprint('allocated')") { $0.limits.memoryMb = 64 }
      #expect(hungry.status == .failed && hungry.terminationReason == .memoryLimit && hungry.exitCode == 137, "\(hungry)")
      let chatty = try await run(client, options, .python, "while True: print('x' * 1000)") { $0.limits.maxOutputBytes = 10_000 }
      #expect(chatty.status == .failed && chatty.terminationReason == .outputLimit && chatty.stdoutTruncated)
      #expect(chatty.stdout.utf8.count <= 10_000)
      let spinning = try await run(client, options, .javascript, "while (true) {}") {
        $0.limits.timeoutMs = 3000
        $0.limits.cpuMillis = 1000
      }
      // A busy loop used its whole CPU share until the time limit: a CPU limit, not a wait.
      #expect(spinning.status == .timeout && spinning.terminationReason == .cpuLimit, "\(spinning)")
      #expect(spinning.cpuUsagePercent > slow.cpuUsagePercent && slow.cpuUsagePercent < 20, "\(spinning) \(slow)")
      let forbidden = try await run(client, options, .python, "import ctypes\nctypes.CDLL(None).unshare(0x10000000)")
      #expect(forbidden.status == .failed && forbidden.terminationReason == .deniedSyscall && forbidden.signal == 31, "\(forbidden)")
      #expect(forbidden.securityScore < 50)
    }
  }

  @Test("Bad requests are INVALID_ARGUMENT naming the field and record nothing")
  func badRequests() async throws {
    try await withSandbox { service, client, options in
      let bad: [(String, (inout Platform_Codesandbox_V1_ExecuteCodeRequest) -> Void)] = [
        ("language", { $0.language = .unspecified }),
        ("language", { $0.language = .init(rawValue: 99)! }),
        ("code", { $0.code = "" }),
        ("code", { $0.code = String(repeating: "x", count: 256 * 1024 + 1) }),
        ("limits.timeout_ms", { $0.limits.timeoutMs = 60_001 }),
        ("limits.memory_mb", { $0.limits.memoryMb = 4096 }),
        ("limits.cpu_millis", { $0.limits.cpuMillis = -1 }),
        ("limits.max_output_bytes", { $0.limits.maxOutputBytes = (1 << 20) + 1 }),
        ("request_id", { $0.requestID = "not-a-uuid" }),
        ("files", { $0.files = Array(repeating: .with { $0.name = "a" }, count: 2) }),
      ]
      for (field, configure) in bad {
        let message = await expectStatus(.invalidArgument) { try await run(client, options, .python, "print(1)", configure) }
        #expect(message.hasPrefix(field), "\(field): \(message)")
      }
      let rows = try await service.database.query("SELECT count(*) FROM code_executions", logger: TestPostgres.quietLogger)
      for try await (count,) in rows.decode((Int,).self) { #expect(count == 0) }
    }
  }

  @Test("Another user's execution is NOT_FOUND; listing is the caller's own, filtered, in pages")
  func ownership() async throws {
    try await withSandbox { service, client, options in
      let python = try await run(client, options, .python, "print(1)")
      let javascript = try await run(client, options, .javascript, "process.exit(2)")
      let other = try await service.options(for: UUID())
      await expectStatus(.notFound) { try await client.getCodeExecution(.with { $0.id = python.id }, options: other) }
      await expectStatus(.notFound) { try await client.cancelExecution(.with { $0.id = python.id }, options: other) }
      #expect(try await client.listCodeExecutions(.init(), options: other).executions.isEmpty)
      let mine = try await client.listCodeExecutions(.with { $0.pageSize = 1 }, options: options)
      #expect(mine.executions.map(\.id) == [javascript.id] && mine.totalSize == 2 && !mine.nextPageToken.isEmpty)
      let rest = try await client.listCodeExecutions(.with {
        $0.pageSize = 1
        $0.pageToken = mine.nextPageToken
      }, options: options)
      #expect(rest.executions.map(\.id) == [python.id] && rest.nextPageToken.isEmpty)
      #expect(try await client.listCodeExecutions(.with { $0.status = .failed }, options: options).executions.map(\.id) == [javascript.id])
      #expect(try await client.listCodeExecutions(.with { $0.language = .python }, options: options).executions.map(\.id) == [python.id])
      await expectStatus(.invalidArgument) {
        try await client.listCodeExecutions(.with {
          $0.pageToken = mine.nextPageToken
          $0.language = .python
        }, options: options)
      }
    }
  }

  @Test("A retried request id returns the first run; CancelExecution stops a run within a second")
  func idempotencyAndCancel() async throws {
    try await withSandbox { _, client, options in
      let id = UUID().lowercasedString
      let first = try await run(client, options, .python, "import random\nprint(random.random())") { $0.requestID = id }
      let again = try await run(client, options, .python, "import random\nprint(random.random())") { $0.requestID = id }
      #expect(first.id == again.id && first.stdout == again.stdout)

      let long = Task { try await run(client, options, .python, "import time\nprint('up', flush=True)\ntime.sleep(30)") { $0.limits.timeoutMs = 30_000 } }
      var running: Platform_Codesandbox_V1_CodeExecution?
      for _ in 0..<100 {
        running = try await client.listCodeExecutions(.with { $0.status = .running }, options: options).executions.first
        if running != nil { break }
        try await Task.sleep(for: .milliseconds(50))
      }
      let target = try #require(running)
      let clock = ContinuousClock()
      let start = clock.now
      let cancelled = try await client.cancelExecution(.with { $0.id = target.id }, options: options)
      #expect(clock.now - start < .seconds(1) && cancelled.status == .cancelled, "\(cancelled)")
      _ = try? await long.value
    }
  }

  @Test("A caller that cancels its call stops the run within a second, recorded as CANCELLED")
  func callCancelled() async throws {
    try await withSandbox { _, client, options in
      let request = Platform_Codesandbox_V1_ExecuteCodeRequest.with {
        $0.language = .python
        $0.code = "import time\nprint('up', flush=True)\ntime.sleep(30)"
        $0.limits.timeoutMs = 30_000
      }
      let started = AsyncStream.makeStream(of: String.self)
      let call = Task {
        try await client.streamExecution(request, options: options) { responses in
          for try await response in responses {
            if case .started(let execution) = response.event { started.continuation.yield(execution.id) }
          }
        }
      }
      var iterator = started.stream.makeAsyncIterator()
      let id = try #require(await iterator.next())
      try await Task.sleep(for: .milliseconds(300))
      let clock = ContinuousClock()
      let cancelledAt = clock.now
      call.cancel()
      var execution = try await client.getCodeExecution(.with { $0.id = id }, options: options)
      while execution.status == .running || execution.status == .pending, clock.now - cancelledAt < .seconds(3) {
        try await Task.sleep(for: .milliseconds(20))
        execution = try await client.getCodeExecution(.with { $0.id = id }, options: options)
      }
      #expect(execution.status == .cancelled && execution.terminationReason == .cancelled, "\(execution)")
      #expect(clock.now - cancelledAt < .seconds(1), "stopped \(clock.now - cancelledAt) after the cancel")
    }
  }

  @Test("CRITICAL findings block the run only when asked; AnalyzeCode reports without running")
  func security() async throws {
    try await withSandbox { _, client, options in
      let code = "import ctypes\nimport subprocess as sp\nsp.run(['ls'])\nprint(open('/etc/passwd').read())"
      let analysis = try await client.analyzeCode(.with {
        $0.language = .python
        $0.code = code
      }, options: options)
      #expect(!analysis.allowed && analysis.securityScore < 50)
      #expect(Set(analysis.issues.map(\.rule)).isSuperset(of: ["native-code", "subprocess-spawn", "fs-escape"]))
      let blocked = try await run(client, options, .python, code) { $0.blockOnCritical = true }
      #expect(blocked.status == .failed && blocked.terminationReason == .securityBlocked && blocked.stdout.isEmpty)
      // Python goes through its own parser, in the analyser's sandbox: a syntax error is a finding
      // with its line, and nesting no parser survives is refused, not a crash.
      for (bad, line) in [("print(1)\ndef f(:\n", 2), (String(repeating: "(", count: 100_000), 1), (String(repeating: "-", count: 100_000) + "1", 0)] {
        let parsed = try await client.analyzeCode(.with {
          $0.language = .python
          $0.code = bad
        }, options: options)
        #expect(parsed.issues.map(\.rule) == ["syntax-error"] || (line == 0 && parsed.issues.isEmpty), "\(parsed)")
        #expect(line == 0 || parsed.issues.first?.line == Int32(line))
      }
      let aliased = try await client.analyzeCode(.with {
        $0.language = .python
        $0.code = "from subprocess import run as r\nr(['ls'])\nprint(().__class__.__base__.__subclasses__())"
      }, options: options)
      #expect(Set(aliased.issues.map(\.rule)) == ["subprocess-spawn", "sandbox-introspection"], "\(aliased)")
      let comment = try await client.analyzeCode(.with {
        $0.language = .javascript
        $0.code = "// require('child_process')\nconst s = 'eval(x)'; console.log(s)"
      }, options: options)
      #expect(comment.issues.isEmpty && comment.securityScore == 100)
    }
  }
}

@Suite("Code sandbox: load and recovery")
struct LoadTests {
  @Test("Beyond pool + queue a run is RESOURCE_EXHAUSTED at once; none hangs; Get, List and health answer while the pool is full")
  func saturation() async throws {
    try await withSandbox(["SANDBOX_POOL_SIZE": "2", "SANDBOX_QUEUE_SIZE": "2", "SANDBOX_MAX_PER_USER": "100"]) { service, client, options in
      let clock = ContinuousClock()
      let sleeper = "import time\ntime.sleep(1.5)\nprint('done')"
      let quick = try await run(client, options, .python, "print(1)")
      let outcomes = try await withThrowingTaskGroup(of: (String, Duration).self) { group in
        for _ in 0..<8 {
          group.addTask {
            let start = clock.now
            do {
              let execution = try await run(client, options, .python, sleeper)
              return (execution.status == .completed ? "completed" : "other", clock.now - start)
            } catch let error as RPCError {
              return ("\(error.code)", clock.now - start)
            }
          }
        }
        // While the pool is full: the service keeps answering.
        try await Task.sleep(for: .milliseconds(500))
        let before = clock.now
        _ = try await client.getCodeExecution(.with { $0.id = quick.id }, options: options)
        _ = try await client.listCodeExecutions(.init(), options: options)
        let health = Grpc_Health_V1_HealthClient(channel: service.client)
        #expect(try await health.check(.init()).status == .serving)
        #expect(clock.now - before < .milliseconds(500), "Get, List and health took \(clock.now - before) with the pool full")
        var outcomes: [(String, Duration)] = []
        for try await outcome in group { outcomes.append(outcome) }
        return outcomes
      }
      let refused = outcomes.filter { $0.0 == "\(StatusCode.resourceExhausted)" }
      #expect(outcomes.filter { $0.0 == "completed" }.count == 4 && refused.count == 4, "\(outcomes)")
      #expect(refused.allSatisfy { $0.1 < .milliseconds(500) }, "refusals waited: \(refused)")
      #expect(outcomes.allSatisfy { $0.1 < .seconds(10) })
      // Refused runs leave no row behind.
      #expect(try await client.listCodeExecutions(.init(), options: options).totalSize == 5)
      // On /metrics: what isolation this host gives, and the refusals.
      let metrics = try httpRequest(port: service.adminPort, path: "/metrics").body
      #expect(metrics.contains(#"sandbox_refused_total{why="pool_full"} 4"#), "\(metrics)")
      #expect(metrics.contains(#"sandbox_isolation{cgroup="v"#) && metrics.contains(#"uids="per-slot""#))
      #expect(metrics.contains(#"sandbox_runs_total{ending="success"} 5"#))
      // And in the health details under /readyz's verdict.
      let ready = try httpRequest(port: service.adminPort, path: "/readyz")
      #expect(ready.status == 200 && ready.body.hasPrefix("SERVING\nsandbox: bubblewrap, seccomp, cgroup v"), "\(ready.body)")
    }
  }

  @Test("One user's runs are capped (SANDBOX_MAX_PER_USER); another user still gets a slot")
  func perUser() async throws {
    try await withSandbox(["SANDBOX_POOL_SIZE": "2", "SANDBOX_QUEUE_SIZE": "2", "SANDBOX_MAX_PER_USER": "1"]) { service, client, options in
      let first = Task { try await run(client, options, .python, "import time\ntime.sleep(1)") }
      try await Task.sleep(for: .milliseconds(300))
      await expectStatus(.resourceExhausted) { try await run(client, options, .python, "print(1)") }
      let other = try await service.options(for: UUID())
      #expect(try await run(client, other, .python, "print(2)").stdout == "2\n")
      #expect(try await first.value.status == .completed)
    }
  }

  @Test("CancelExecution on another replica stops the run within a second (through Redis)")
  func cancelAcrossReplicas() async throws {
    let uidBase = 62_000 + 16 * Int.random(in: 0..<10_000)
    try await PlatformTestService.runReplicas(
      CodeSandboxService(), count: 2, configure: { $0.environment = Environment(["SANDBOX_UID_BASE": "\(uidBase)"]) }
    ) { replicas in
      let (a, b) = (Client(channel: replicas[0].client), Client(channel: replicas[1].client))
      let user = UUID()
      let options = try await replicas[0].options(for: user)
      let long = Task { try await run(a, options, .python, "import time\nprint('up', flush=True)\ntime.sleep(30)") { $0.limits.timeoutMs = 30_000 } }
      var running: Platform_Codesandbox_V1_CodeExecution?
      for _ in 0..<100 {
        running = try await b.listCodeExecutions(.with { $0.status = .running }, options: options).executions.first
        if running != nil { break }
        try await Task.sleep(for: .milliseconds(50))
      }
      let target = try #require(running)
      let clock = ContinuousClock()
      let start = clock.now
      let cancelled = try await b.cancelExecution(.with { $0.id = target.id }, options: options)
      #expect(cancelled.status == .cancelled && clock.now - start < .seconds(1), "\(cancelled) after \(clock.now - start)")
      #expect(try await long.value.status == .cancelled)
    }
  }

  @Test("Runs a crash left pending or running are failed as interrupted at start: this instance's at once, any instance's once too old")
  func staleRows() async throws {
    try await withSandbox(["SANDBOX_POOL_SIZE": "1"]) { service, _, _ in
      let host = ProcessInfo.processInfo.hostName
      let user = UUID()
      let old = UUID(), young = UUID()
      _ = try await service.database.query(
        """
        INSERT INTO code_executions (id, user_id, language, code, status, container_id, limits, created_at) VALUES
          (\(old), \(user), 'python', 'print(1)', 'running', \(host + ":9/slot-0"), '{}', now() - interval '10 minutes'),
          (\(young), \(user), 'python', 'print(1)', 'running', \(host + ":9/slot-0"), '{}', now())
        """, logger: TestPostgres.quietLogger)
      let store = ExecutionStore(database: Database(client: service.database), logger: TestPostgres.quietLogger)
      #expect(try await store.failStale(instance: nil, olderThan: .seconds(210)) == 1)
      #expect(try await store.execution(old, userID: user)?.status == .failed)
      #expect(try await store.execution(old, userID: user)?.reason == .interrupted)
      #expect(try await store.execution(young, userID: user)?.status == .running)
      // The instance that ran it (host:9), restarted, fails its own at once.
      #expect(try await store.failStale(instance: host + ":9", olderThan: .seconds(210)) == 1)
      #expect(try await store.execution(young, userID: user)?.status == .failed)
    }
  }
}

@Suite("Code sandbox: lifecycle and analysis")
struct LifecycleTests {
  @Test("The execution lifecycle: pending → running → a finish; pending may finish at once; a finish is final")
  func lifecycle() {
    typealias S = Execution.Status
    #expect(S.pending.canMove(to: .running) && S.pending.canMove(to: .failed) && S.pending.canMove(to: .cancelled))
    #expect(!S.pending.canMove(to: .completed) && !S.pending.canMove(to: .timeout))
    for finish in [S.completed, .failed, .timeout, .cancelled] {
      #expect(S.running.canMove(to: finish) && finish.isFinished)
      #expect(S.allCases.allSatisfy { !finish.canMove(to: $0) })
    }
    #expect(!S.running.canMove(to: .pending) && !S.running.isFinished)
  }

  @Test("Static analysis reads tokens: aliases are followed, comments and strings are not code, findings have positions")
  func analysis() {
    let python = SecurityAnalysis.analyze("import subprocess as sp\n# os.system('x')\nx = 'eval(1)'\nsp.run(['ls'])\nfrom os import system\n", language: .python)
    #expect(python.findings.map(\.rule) == ["subprocess-spawn", "subprocess-spawn", "subprocess-spawn"])
    #expect(python.findings.map(\.line) == [1, 4, 5] && python.score == 70)
    let javascript = SecurityAnalysis.analyze("const cp = require('node:child_process')\n/* eval(x) */\nnew Function('return 1')", language: .javascript)
    #expect(javascript.findings.map(\.rule) == ["subprocess-spawn", "dynamic-code"])
    let clean = SecurityAnalysis.analyze("print('hello')", language: .python)
    #expect(clean.findings.isEmpty && clean.score == 100 && !clean.hasCritical)
    let deep = SecurityAnalysis.analyze(String(repeating: "(", count: 200_000) + String(repeating: "[", count: 200_000), language: .python)
    #expect(deep.findings.isEmpty)
  }
}
