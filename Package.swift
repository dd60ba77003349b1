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

/// The runtime's hot path: exclusivity is checked statically; the dynamic checks cost ~2% of a
/// unary call for no finding (every state here is confined to one event loop or a lock).
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
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
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
      exclude: ["python", "go", "c"],
      swiftSettings: upcomingFeatures
    ),
    .executableTarget(
      name: "RPCInterop",
      dependencies: [
        "GRPCRuntime",
        "GRPCRuntimeServices",
        "InteropSupport",
        "PlatformProtos",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
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
  ],
  swiftLanguageModes: [.v6]
)
