public import PlatformCore

/// The Agent service. Until its own issue it is a placeholder: it connects its database and
/// serves health and reflection; every other call is UNIMPLEMENTED.
public enum AgentService {
  public static let definition = PlaceholderServiceDefinition(name: .agent)
}
