internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
public import SwiftProtobuf

/// `platform.agent.v1.AgentService` over protobuf: agents and their plugins.
public struct AgentAPI: Platform_Agent_V1_AgentServiceHandler {
  let agents: Agents

  /// Deleting an agent stops its executions' runs.
  let executions: Executions

  public init(agents: Agents, executions: Executions) {
    self.agents = agents
    self.executions = executions
  }

  typealias Method = Platform_Agent_V1_AgentService.Method

  public static let requirements: [MethodDescriptor: Permission] = [
    Method.createAgent: "agent:write", Method.getAgent: "agent:read", Method.listAgents: "agent:read",
    Method.updateAgent: "agent:write", Method.deleteAgent: "agent:write", Method.addPlugin: "agent:write",
    Method.updatePlugin: "agent:write", Method.removePlugin: "agent:write", Method.listPlugins: "agent:read",
  ]

  // MARK: - Agents

  public func createAgent(_ request: Platform_Agent_V1_CreateAgentRequest, context: ServerContext) async throws -> Platform_Agent_V1_Agent {
    let caller = try context.requireCaller()
    let message = request.agent
    let personaID = message.personaID.isEmpty ? nil : try Self.id(message.personaID, field: "agent.persona_id")
    let draft = Agents.Draft(
      personaID: personaID, name: message.name, description: message.description_p, status: try Self.status(message.status, default: .active),
      settings: try self.settings(message.settings, base: nil, paths: nil), metadata: JSONValue(message.metadata).objectValue ?? [:])
    let requestID = request.requestID.isEmpty ? nil : try Self.id(request.requestID, field: "request_id")
    let agent = try await self.agents.create(draft, owner: caller.userID, requestID: requestID)
    return Self.message(agent, plugins: [])
  }

  public func getAgent(_ request: Platform_Agent_V1_GetAgentRequest, context: ServerContext) async throws -> Platform_Agent_V1_Agent {
    let caller = try context.requireCaller()
    let (agent, plugins) = try await self.agents.agent(try Self.id(request.id, field: "id"), owner: caller.userID)
    return Self.message(agent, plugins: plugins)
  }

