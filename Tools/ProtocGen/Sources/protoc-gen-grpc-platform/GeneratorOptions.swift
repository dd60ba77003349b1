internal import SwiftProtobufPluginLibrary

/// The plugin's options, passed as `--grpc-platform_opt=Key=Value,...`.
///
/// `Visibility` and `FileNaming` take the same values as protoc-gen-swift's options of the same
/// names, so one option string serves both plugins.
struct GeneratorOptions {
  /// The access level of the generated declarations.
  enum Visibility: String {
    case `internal`
    case `public`
    case `package`
  }

  /// How the output file's name derives from the .proto file's path.
  enum FileNaming {
    /// `grpc/testing/test.proto` → `grpc/testing/test.grpc.swift`.
    case fullPath
    /// `grpc/testing/test.proto` → `grpc_testing_test.grpc.swift`.
    case pathToUnderscores
    /// `grpc/testing/test.proto` → `test.grpc.swift`.
    case dropPath
  }

  /// `Visibility=Internal|Public|Package`; defaults to `internal`.
  var visibility = Visibility.internal
  /// `FileNaming=FullPath|PathToUnderscores|DropPath`; defaults to `fullPath`.
  var fileNaming = FileNaming.fullPath

  /// Parses the options protoc passed to the plugin.
  ///
  /// - Throws: `GenerationError` for an unknown key or a value the key doesn't take.
  init(parameter: any CodeGeneratorParameter) throws(GenerationError) {
    for (key, value) in parameter.parsedPairs {
      switch key {
      case "Visibility":
        guard let visibility = Visibility(rawValue: value.lowercased()) else {
          throw .invalidOption(key: key, value: value)
        }
        self.visibility = visibility
      case "FileNaming":
        switch value.lowercased() {
        case "fullpath", "full_path": self.fileNaming = .fullPath
        case "pathtounderscores", "path_to_underscores": self.fileNaming = .pathToUnderscores
        case "droppath", "drop_path": self.fileNaming = .dropPath
        default: throw .invalidOption(key: key, value: value)
        }
      default:
        throw .unknownOption(key: key)
      }
    }
  }

  /// The access modifier, followed by a space, that starts every generated declaration (empty for
  /// `internal`, as protoc-gen-swift does).
  var accessModifier: String {
    self.visibility == .internal ? "" : "\(self.visibility.rawValue) "
  }

  /// The name of the file generated for `file`, e.g. `grpc_testing_test.grpc.swift`.
  func outputFileName(for file: FileDescriptor) -> String {
    var path = file.name
    if path.hasSuffix(".proto") {
      path.removeLast(".proto".count)
    }
    let base = path.split(separator: "/").last.map(String.init) ?? path
    switch self.fileNaming {
    case .fullPath: return path + ".grpc.swift"
    case .pathToUnderscores: return path.replacing("/", with: "_") + ".grpc.swift"
    case .dropPath: return base + ".grpc.swift"
    }
  }
}

/// Why the plugin could not generate code; protoc prints the description.
enum GenerationError: Error, CustomStringConvertible {
  case unknownOption(key: String)
  case invalidOption(key: String, value: String)
  /// A method's Swift name collides with a member the generator declares itself.
  case reservedMethodName(method: String, swiftName: String)

  var description: String {
    switch self {
    case .unknownOption(let key):
      return "Unknown option '\(key)' (known: Visibility, FileNaming)."
    case .invalidOption(let key, let value):
      return "Option '\(key)' does not take the value '\(value)'."
    case .reservedMethodName(let method, let swiftName):
      return "Method \(method) would be named '\(swiftName)', which the generated code reserves."
    }
  }
}
