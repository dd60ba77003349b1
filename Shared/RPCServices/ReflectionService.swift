public import GRPCRuntime
internal import Foundation
internal import SwiftProtobuf

/// Server reflection over a serialized `FileDescriptorSet` (the generate script writes one for
/// every contract), so grpcurl and other tools can list and call the services without the
/// `.proto` files.
///
/// It serves `grpc.reflection.v1.ServerReflection` and, beside it as grpc-go and grpc-java do,
/// the deprecated `grpc.reflection.v1alpha.ServerReflection` that older grpcurl, grpcui, Evans,
/// Postman and Kreya still speak. The v1alpha messages are v1's field for field, number for
/// number, so both methods decode into and answer with the v1 messages: one implementation,
/// no conversion.
public struct ReflectionService: RPCService {
  /// The services this one serves, which it always lists.
  public static let serviceNames = [
    Grpc_Reflection_V1_ServerReflection.serviceName, Grpc_Reflection_V1alpha_ServerReflection.serviceName,
  ]

  private let files: [String: Google_Protobuf_FileDescriptorProto]
  private let serializedFiles: [String: [UInt8]]
  /// Fully qualified symbol → the file that defines it.
  private let symbols: [String: String]
  /// Extended message type → extension number → defining file.
  private let extensions: [String: [Int32: String]]
  private let serviceNames: [String]

  /// - Parameters:
  ///   - descriptorSet: a serialized `google.protobuf.FileDescriptorSet` holding at least the
  ///     served services' files and their dependencies.
  ///   - serviceNames: the server's other services to list; `ReflectionService.serviceNames`
  ///     are listed as well.
  /// - Throws: when the descriptor set cannot be decoded.
  public init(descriptorSet: [UInt8], serviceNames: [String]) throws {
    let set = try Google_Protobuf_FileDescriptorSet(serializedBytes: descriptorSet)
    var files: [String: Google_Protobuf_FileDescriptorProto] = [:]
    var serializedFiles: [String: [UInt8]] = [:]
    var symbols: [String: String] = [:]
    var extensions: [String: [Int32: String]] = [:]
    for file in set.file {
      files[file.name] = file
      serializedFiles[file.name] = try file.serializedBytes()
      let prefix = file.package.isEmpty ? "" : file.package + "."
      func addMessages(_ messages: [Google_Protobuf_DescriptorProto], prefix: String) {
        for message in messages {
          let name = prefix + message.name
          symbols[name] = file.name
          for field in message.field { symbols[name + "." + field.name] = file.name }
          for nested in message.enumType { symbols[name + "." + nested.name] = file.name }
          for ext in message.extension { symbols[name + "." + ext.name] = file.name }
          addMessages(message.nestedType, prefix: name + ".")
        }
      }
      addMessages(file.messageType, prefix: prefix)
      for enumType in file.enumType { symbols[prefix + enumType.name] = file.name }
      for service in file.service {
        symbols[prefix + service.name] = file.name
        for method in service.method { symbols[prefix + service.name + "." + method.name] = file.name }
      }
      for ext in file.extension {
        symbols[prefix + ext.name] = file.name
        let extended = ext.extendee.hasPrefix(".") ? String(ext.extendee.dropFirst()) : ext.extendee
        extensions[extended, default: [:]][ext.number] = file.name
      }
    }
    self.files = files
    self.serializedFiles = serializedFiles
    self.symbols = symbols
    self.extensions = extensions
    self.serviceNames = Set(serviceNames + Self.serviceNames).sorted()
  }

  public func registerMethods(with router: inout RPCRouter) {
    router.registerBidirectionalStreaming(
      Grpc_Reflection_V1_ServerReflection.Method.serverReflectionInfo, handler: self.serverReflectionInfo)
    router.registerBidirectionalStreaming(
      Grpc_Reflection_V1alpha_ServerReflection.Method.serverReflectionInfo, handler: self.serverReflectionInfo)
  }

  private func serverReflectionInfo(
    _ requests: RequestStream<Grpc_Reflection_V1_ServerReflectionRequest>,
    responses: ResponseStreamWriter<Grpc_Reflection_V1_ServerReflectionResponse>,
    context: ServerContext
  ) async throws {
    for try await request in requests {
      var response = Grpc_Reflection_V1_ServerReflectionResponse()
      response.validHost = request.host
      response.originalRequest = request
      response.messageResponse = self.answer(request.messageRequest)
      try await responses.write(response)
    }
  }

  private func answer(
    _ request: Grpc_Reflection_V1_ServerReflectionRequest.OneOf_MessageRequest?
  ) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
    switch request {
    case .fileByFilename(let name):
      guard self.files[name] != nil else { return Self.notFound("File '\(name)' not found") }
      return self.filesResponse(startingAt: name)
    case .fileContainingSymbol(let symbol):
      guard let name = self.symbols[symbol] else { return Self.notFound("Symbol '\(symbol)' not found") }
      return self.filesResponse(startingAt: name)
    case .fileContainingExtension(let request):
      guard let name = self.extensions[request.containingType]?[request.extensionNumber] else {
        return Self.notFound("Extension \(request.extensionNumber) of '\(request.containingType)' not found")
      }
      return self.filesResponse(startingAt: name)
    case .allExtensionNumbersOfType(let type):
      guard self.symbols[type] != nil else { return Self.notFound("Type '\(type)' not found") }
      var numbers = Grpc_Reflection_V1_ExtensionNumberResponse()
      numbers.baseTypeName = type
      numbers.extensionNumber = (self.extensions[type].map { Array($0.keys) } ?? []).sorted()
      return .allExtensionNumbersResponse(numbers)
    case .listServices:
      var list = Grpc_Reflection_V1_ListServiceResponse()
      list.service = self.serviceNames.map { name in
        var service = Grpc_Reflection_V1_ServiceResponse()
        service.name = name
        return service
      }
      return .listServicesResponse(list)
    case .none:
      var error = Grpc_Reflection_V1_ErrorResponse()
      error.errorCode = Int32(StatusCode.invalidArgument.rawValue)
      error.errorMessage = "The request names no reflection query"
      return .errorResponse(error)
    }
  }

  /// The file and every file it depends on, transitively, dependencies after dependents.
  private func filesResponse(startingAt name: String) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
    var ordered: [String] = []
    var seen: Set<String> = []
    var pending = [name]
    while let next = pending.popLast() {
      guard seen.insert(next).inserted, let file = self.files[next] else { continue }
      ordered.append(next)
      pending.append(contentsOf: file.dependency.reversed())
    }
    var response = Grpc_Reflection_V1_FileDescriptorResponse()
    response.fileDescriptorProto = ordered.compactMap { self.serializedFiles[$0].map { Data($0) } }
    return .fileDescriptorResponse(response)
  }

  private static func notFound(_ message: String) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
    var error = Grpc_Reflection_V1_ErrorResponse()
    error.errorCode = Int32(StatusCode.notFound.rawValue)
    error.errorMessage = message
    return .errorResponse(error)
  }
}