  public func listAgents(
    _ request: Platform_Agent_V1_ListAgentsRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_ListAgentsResponse {
    let caller = try context.requireCaller()
    guard let limit = PageToken.pageSize(request.pageSize, default: 50, maximum: 500) else {
      throw AgentError.invalidArgument(field: "page_size", reason: "must be 0 to 500")
    }
    let query = request.query.trimmingCharacters(in: .whitespaces)
    let status = request.status == .unspecified ? nil : try Self.status(request.status, default: .active)
    let personaID = request.personaID.isEmpty ? nil : try Self.id(request.personaID, field: "persona_id")
    let filter = PageToken.fingerprint("\(query)/\(status?.rawValue ?? "")/\(personaID?.lowercasedString ?? "")")
    let after = try PageToken.cursor(request.pageToken, filter: filter, as: AgentStore.ListCursor.self)
    let page = try await self.agents.list(
      owner: caller.userID, status: status, personaID: personaID, query: query.isEmpty ? nil : query, after: after, limit: limit)
    return .with {
      $0.agents = page.agents.map { Self.message($0, plugins: []) }
      $0.totalSize = Int32(clamping: page.total)
      if page.more, let last = page.agents.last {
        $0.nextPageToken = PageToken.encode(after: AgentStore.ListCursor(updatedAt: last.updatedAt, id: last.id), filter: filter)
      }
    }
  }

  public func updateAgent(_ request: Platform_Agent_V1_UpdateAgentRequest, context: ServerContext) async throws -> Platform_Agent_V1_Agent {
    let caller = try context.requireCaller()
    let message = request.agent
    let id = try Self.id(message.id, field: "agent.id")
    let paths = request.updateMask.paths
    guard !paths.isEmpty else { throw AgentError.invalidArgument(field: "update_mask", reason: "names no field") }
    let settingPaths = paths.filter { $0 == "settings" || $0.hasPrefix("settings.") }
    let updated = try await self.agents.update(id, owner: caller.userID, version: Int(request.version)) { draft in
      for path in paths where !settingPaths.contains(path) {
        switch path {
        case "name": draft.name = message.name
        case "description": draft.description = message.description_p
        case "persona_id": draft.personaID = try Self.id(message.personaID, field: "agent.persona_id")
        case "status": draft.status = try Self.status(message.status, default: .active)
        case "metadata": draft.metadata = JSONValue(message.metadata).objectValue ?? [:]
        default: throw AgentError.invalidArgument(field: "update_mask", reason: "\(path) is not an updatable field")
        }
      }
      if !settingPaths.isEmpty { draft.settings = try self.settings(message.settings, base: draft.settings, paths: settingPaths) }
    }
    let (_, plugins) = try await self.agents.agent(updated.id, owner: caller.userID)
    return Self.message(updated, plugins: plugins)
  }

  public func deleteAgent(_ request: Platform_Agent_V1_DeleteAgentRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
    let caller = try context.requireCaller()
    let id = try Self.id(request.id, field: "id")
    let cancelled = try await self.agents.delete(id, owner: caller.userID, version: request.version == 0 ? nil : Int(request.version))
    await self.executions.stopCancelled(cancelled, reason: "Cancelled: the agent was deleted")
    return Google_Protobuf_Empty()
  }

  // MARK: - Plugins

  public func addPlugin(_ request: Platform_Agent_V1_AddPluginRequest, context: ServerContext) async throws -> Platform_Agent_V1_AgentPlugin {
    let caller = try context.requireCaller()
    let agentID = try Self.id(request.agentID, field: "agent_id")
    let message = request.plugin
    let draft = Agents.PluginDraft(
      name: message.name.isEmpty ? (try? Self.kind(message.pluginType))?.rawValue ?? "" : message.name, kind: try Self.kind(message.pluginType),
      config: JSONValue(message.config).objectValue ?? [:], isEnabled: message.hasIsEnabled ? message.isEnabled : true,
      orderIndex: Int(message.orderIndex))
    let requestID = request.requestID.isEmpty ? nil : try Self.id(request.requestID, field: "request_id")
    let plugin = try await self.agents.addPlugin(
      draft, to: agentID, owner: caller.userID, version: request.version == 0 ? nil : Int(request.version), requestID: requestID)
    return Self.message(plugin)
  }

  public func updatePlugin(
    _ request: Platform_Agent_V1_UpdatePluginRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_AgentPlugin {
    let caller = try context.requireCaller()
    let agentID = try Self.id(request.agentID, field: "agent_id")
    let message = request.plugin
    let pluginID = try Self.id(message.id, field: "plugin.id")
    guard !request.updateMask.paths.isEmpty else { throw AgentError.invalidArgument(field: "update_mask", reason: "names no field") }
    let plugin = try await self.agents.updatePlugin(pluginID, of: agentID, owner: caller.userID, version: Int(request.version)) { draft in
      for path in request.updateMask.paths {
        switch path {
        case "name": draft.name = message.name
        case "config": draft.config = JSONValue(message.config).objectValue ?? [:]
        case "is_enabled": draft.isEnabled = message.isEnabled
        case "order_index": draft.orderIndex = Int(message.orderIndex)
        default: throw AgentError.invalidArgument(field: "update_mask", reason: "\(path) is not an updatable field (name, config, is_enabled, order_index)")
        }
      }
    }
    return Self.message(plugin)
  }

  public func removePlugin(_ request: Platform_Agent_V1_RemovePluginRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
    let caller = try context.requireCaller()
    try await self.agents.removePlugin(
      try Self.id(request.pluginID, field: "plugin_id"), of: try Self.id(request.agentID, field: "agent_id"), owner: caller.userID,
      version: request.version == 0 ? nil : Int(request.version))
    return Google_Protobuf_Empty()
  }

  public func listPlugins(
    _ request: Platform_Agent_V1_ListPluginsRequest, context: ServerContext
  ) async throws -> Platform_Agent_V1_ListPluginsResponse {
    let caller = try context.requireCaller()
    let agentID = try Self.id(request.agentID, field: "agent_id")
    guard let limit = PageToken.pageSize(request.pageSize, default: Agent.maxPlugins, maximum: Agent.maxPlugins) else {
      throw AgentError.invalidArgument(field: "page_size", reason: "must be 0 to \(Agent.maxPlugins)")
    }
    let filter = "\(agentID.lowercasedString)/\(request.includeDisabled)"
    let after = try PageToken.cursor(request.pageToken, filter: filter, as: AgentStore.PluginCursor.self)
    let page = try await self.agents.plugins(
      of: agentID, owner: caller.userID, includeDisabled: request.includeDisabled, after: after, limit: limit)
    return .with {
      $0.plugins = page.plugins.map(Self.message)
      $0.totalSize = Int32(clamping: page.total)
      if page.more, let last = page.plugins.last {
        $0.nextPageToken = PageToken.encode(after: AgentStore.PluginCursor(orderIndex: last.orderIndex, id: last.id), filter: filter)
      }
    }
  }

  // MARK: - Messages

  static func id(_ text: String, field: String) throws(AgentError) -> UUID {
    guard let id = UUID(strict: text) else { throw .invalidArgument(field: field, reason: "must be a UUID") }
    return id
  }

  static func status(_ status: Platform_Agent_V1_AgentStatus, default fallback: Agent.Status) throws(AgentError) -> Agent.Status {
    switch status {
    case .unspecified: fallback
    case .active: .active
    case .inactive: .inactive
    case .archived: .archived
    case .UNRECOGNIZED: throw .invalidArgument(field: "agent.status", reason: "is not an agent status")
    }
  }

  static func kind(_ type: Platform_Agent_V1_PluginType) throws(AgentError) -> AgentPlugin.Kind {
    switch type {
    case .codeExecutor: .codeExecutor
    case .textToSql: .textToSQL
    case .knowledgeRag: .knowledgeRAG
    case .webSearch: .webSearch
    case .fileUpload: .fileUpload
    case .unspecified, .UNRECOGNIZED:
      throw .invalidArgument(field: "plugin.plugin_type", reason: "must be one of code_executor, text_to_sql, knowledge_rag, web_search, file_upload")
    }
  }

  /// The settings a request gives, checked: all of them (`paths` nil, or "settings"), or the
  /// named ones (`settings.temperature`, …) over `base`.
  func settings(_ message: Platform_Agent_V1_ModelSettings, base: ModelSettings?, paths: [String]?) throws(AgentError) -> ModelSettings {
    let whole = paths == nil || paths?.contains("settings") == true || base == nil
    func take(_ name: String) -> Bool { whole || paths?.contains("settings.\(name)") == true }
    if let paths {
      for path in paths where path != "settings" && !["settings.temperature", "settings.max_tokens", "settings.top_p", "settings.extra"].contains(path) {
        throw .invalidArgument(field: "update_mask", reason: "\(path) is not an updatable field")
      }
    }
    return try ModelSettings.checked(
      temperature: take("temperature") ? (message.hasTemperature ? message.temperature : nil) : base?.temperature,
      maxTokens: take("max_tokens") ? (message.hasMaxTokens ? Int(message.maxTokens) : nil) : base?.maxTokens,
      topP: take("top_p") ? (message.hasTopP ? message.topP : nil) : base?.topP,
      extra: take("extra") ? JSONValue(message.extra).objectValue ?? [:] : base?.extra ?? [:],
      models: self.agents.models, field: "agent.settings")
  }

  static func message(_ agent: Agent, plugins: [AgentPlugin]) -> Platform_Agent_V1_Agent {
    .with {
      $0.id = agent.id.lowercasedString
      $0.userID = agent.ownerID.lowercasedString
      $0.personaID = agent.personaID.lowercasedString
      $0.name = agent.name
      $0.description_p = agent.description
      $0.status =
        switch agent.status {
        case .active: .active
        case .inactive: .inactive
        case .archived: .archived
        }
      $0.settings = .with {
        $0.temperature = agent.settings.temperature
        $0.maxTokens = Int32(agent.settings.maxTokens)
        $0.topP = agent.settings.topP
        $0.extra = JSONValue.object(agent.settings.extra).protobufStruct
      }
      $0.metadata = agent.metadata.protobufStruct
      $0.version = Int32(agent.version)
      $0.plugins = plugins.map(Self.message)
      $0.createTime = Google_Protobuf_Timestamp(date: agent.createdAt)
      $0.updateTime = Google_Protobuf_Timestamp(date: agent.updatedAt)
      if let deleted = agent.deletedAt { $0.deleteTime = Google_Protobuf_Timestamp(date: deleted) }
    }
  }

  static func message(_ plugin: AgentPlugin) -> Platform_Agent_V1_AgentPlugin {
    .with {
      $0.id = plugin.id.lowercasedString
      $0.agentID = plugin.agentID.lowercasedString
      $0.name = plugin.name
      $0.pluginType =
        switch plugin.kind {
        case .codeExecutor: .codeExecutor
        case .textToSQL: .textToSql
        case .knowledgeRAG: .knowledgeRag
        case .webSearch: .webSearch
        case .fileUpload: .fileUpload
        }
      $0.config = plugin.config.protobufStruct
      $0.isEnabled = plugin.isEnabled
      $0.orderIndex = Int32(plugin.orderIndex)
      $0.createTime = Google_Protobuf_Timestamp(date: plugin.createdAt)
      $0.updateTime = Google_Protobuf_Timestamp(date: plugin.updatedAt)
    }
  }
}
