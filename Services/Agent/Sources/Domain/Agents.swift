public import Foundation
public import Logging
public import PlatformCore

/// Whether a persona exists and the caller may read it: asked of the persona service with the
/// caller's own credentials, so another user's private persona is refused there.
public protocol PersonaDirectory: Sendable {
  /// - Throws: `AgentError.invalidArgument` (`persona_id`: no persona the caller can read),
  ///   `.permissionDenied`, `.unavailable`.
  func checkReadable(_ personaID: UUID) async throws(AgentError)
}

/// Agents and their plugins: created, read, listed, changed and deleted by their owner.
public struct Agents: Sendable {
  let store: AgentStore
  let personas: any PersonaDirectory
  let models: ModelCatalog
  /// Whether web_search plugins can run (a provider is configured).
  let webSearchEnabled: Bool
  let logger: Logger

  public init(store: AgentStore, personas: any PersonaDirectory, models: ModelCatalog, webSearchEnabled: Bool, logger: Logger) {
    self.webSearchEnabled = webSearchEnabled
    self.store = store
    self.personas = personas
    self.models = models
    self.logger = logger
  }

  /// What a caller gives to create or update an agent.
  public struct Draft: Sendable, Equatable {
    public var personaID: UUID?
    public var name: String
    public var description: String
    public var status: Agent.Status
    public var settings: ModelSettings
    public var metadata: [String: JSONValue]

    public init(
      personaID: UUID?, name: String, description: String, status: Agent.Status, settings: ModelSettings, metadata: [String: JSONValue]
    ) {
      self.personaID = personaID
      self.name = name
      self.description = description
      self.status = status
      self.settings = settings
      self.metadata = metadata
    }
  }

  public func create(_ draft: Draft, owner: UUID, requestID: UUID?) async throws -> Agent {
    let draft = try Self.checked(draft)
    guard let personaID = draft.personaID else { throw AgentError.invalidArgument(field: "agent.persona_id", reason: "is required") }
    if let requestID, let existing = try await self.store.agent(requestID: requestID, owner: owner) { return existing }
    try await self.personas.checkReadable(personaID)
    return try await self.store.insert(draft, personaID: personaID, owner: owner, requestID: requestID)
  }

  /// The owner's live agent with its plugins.
  public func agent(_ id: UUID, owner: UUID) async throws -> (Agent, [AgentPlugin]) {
    guard let agent = try await self.store.agent(id, owner: owner) else { throw AgentError.notFound("Agent not found") }
    return (agent, try await self.store.plugins(of: id, includeDisabled: true, after: nil, limit: Agent.maxPlugins).plugins)
  }

  public func list(
    owner: UUID, status: Agent.Status?, personaID: UUID?, query: String?, after: AgentStore.ListCursor?, limit: Int
  ) async throws -> (agents: [Agent], total: Int, more: Bool) {
    if let query, query.utf8.count > 255 { throw AgentError.invalidArgument(field: "query", reason: "must be at most 255 bytes") }
    return try await self.store.list(owner: owner, status: status, personaID: personaID, query: query, after: after, limit: limit)
  }

  /// Applies `change` if the agent is still at `version`. An archived agent changes only by
  /// leaving the archive; a new persona is checked like a created one.
  public func update(_ id: UUID, owner: UUID, version: Int, change: (inout Draft) throws -> Void) async throws -> Agent {
    guard let current = try await self.store.agent(id, owner: owner) else { throw AgentError.notFound("Agent not found") }
    guard current.version == version else {
      throw AgentError.failedPrecondition("The agent has changed since version \(version) (it is at \(current.version))")
    }
    var draft = Draft(
      personaID: current.personaID, name: current.name, description: current.description, status: current.status,
      settings: current.settings, metadata: current.metadata.objectValue ?? [:])
    try change(&draft)
    let checked = try Self.checked(draft)
    if current.status == .archived && checked.status == .archived {
      throw AgentError.failedPrecondition("The agent is archived and read-only; set its status to active or inactive to change it")
    }
    if let personaID = checked.personaID, personaID != current.personaID { try await self.personas.checkReadable(personaID) }
    guard let updated = try await self.store.update(id, owner: owner, expected: version, draft: checked) else {
      throw AgentError.failedPrecondition("The agent has changed since version \(version)")
    }
    return updated
  }

  /// Soft-deletes the agent and cancels its pending and running executions.
  /// Soft-deletes the agent and cancels its pending and running executions (in one statement).
  /// - Returns: the executions cancelled, whose runs are to be stopped.
  public func delete(_ id: UUID, owner: UUID, version: Int?) async throws -> [UUID] {
    switch try await self.store.softDelete(id, owner: owner, version: version) {
    case .done(let cancelled): return cancelled
    case .notFound: throw AgentError.notFound("Agent not found")
    case .versionMismatch: throw AgentError.failedPrecondition("The agent has changed since version \(version ?? 0)")
    }
  }

  // MARK: - Plugins

  /// What a caller gives to add or update a plugin.
  public struct PluginDraft: Sendable, Equatable {
    public var name: String
    public var kind: AgentPlugin.Kind
    public var config: [String: JSONValue]
    public var isEnabled: Bool
    public var orderIndex: Int

