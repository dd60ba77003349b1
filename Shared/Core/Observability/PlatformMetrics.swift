public import CoreMetrics
public import Prometheus

/// A service's metrics: a Prometheus registry of its own (what `/metrics` on the admin port
/// shows) and the swift-metrics factory every part of the service records into.
public final class PlatformMetrics: Sendable {
  public let registry: PrometheusCollectorRegistry
  public let factory: any MetricsFactory

  public init() {
    let registry = PrometheusCollectorRegistry()
    var factory = PrometheusMetricsFactory(registry: registry)
    // Calls, queries and jobs of 0.5 ms to 60 s.
    factory.defaultDurationHistogramBuckets = [
      .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
      .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2),
      .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]
    self.registry = registry
    self.factory = factory
  }

  /// The Prometheus text exposition of every metric.
  public func exposition() -> [UInt8] {
    var buffer: [UInt8] = []
    buffer.reserveCapacity(16 * 1024)
    self.registry.emit(into: &buffer)
    return buffer
  }
}
