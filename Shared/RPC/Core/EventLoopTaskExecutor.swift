public import NIOCore

/// Runs tasks on a NIO event loop: a handler task started with this executor preference runs
/// on its connection's loop, so a call costs no thread hop (no wake-up of another thread, no
/// cache traffic) between reading the request, running the handler and writing the response.
///
/// A handler that blocks or computes for long holds up the other connections of its loop; such
/// services choose `RPCServerConfiguration.HandlerExecution.globalExecutor` instead.
public final class EventLoopTaskExecutor: TaskExecutor {
  public let eventLoop: any EventLoop

  public init(eventLoop: any EventLoop) {
    self.eventLoop = eventLoop
  }

  public func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    self.eventLoop.execute {
      job.runSynchronously(on: self.asUnownedTaskExecutor())
    }
  }
}
