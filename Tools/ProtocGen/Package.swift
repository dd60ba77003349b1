// swift-tools-version: 6.2
// The code generators for the platform's protos, kept out of the main package's build.
//
// - `protoc-gen-grpc-platform`: service stubs (namespace, handler protocol, typed client) for the
//   GRPCRuntime module.
// - `protoc-gen-swift`: swift-protobuf's message generator, re-exported from the dependency so one
//   package (one resolution, one scratch folder) builds both plugins at the same version.
//
// `scripts/generate-protos.sh` builds both in release and runs protoc with them.

import PackageDescription

let package = Package(
  name: "ProtocGen",
  products: [
    .executable(name: "protoc-gen-grpc-platform", targets: ["protoc-gen-grpc-platform"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0")
  ],
  targets: [
    .executableTarget(
      name: "protoc-gen-grpc-platform",
      dependencies: [
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "SwiftProtobufPluginLibrary", package: "swift-protobuf"),
      ],
      swiftSettings: [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("InternalImportsByDefault"),
        .enableUpcomingFeature("MemberImportVisibility"),
      ]
    )
  ],
  swiftLanguageModes: [.v6]
)
