public import GRPCRuntime
public import Logging
internal import OTel
public import ServiceLifecycle
public import SwiftProtobuf
public import Tracing

/// How a process traces its work. Every call gets W3C trace ids whatever the configuration (log
/// lines carry them, callers get `x-trace-id`, outgoing calls continue the trace). Spans are
/// recorded only with a tracer: server and client RPCs, SQL statements and Redis commands,
/// exported over OTLP/HTTP by swift-otel when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
public struct PlatformTracing: Sendable {
  /// Records spans; nil when the process only propagates ids (no span costs anything then).
  public let tracer: (any Tracer)?

  /// Ids only, no spans.
  public static let idsOnly = PlatformTracing(tracer: nil)

  public init(tracer: (any Tracer)?) {
    self.tracer = tracer
  }

  /// A leaf span (a SQL statement, a Redis command) under the current span, or nil when
  /// nothing records (then `name` is not worked out). The caller ends it.
  public func startLeafSpan(_ name: @autoclosure () -> String, kind: SpanKind = .client) -> (any Span)? {
    guard let tracer = self.tracer else { return nil }
    return tracer.startSpan(name(), context: InstrumentationContext.current ?? .topLevel, ofKind: kind)
  }

  /// The OTLP/HTTP backend for `configuration`: a tracer and the service that batches and
  /// exports its spans (run it beside the server; it flushes on shutdown). Nil when no
  /// endpoint is configured.
  public static func otlpBackend(
    _ configuration: TracingConfiguration, serviceName: String, logger: Logger
  ) throws -> (tracing: PlatformTracing, exporter: any Service)? {
    guard let endpoint = configuration.otlpTracesEndpoint else { return nil }
    var otel = OTel.Configuration.default
    otel.serviceName = serviceName
    otel.diagnosticLogger = .custom(logger)
    otel.metrics.enabled = false
    otel.logs.enabled = false
    otel.traces.enabled = true
    otel.traces.exporter = .otlp
    otel.traces.otlpExporter.protocol = .httpProtobuf
    otel.traces.otlpExporter.endpoint = endpoint
    otel.traces.batchSpanProcessor.scheduleDelay = configuration.exportInterval
    otel.propagators = [.traceContext]
    let backend = try OTel.makeTracingBackend(configuration: otel)
    return (PlatformTracing(tracer: backend.factory), backend.service)
  }
}

/// Where spans go: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; unset means ids only.
/// `OTEL_BSP_SCHEDULE_DELAY` (milliseconds, default 5000) is how often spans are sent. swift-otel
/// reads the other standard `OTEL_*` variables (sampler, headers, timeout) itself.
public struct TracingConfiguration: Sendable, Equatable {
  public var otlpTracesEndpoint: String?
  public var exportInterval: Duration

  public init(otlpTracesEndpoint: String? = nil, exportInterval: Duration = .seconds(5)) {
    self.otlpTracesEndpoint = otlpTracesEndpoint
    self.exportInterval = exportInterval
  }

  /// Sends to the collector whose base URL is `endpoint` (`http://host:4318`).
  public static func otlp(endpoint: String, exportInterval: Duration = .seconds(5)) -> TracingConfiguration {
    TracingConfiguration(otlpTracesEndpoint: Self.tracesURL(base: endpoint), exportInterval: exportInterval)
  }

  /// Reads the standard variables (`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`
  /// turn export off).
  /// - Throws: `Environment.InvalidValue` for a malformed endpoint or delay.
  public init(environment: Environment) throws {
    self.init()
    let disabled = environment["OTEL_SDK_DISABLED"]?.lowercased() == "true" || environment["OTEL_TRACES_EXPORTER"] == "none"
    let endpoint =
      environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }
      ?? environment["OTEL_EXPORTER_OTLP_ENDPOINT"].flatMap { $0.isEmpty ? nil : Self.tracesURL(base: $0) }
    if let endpoint, !disabled {
      guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
        throw Environment.InvalidValue(
          variable: "OTEL_EXPORTER_OTLP_ENDPOINT", value: endpoint, expected: "an http:// or https:// URL (OTLP/HTTP)")
      }
      self.otlpTracesEndpoint = endpoint
    }
    self.exportInterval = .milliseconds(try environment.int("OTEL_BSP_SCHEDULE_DELAY", default: 5000, range: 1...3_600_000))
  }

  static func tracesURL(base: String) -> String {
    base.hasSuffix("/") ? base + "v1/traces" : base + "/v1/traces"
  }
}

