// The protoc plugin entry point: protoc hands over the parsed .proto files, we hand back one
// `.grpc.swift` file for each file that declares services.

internal import SwiftProtobuf
internal import SwiftProtobufPluginLibrary

@main
struct GRPCPlatformPlugin: CodeGenerator {
  var supportedFeatures: [Google_Protobuf_Compiler_CodeGeneratorResponse.Feature] {
    // Stubs never look at fields, so proto3 `optional` and editions need no special handling.
    [.proto3Optional, .supportsEditions]
  }

  var supportedEditionRange: ClosedRange<Google_Protobuf_Edition> {
    DescriptorSet.bundledEditionsSupport
  }

  var projectURL: String? { "Tools/ProtocGen in the platform repository" }

  func generate(
    files: [FileDescriptor],
    parameter: any CodeGeneratorParameter,
    protoCompilerContext: any ProtoCompilerContext,
    generatorOutputs: any GeneratorOutputs
  ) throws {
    let options = try GeneratorOptions(parameter: parameter)
    for file in files where !file.services.isEmpty {
      var generator = Generator(file: file, options: options)
      let contents = try generator.generate()
      try generatorOutputs.add(fileName: options.outputFileName(for: file), contents: contents)
    }
  }
}
