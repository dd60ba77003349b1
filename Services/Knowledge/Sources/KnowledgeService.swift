public import PlatformCore

/// The Knowledge service. Until its own issue it is a placeholder: it connects its database and
/// serves health and reflection; every other call is UNIMPLEMENTED.
public enum KnowledgeService {
  public static let definition = PlaceholderServiceDefinition(name: .knowledge)
}
