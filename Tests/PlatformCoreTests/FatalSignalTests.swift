import Foundation
import GRPCRuntime
import NIOCore
import PlatformCore
import Testing

/// Recurses until the stack runs out: no frame is a tail call, and each holds a little data.
@inline(never)
func exhaustStack(_ depth: Int) -> Int {
  var frame = (depth, depth, depth, depth, depth, depth, depth, depth)
  return withUnsafeMutablePointer(to: &frame) { exhaustStack($0.pointee.0 + 1) } + 1
}

@Suite("A crash ends the process")
struct FatalSignalTests {
  @Test("A stack overflow on an event loop ends the process by SIGSEGV, after a last log line")
  func stackOverflow() async {
    let result = await #expect(processExitsWith: .signal(SIGSEGV), observing: [\.standardErrorContent]) {
      FatalSignals.install(service: "crash-test")
      _ = try? await (RuntimeEventLoops.shared as any EventLoopGroup).next().submit { exhaustStack(0) }.get()
    }
    let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
    #expect(stderr.contains(#""service":"crash-test","message":"fatal signal 11 (SIGSEGV): the process exits"#), "\(stderr.suffix(500))")
  }

  @Test("A Swift trap ends the process by its signal, after a last log line")
  func trap() async {
    let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
      FatalSignals.install(service: "crash-test")
      _ = try? await (RuntimeEventLoops.shared as any EventLoopGroup).next().submit { () -> Int in
        let values: [Int] = []
        return values[Int.random(in: 1...2)]  // out of bounds: a trap
      }.get()
    }
    let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
    #expect(stderr.contains("fatal signal"), "\(stderr.suffix(500))")
  }

  @Test("SIGABRT ends the process by SIGABRT")
  func abort() async {
    await #expect(processExitsWith: .signal(SIGABRT)) {
      FatalSignals.install(service: "crash-test")
      kill(getpid(), SIGABRT)  // to the process, as `kill -ABRT` sends it
      while true { sleep(1) }
    }
  }
}