    public init(name: String, kind: AgentPlugin.Kind, config: [String: JSONValue], isEnabled: Bool, orderIndex: Int) {
      self.name = name
      self.kind = kind
      self.config = config
      self.isEnabled = isEnabled
      self.orderIndex = orderIndex
    }
  }

  public func addPlugin(_ draft: PluginDraft, to agentID: UUID, owner: UUID, version: Int?, requestID: UUID?) async throws -> AgentPlugin {
    let (name, config) = try self.checked(draft)
    let outcome = try await self.store.insertPlugin(
      draft, name: name, config: config, agentID: agentID, owner: owner, version: version, requestID: requestID)
    return try Self.plugin(outcome, kind: draft.kind)
  }

  public func updatePlugin(
    _ pluginID: UUID, of agentID: UUID, owner: UUID, version: Int, change: (inout PluginDraft) throws -> Void
  ) async throws -> AgentPlugin {
    guard try await self.store.agent(agentID, owner: owner) != nil,
      let current = try await self.store.plugin(pluginID, of: agentID)
    else { throw AgentError.notFound("Plugin not found") }
    var draft = PluginDraft(
      name: current.name, kind: current.kind, config: current.config.objectValue ?? [:], isEnabled: current.isEnabled,
      orderIndex: current.orderIndex)
    try change(&draft)
    let (name, config) = try self.checked(draft)
    let outcome = try await self.store.updatePlugin(
      pluginID, draft: draft, name: name, config: config, agentID: agentID, owner: owner, version: version)
    return try Self.plugin(outcome, kind: draft.kind)
  }

  public func removePlugin(_ pluginID: UUID, of agentID: UUID, owner: UUID, version: Int?) async throws {
    _ = try Self.plugin(try await self.store.deletePlugin(pluginID, agentID: agentID, owner: owner, version: version), kind: nil)
  }

  public func plugins(
    of agentID: UUID, owner: UUID, includeDisabled: Bool, after: AgentStore.PluginCursor?, limit: Int
  ) async throws -> (plugins: [AgentPlugin], total: Int, more: Bool) {
    guard try await self.store.agent(agentID, owner: owner) != nil else { throw AgentError.notFound("Agent not found") }
    return try await self.store.plugins(of: agentID, includeDisabled: includeDisabled, after: after, limit: limit)
  }

  private static func plugin(_ outcome: AgentStore.PluginOutcome, kind: AgentPlugin.Kind?) throws(AgentError) -> AgentPlugin {
    switch outcome {
    case .done(let plugin): return plugin
    case .agentNotFound: throw .notFound("Agent not found")
    case .pluginNotFound: throw .notFound("Plugin not found")
    case .versionMismatch(let current): throw .failedPrecondition("The agent has changed (it is at version \(current))")
    case .archived: throw .failedPrecondition("The agent is archived and read-only")
    case .duplicateType:
      throw .alreadyExists("The agent already has an enabled \(kind?.rawValue ?? "") plugin; disable or remove it first")
    case .tooMany: throw .resourceExhausted("An agent holds at most \(Agent.maxPlugins) plugins")
    }
  }

  // MARK: - Checks

  /// The draft trimmed and checked; INVALID_ARGUMENT names the field.
  static func checked(_ draft: Draft) throws(AgentError) -> Draft {
    var draft = draft
    draft.name = draft.name.trimmingCharacters(in: .whitespacesAndNewlines)
    guard (1...Agent.maxNameCharacters).contains(draft.name.count), draft.name.utf8.count <= 400, !Self.hasControlCharacters(draft.name) else {
      throw .invalidArgument(field: "agent.name", reason: "must be 1 to \(Agent.maxNameCharacters) characters without control characters")
    }
    guard draft.description.utf8.count <= Agent.maxDescriptionBytes, !draft.description.unicodeScalars.contains("\0") else {
      throw .invalidArgument(field: "agent.description", reason: "must be at most \(Agent.maxDescriptionBytes) bytes without NUL")
    }
    if let problem = JSONValue.object(draft.metadata).problem(maxDepth: 8, maxBytes: Agent.maxMetadataBytes) {
      throw .invalidArgument(field: "agent.metadata", reason: problem)
    }
    return draft
  }

  private func checked(_ draft: PluginDraft) throws(AgentError) -> (String, JSONValue) {
    let name = draft.name.trimmingCharacters(in: .whitespacesAndNewlines)
    guard (1...AgentPlugin.maxNameCharacters).contains(name.count), name.utf8.count <= 400, !Self.hasControlCharacters(name) else {
      throw .invalidArgument(field: "plugin.name", reason: "must be 1 to \(AgentPlugin.maxNameCharacters) characters without control characters")
    }
    guard (0...10_000).contains(draft.orderIndex) else { throw .invalidArgument(field: "plugin.order_index", reason: "must be 0 to 10000") }
    let config = try PluginConfig.checked(draft.config, kind: draft.kind, field: "plugin.config")
    switch draft.kind {
    case .webSearch where !self.webSearchEnabled:
      throw .failedPrecondition("web_search is off on this server: it needs a search provider (WEB_SEARCH_URL)")
    default:
      return (name, config)
    }
  }

  static func hasControlCharacters(_ text: String) -> Bool {
    text.unicodeScalars.contains { $0.properties.generalCategory == .control }
  }
}