// MARK: - Carriers

/// Reads `traceparent`/`tracestate` from an incoming call's headers.
struct ServerCallExtractor: Extractor {
  func extract(key: String, from carrier: ServerContext) -> String? {
    carrier.requestMetadataStrings(forKey: key).first
  }
}

/// Writes `traceparent`/`tracestate` into call metadata.
struct MetadataInjector: Injector {
  func inject(_ value: String, forKey key: String, into carrier: inout Metadata) {
    carrier.replaceOrAddString(value, forKey: key)
  }
}

extension Tracer {
  /// The W3C ids of `context`'s span, read back through the tracer's own propagation (a span's
  /// ids are otherwise private to its tracer).
  func traceContext(of context: InstrumentationContext) -> TraceContext? {
    var headers = Metadata()
    self.inject(context, into: &headers, using: MetadataInjector())
    return TraceContext(traceparent: headers.firstString(forKey: "traceparent"), tracestate: headers.firstString(forKey: "tracestate"))
  }
}

// MARK: - Server

/// Continues the caller's trace (`traceparent`, `tracestate`) or starts one, makes it current
/// for the handler (log lines carry its `trace_id`), and tells the caller the trace id in the
/// `x-trace-id` response header. With a tracer, the call is a server span named after its
/// method, with the gRPC status as `rpc.grpc.status_code`. Installed first, so it sees the status
/// the caller gets.
public struct TracingServerInterceptor: ServerInterceptor {
  private let tracing: PlatformTracing

  public init(tracing: PlatformTracing = .idsOnly) {
    self.tracing = tracing
  }

  /// Without a tracer a call needs only its ids, which a synchronous interceptor gives it.
  public func interceptor(for method: MethodDescriptor) -> (any ServerInterceptor)? {
    self.tracing.tracer == nil ? TraceIDInterceptor() : self
  }

  public func intercept(context: ServerContext, next: (ServerContext) async throws -> Void) async throws {
    guard let tracer = self.tracing.tracer else {
      return try await TraceIDInterceptor().intercept(context: context, next: next)
    }
    // The span's path in a frame of its own: an async function's frame holds every local of
    // every path, and the task allocates it anew for each call.
    try await self.traced(context, tracer: tracer, next: next)
  }

  /// Gives the call its trace (the context's `trace`, which `TraceContext.current` reads) and
  /// announces its id.
  private struct TraceIDInterceptor: SynchronousServerInterceptor {
    func start(context: ServerContext) throws {
      let trace = TracingServerInterceptor.trace(of: context)
      TracingServerInterceptor.announce(trace, in: context)
      context.trace = trace
    }
  }

  /// The caller's trace continued, or a new one. (`tracestate` is looked up only when there is
  /// a trace to continue.)
  fileprivate static func trace(of context: ServerContext) -> TraceContext {
    let incoming = context.requestMetadataStrings(forKey: "traceparent").first.flatMap {
      TraceContext(traceparent: $0, tracestate: context.requestMetadataStrings(forKey: "tracestate").first)
    }
    return incoming?.child() ?? TraceContext.newTrace()
  }

  private func traced(_ context: ServerContext, tracer: any Tracer, next: (ServerContext) async throws -> Void) async throws {
    var parent = InstrumentationContext.topLevel
    tracer.extract(context, into: &parent, using: ServerCallExtractor())
    let method = context.method
    let span = tracer.startSpan(method.path, context: parent, ofKind: .server)
    span.updateAttributes { attributes in
      attributes["rpc.system"] = "grpc"
      attributes["rpc.service"] = method.service
      attributes["rpc.method"] = method.method
    }
    // A span the sampler dropped has no ids: the call still gets a trace for its logs.
    let trace = tracer.traceContext(of: span.context) ?? TraceContext.newTrace(sampled: false)
    Self.announce(trace, in: context)
    do {
      try await InstrumentationContext.$current.withValue(span.context) {
        try await TraceContext.$bound.withValue(trace) { try await next(context) }
      }
      span.attributes["rpc.grpc.status_code"] = Int64(StatusCode.ok.rawValue)
      span.end()
    } catch {
      span.finish(failedWith: error, serverSide: true)
      throw error
    }
  }

