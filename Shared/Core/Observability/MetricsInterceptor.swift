public import CoreMetrics
public import GRPCRuntime
internal import Synchronization

/// Counts every call by method and status (`rpc_server_requests_total{method,code}`), times it
/// (`rpc_server_duration_seconds{method}`) and tracks the calls in flight
/// (`rpc_server_in_flight{method}`). Installed outside the error mapping, so it sees the status
/// the caller gets.
public struct MetricsInterceptor: ServerInterceptor {
  private final class MethodMetrics: Sendable {
    let duration: Timer
    let inFlight: Meter
    /// The OK calls' counter, made up front: most calls end OK.
    let ok: Counter
    let codes: Mutex<[StatusCode: Counter]>
    let method: String
    let factory: any MetricsFactory

    init(method: String, factory: any MetricsFactory) {
      self.method = method
      self.factory = factory
      self.duration = Timer(label: "rpc_server_duration_seconds", dimensions: [("method", method)], factory: factory)
      self.inFlight = Meter(label: "rpc_server_in_flight", dimensions: [("method", method)], factory: factory)
      self.ok = Counter(label: "rpc_server_requests_total", dimensions: [("method", method), ("code", "\(StatusCode.ok)")], factory: factory)
      self.codes = Mutex([.ok: self.ok])
    }

    func finished(_ code: StatusCode) {
      if code == .ok {
        self.ok.increment()
        return
      }
      let counter = self.codes.withLock { counters in
        if let counter = counters[code] { return counter }
        let counter = Counter(
          label: "rpc_server_requests_total", dimensions: [("method", self.method), ("code", "\(code)")], factory: self.factory)
        counters[code] = counter
        return counter
      }
      counter.increment()
    }
  }

  private final class Registry: Sendable {
    let factory: any MetricsFactory
    let methods = Mutex<[String: MethodMetrics]>([:])
    init(factory: any MetricsFactory) { self.factory = factory }

    func metrics(for method: String) -> MethodMetrics {
      self.methods.withLock { methods in
        if let metrics = methods[method] { return metrics }
        let metrics = MethodMetrics(method: method, factory: self.factory)
        methods[method] = metrics
        return metrics
      }
    }
  }

  private let registry: Registry

  public init(factory: any MetricsFactory) {
    self.registry = Registry(factory: factory)
  }

  /// Each method's calls are counted by an interceptor holding that method's metrics (made
  /// when the server starts, so every method is listed from the start, at zero).
  public func interceptor(for method: MethodDescriptor) -> (any ServerInterceptor)? {
    MethodInterceptor(metrics: self.registry.metrics(for: method.path))
  }

  public func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    try await MethodInterceptor(metrics: self.registry.metrics(for: context.method.path)).intercept(context: context, next: next)
  }

  /// The metrics of one method's calls; a call's duration runs from when its headers arrived.
  private struct MethodInterceptor: SynchronousServerInterceptor {
    let metrics: MethodMetrics

    func start(context: ServerContext) throws {
      self.metrics.inFlight.increment()
    }

    func succeeded(context: ServerContext) throws {
      self.ended(context, code: .ok)
    }

    func failed(context: ServerContext, error: any Error) -> any Error {
      self.ended(context, code: (error as? RPCError)?.code ?? .unknown)
      return error
    }

    private func ended(_ context: ServerContext, code: StatusCode) {
      self.metrics.inFlight.decrement()
      self.metrics.duration.recordElapsed(since: context.received)
      self.metrics.finished(code)
    }
  }
}

extension CoreMetrics.Timer {
  /// Records the time since `start`.
  func recordElapsed(since start: ContinuousClock.Instant) {
    self.recordNanoseconds((ContinuousClock.now - start).wholeNanoseconds)
  }
}
