public import PlatformCore

/// The TextToSQL service. Until its own issue it is a placeholder: it connects its database and
/// serves health and reflection; every other call is UNIMPLEMENTED.
public enum TextToSQLService {
  public static let definition = PlaceholderServiceDefinition(name: .textToSQL)
}
