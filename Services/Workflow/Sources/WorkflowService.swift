public import PlatformCore

/// The Workflow service. Until its own issue it is a placeholder: it connects its database and
/// serves health and reflection; every other call is UNIMPLEMENTED.
public enum WorkflowService {
  public static let definition = PlaceholderServiceDefinition(name: .workflow)
}