  fileprivate static func announce(_ trace: TraceContext, in context: ServerContext) {
    context.updateInitialMetadata { $0.replaceOrAddString(trace.traceID, forKey: "x-trace-id") }
  }
}

extension Span {
  /// Ends a span whose RPC failed: the gRPC status as `rpc.grpc.status_code`, and the span's
  /// status an error for the codes OpenTelemetry's RPC conventions count as errors on that side
  /// (a server's NOT_FOUND is the caller's problem, not the server's).
  func finish(failedWith error: any Error, serverSide: Bool) {
    let code = (error as? RPCError)?.code ?? .unknown
    self.attributes["rpc.grpc.status_code"] = Int64(code.rawValue)
    let serverErrors: Set<StatusCode> = [.unknown, .deadlineExceeded, .unimplemented, .internal, .unavailable, .dataLoss]
    if !serverSide || serverErrors.contains(code) {
      self.setStatus(SpanStatus(code: .error, message: "\(code)"))
    }
    self.end()
  }
}

// MARK: - Client

/// A channel whose calls continue the current trace: each call sends `traceparent` and
/// `tracestate`, and with a tracer it is a client span (the server's span becomes its child).
/// Wrap every client that calls another service in one.
public struct TracedChannel: RPCChannel {
  private let base: any RPCChannel
  private let tracing: PlatformTracing

  public init(_ base: any RPCChannel, tracing: PlatformTracing) {
    self.base = base
    self.tracing = tracing
  }

  private func traced<Result>(
    _ method: MethodDescriptor, _ options: CallOptions, _ call: (CallOptions) async throws -> Result
  ) async throws -> Result {
    var options = options
    guard let tracer = self.tracing.tracer else {
      TraceContext.current?.child().inject(into: &options.metadata)
      return try await call(options)
    }
    let span = tracer.startSpan(method.path, context: InstrumentationContext.current ?? .topLevel, ofKind: .client)
    span.updateAttributes { attributes in
      attributes["rpc.system"] = "grpc"
      attributes["rpc.service"] = method.service
      attributes["rpc.method"] = method.method
    }
    tracer.inject(span.context, into: &options.metadata, using: MetadataInjector())
    do {
      let result = try await call(options)
      span.attributes["rpc.grpc.status_code"] = Int64(StatusCode.ok.rawValue)
      span.end()
      return result
    } catch {
      span.finish(failedWith: error, serverSide: false)
      throw error
    }
  }

  public func unaryCall<Request: Message & Sendable, Response: Message & Sendable>(
    _ method: MethodDescriptor, request: Request, options: CallOptions
  ) async throws -> ClientResponse<Response> {
    try await self.traced(method, options) { try await self.base.unaryCall(method, request: request, options: $0) }
  }

  public func serverStreaming<Request: Message & Sendable, Response: Message & Sendable, Result: Sendable>(
    _ method: MethodDescriptor, request: Request, options: CallOptions,
    responses: (ClientResponseStream<Response>) async throws -> Result
  ) async throws -> Result {
    try await self.traced(method, options) {
      try await self.base.serverStreaming(method, request: request, options: $0, responses: responses)
    }
  }

  public func clientStreamingCall<Request: Message & Sendable, Response: Message & Sendable>(
    _ method: MethodDescriptor, options: CallOptions,
    requests: @Sendable (RequestStreamWriter<Request>) async throws -> Void
  ) async throws -> ClientResponse<Response> {
    try await self.traced(method, options) {
      try await self.base.clientStreamingCall(method, options: $0, requests: requests)
    }
  }

  public func bidirectionalStreaming<Request: Message & Sendable, Response: Message & Sendable, Result: Sendable>(
    _ method: MethodDescriptor, options: CallOptions,
    requests: @escaping @Sendable (RequestStreamWriter<Request>) async throws -> Void,
    responses: (ClientResponseStream<Response>) async throws -> Result
  ) async throws -> Result {
    try await self.traced(method, options) {
      try await self.base.bidirectionalStreaming(method, options: $0, requests: requests, responses: responses)
    }
  }
}
