internal import Foundation

/// The smallest stack a handler may run on (macOS's secondary threads; Linux's event-loop and
/// cooperative threads get 8 MiB): recursive parsers are tested at their limits on it.
public let smallestHandlerStack = 512 * 1024

/// Runs `body` on a new thread with a stack of `stackSize` bytes and returns its result: code
/// that recursed too deep crashes the test process instead of passing by luck on a big stack.
public func onThread<T: Sendable>(stackSize: Int = smallestHandlerStack, _ body: @escaping @Sendable () -> T) -> T {
  let box = ThreadBox<T>()
  let done = DispatchSemaphore(value: 0)
  let thread = Thread {
    box.result = body()
    done.signal()
  }
  thread.stackSize = stackSize
  thread.start()
  done.wait()
  return box.result!
}

/// The result `onThread`'s thread hands back.
private final class ThreadBox<T>: @unchecked Sendable {
  var result: T?
}
