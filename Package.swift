// swift-tools-version:6.2
import PackageDescription

let upcomingFeatures: [SwiftSetting] = [
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
  // Async functions run on their caller's executor: a call through interceptors and handler
  // wrappers stays on the connection's event loop without an executor check at every level.
  .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

/// The hot paths (the RPC runtime, the Redis client): exclusivity is checked statically; the
/// dynamic checks cost ~2% of a unary call and ~4% of a Redis command for no finding (every state
/// here is confined to one event loop or a lock).
let runtimeSettings: [SwiftSetting] = upcomingFeatures + [
  .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
  name: "platform",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "GRPCRuntime", targets: ["GRPCRuntime"]),
    .library(name: "GRPCRuntimeServices", targets: ["GRPCRuntimeServices"]),
    .executable(name: "rpc-interop", targets: ["RPCInterop"]),
    .library(name: "PlatformRedis", targets: ["PlatformRedis"]),
    .executable(name: "redis-bench", targets: ["RedisBenchmark"]),
    .library(name: "PlatformCore", targets: ["PlatformCore"]),
    .executable(name: "job-probe", targets: ["JobProbe"]),
    .library(name: "PlatformTesting", targets: ["PlatformTesting"]),
    .executable(name: "agent", targets: ["AgentServer"]),
    .executable(name: "persona", targets: ["PersonaServer"]),
    .executable(name: "code-sandbox", targets: ["CodeSandboxServer"]),
    .executable(name: "sandbox-exec", targets: ["SandboxExec"]),
    .executable(name: "text-to-sql", targets: ["TextToSQLServer"]),
    .executable(name: "text-to-sql-bench", targets: ["TextToSQLBenchmark"]),
    .executable(name: "knowledge", targets: ["KnowledgeServer"]),
    .executable(name: "workflow", targets: ["WorkflowServer"]),
    .executable(name: "platform", targets: ["PlatformCLI"]),
    .executable(name: "platform-load", targets: ["PlatformLoad"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    // OTLP/HTTP only: the gRPC exporter's trait would pull grpc-swift into the build.
    .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
  ],
  targets: [
    // libnghttp2 does HTTP/2 framing, HPACK, flow control, settings, PING and GOAWAY.
    .systemLibrary(
      name: "CNGHTTP2",
      path: "Shared/CNGHTTP2",
      pkgConfig: "libnghttp2",
      providers: [.apt(["libnghttp2-dev"])]
    ),
    // zlib for gRPC's gzip message compression.
    .systemLibrary(
      name: "CZlib",
      path: "Shared/CZlib",
      providers: [.apt(["zlib1g-dev"])]
    ),
    .target(
      name: "GRPCRuntime",
      dependencies: [
        "CNGHTTP2",
        "CZlib",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      path: "Shared/RPC",
      swiftSettings: runtimeSettings
    ),
    .target(
      name: "GRPCRuntimeServices",
      dependencies: [
        "GRPCRuntime",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      path: "Shared/RPCServices",
      swiftSettings: upcomingFeatures
    ),
    // Generated code of the platform's contracts (and the descriptor set for reflection).
    .target(
      name: "PlatformProtos",
      dependencies: [
        "GRPCRuntime",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      path: "Shared/Protos",
      swiftSettings: upcomingFeatures
    ),
    // The grpc.testing interop service and the echo service, shared by the interop binary,
    // the benchmark and the runtime's tests.
    .target(
      name: "InteropSupport",
      dependencies: [
        "GRPCRuntime",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      path: "Tests/Interop",
      exclude: ["python", "go", "c", "persona"],
      swiftSettings: upcomingFeatures
    ),
    // glibc's allocator statistics, for the interop server's heap report.
    .systemLibrary(
      name: "CMalloc",
      path: "Tests/CMalloc"
    ),
    .executableTarget(
      name: "RPCInterop",
      dependencies: [
        "CMalloc",
        "GRPCRuntime",
        "GRPCRuntimeServices",
        "InteropSupport",
        "PlatformProtos",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      path: "Tests/InteropRunner",
      swiftSettings: upcomingFeatures
    ),
    .testTarget(
      name: "GRPCRuntimeTests",
      dependencies: [
        "GRPCRuntime",
        "GRPCRuntimeServices",
        "InteropSupport",
        "PlatformProtos",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Tests/GRPCRuntimeTests",
      swiftSettings: upcomingFeatures
    ),

    // Our RESP client on swift-nio: a pipelining connection pool with timeouts, reconnect backoff,
    // TLS, scripts and pub/sub (no Swift Redis client exists among the packages here).
    .target(
      name: "PlatformRedis",
      dependencies: [
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Tracing", package: "swift-distributed-tracing"),
      ],
      path: "Shared/Redis",
      swiftSettings: runtimeSettings
    ),
    .testTarget(
      name: "RedisTests",
      dependencies: [
        "PlatformRedis",
        "PlatformTesting",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Tests/RedisTests",
      swiftSettings: upcomingFeatures
    ),
    // GET/SET throughput of our client, side by side with redis-benchmark (scripts/benchmark-redis.sh).
    .executableTarget(
      name: "RedisBenchmark",
      dependencies: [
        "PlatformRedis",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Tests/RedisBenchmark",
      swiftSettings: upcomingFeatures
    ),

    // The shared platform core: config, logging, tracing, auth, PostgreSQL + migrations, and the
    // server bootstrap every service runs on.
    .target(
      name: "PlatformCore",
      dependencies: [
        "GRPCRuntime",
        "GRPCRuntimeServices",
        "PlatformProtos",
        "PlatformRedis",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        .product(name: "Mustache", package: "swift-mustache"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "JWTKit", package: "jwt-kit"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "Tracing", package: "swift-distributed-tracing"),
        .product(name: "OTel", package: "swift-otel"),
      ],
      path: "Shared/Core",
      swiftSettings: upcomingFeatures
    ),
    // A job worker process: the jobs crash tests and benchmark run two of them.
    .executableTarget(
      name: "JobProbe",
      dependencies: [
        "PlatformCore",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ],
      path: "Tests/JobProbe",
      swiftSettings: upcomingFeatures
    ),
    // Starts any service in-process on a free loopback port against a fresh database and
    // mints tokens: the integration tests' entry point.
    .target(
      name: "PlatformTesting",
      dependencies: [
        "GRPCRuntime",
        "PlatformCore",
        "PlatformRedis",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "JWTKit", package: "jwt-kit"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      path: "Tests/PlatformTesting",
      swiftSettings: upcomingFeatures
    ),
    .target(
      name: "Agent",
      dependencies: [
        "GRPCRuntime",
        "PlatformCore",
        "PlatformProtos",
        "PlatformRedis",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "CryptoExtras", package: "swift-crypto"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      path: "Services/Agent/Sources",
      resources: [.copy("Migrations")],
      swiftSettings: upcomingFeatures
    ),
    .testTarget(
      name: "CodeSandboxTests",
      dependencies: [
        "CodeSandbox",
        "GRPCRuntime",
        "GRPCRuntimeServices",
        "PlatformCore",
        "PlatformProtos",
        "PlatformTesting",
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      path: "Tests/CodeSandboxTests",
      swiftSettings: upcomingFeatures
    ),
    .testTarget(
      name: "AgentTests",
      dependencies: [
        "Agent",
        "CodeSandbox",
        "Knowledge",
        "Persona",
        "TextToSQL",
        "GRPCRuntime",
        "PlatformCore",
        "PlatformProtos",
        "PlatformRedis",
        "PlatformTesting",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      path: "Tests/AgentTests",
      exclude: ["callback_receiver.py"],
      swiftSettings: upcomingFeatures
    ),
    .executableTarget(
      name: "AgentServer",
      dependencies: ["Agent", "PlatformCore"],
      path: "Services/Agent/Server",
      swiftSettings: upcomingFeatures
    ),
    .target(
      name: "Persona",
      dependencies: [
        "GRPCRuntime",
        "PlatformCore",
        "PlatformProtos",
        .product(name: "Logging", package: "swift-log"),
        "PlatformRedis",
        .product(name: "Mustache", package: "swift-mustache"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      path: "Services/Persona/Sources",
      resources: [.copy("Migrations")],
      swiftSettings: upcomingFeatures
    ),
    .executableTarget(
      name: "PersonaServer",
      dependencies: ["Persona", "PlatformCore"],
      path: "Services/Persona/Server",
      swiftSettings: upcomingFeatures
    ),
    .target(
      name: "CodeSandbox",
      dependencies: [
        "GRPCRuntime",
        "PlatformCore",
        "PlatformProtos",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        "PlatformRedis",
      ],
      path: "Services/CodeSandbox/Sources",
      resources: [.copy("Migrations"), .copy("Analyzer")],
      swiftSettings: upcomingFeatures
    ),
    // The sandbox's launcher and init, in C: rlimits, the seccomp filter (libseccomp) and the
    // uid change between fork and exec, where Swift cannot run.
    .executableTarget(
      name: "SandboxExec",
      path: "Services/CodeSandbox/Exec",
      cSettings: [.unsafeFlags(["-O2", "-Wall", "-Wextra"])],
      linkerSettings: [.linkedLibrary("seccomp"), .unsafeFlags(["-static-stdlib"])]
    ),
    .executableTarget(
      name: "CodeSandboxServer",
      dependencies: ["CodeSandbox", "PlatformCore"],
      path: "Services/CodeSandbox/Server",
      swiftSettings: upcomingFeatures
    ),
    // libpg_query: PostgreSQL's own parser, for the text-to-SQL guard.
    .systemLibrary(
      name: "CPgQuery",
      path: "Services/TextToSQL/CPgQuery",
      providers: [.apt(["libpg-query-dev"])]
    ),
    // SQLite's C API, for registered SQLite databases.
    .systemLibrary(
      name: "CSQLite3",
      path: "Services/TextToSQL/CSQLite3",
      providers: [.apt(["libsqlite3-dev"])]
    ),
    .target(
      name: "TextToSQL",
      dependencies: [
        "CPgQuery", "CSQLite3", "PlatformCore", "PlatformProtos",
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "Crypto", package: "swift-crypto"),
      ],
      path: "Services/TextToSQL/Sources",
      resources: [.copy("Migrations")],
      swiftSettings: upcomingFeatures
    ),
    .testTarget(
      name: "TextToSQLTests",
      dependencies: ["TextToSQL", "PlatformTesting", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
      path: "Tests/TextToSQLTests",
      exclude: ["fake_chat_completions.py"],
      swiftSettings: upcomingFeatures
    ),
    // The guard's latency, ExecuteQuery against postgres-nio directly, AskQuestion
    // (scripts/benchmark-text-to-sql.sh).
    .executableTarget(
      name: "TextToSQLBenchmark",
      dependencies: [
        "TextToSQL", "PlatformCore", "PlatformProtos", "PlatformRedis",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      path: "Tests/TextToSQLBenchmark",
      swiftSettings: upcomingFeatures
    ),
    .executableTarget(
      name: "TextToSQLServer",
      dependencies: ["TextToSQL", "PlatformCore"],
      path: "Services/TextToSQL/Server",
      swiftSettings: upcomingFeatures
    ),
    .target(
      name: "Knowledge",
      dependencies: [
        "PlatformCore", "PlatformProtos", .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
      ],
      path: "Services/Knowledge/Sources",
      resources: [.copy("Migrations")],
      swiftSettings: upcomingFeatures
    ),
    .testTarget(
      name: "KnowledgeTests",
      dependencies: ["Knowledge", "PlatformTesting", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
      path: "Tests/KnowledgeTests",
      exclude: ["Fixtures"],
      swiftSettings: upcomingFeatures
    ),
    .executableTarget(
      name: "KnowledgeServer",
      dependencies: ["Knowledge", "PlatformCore"],
      path: "Services/Knowledge/Server",
      swiftSettings: upcomingFeatures
    ),
    .target(
      name: "Workflow",
      dependencies: [
        "GRPCRuntime", "PlatformCore", "PlatformProtos",
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      path: "Services/Workflow/Sources",
      resources: [.copy("Migrations")],
      swiftSettings: upcomingFeatures
    ),
    .testTarget(
      name: "WorkflowTests",
      dependencies: [
        "Workflow", "Agent", "Persona", "CodeSandbox", "Knowledge", "TextToSQL", "PlatformTesting", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
      ],
      path: "Tests/WorkflowTests",
      exclude: ["counting_server.py"],
      swiftSettings: upcomingFeatures
    ),
    .executableTarget(
      name: "WorkflowServer",
      dependencies: ["Workflow", "PlatformCore"],
      path: "Services/Workflow/Server",
      swiftSettings: upcomingFeatures
    ),
    .testTarget(
      name: "PlatformCoreTests",
      dependencies: [
        "GRPCRuntime",
        "GRPCRuntimeServices",
        "InteropSupport",
        "PlatformCore",
        "PlatformRedis",
        "PlatformProtos",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        "PlatformTesting",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "JWTKit", package: "jwt-kit"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Tracing", package: "swift-distributed-tracing"),
        .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
        .product(name: "Crypto", package: "swift-crypto"),
      ],
      path: "Tests/PlatformCoreTests",
      swiftSettings: upcomingFeatures
    ),
    // The `platform` command-line client (README "The platform CLI"): our client and the generated
    // clients, and PostgresNIO for `admin db-report`. No PlatformCore: it goes into every image.
    .executableTarget(
      name: "PlatformCLI",
      dependencies: [
        "GRPCRuntime",
        "GRPCRuntimeServices",
        "PlatformProtos",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Tools/PlatformCLI",
      swiftSettings: upcomingFeatures
    ),
    // `platform-load`: fixed-rate (open-loop) load against any unary RPC, percentiles from an
    // HdrHistogram, objectives as the exit code; `platform-load self-test` checks its figures.
    .executableTarget(
      name: "PlatformLoad",
      dependencies: [
        "GRPCRuntime",
        "GRPCRuntimeServices",
        "PlatformProtos",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Histogram", package: "hdrhistogram-swift"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Tools/PlatformLoad",
      exclude: ["Scenarios"],
      swiftSettings: upcomingFeatures
    ),
    .testTarget(
      name: "PersonaTests",
      dependencies: [
        "GRPCRuntime",
        "GRPCRuntimeServices",
        "PlatformCore",
        "PlatformRedis",
        "PlatformProtos",
        "PlatformTesting",
        "Persona",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
      ],
      path: "Tests/PersonaTests",
      swiftSettings: upcomingFeatures
    ),
  ],
  swiftLanguageModes: [.v6]
)
