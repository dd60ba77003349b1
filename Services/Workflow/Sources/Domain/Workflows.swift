public import Foundation
public import Logging
public import PlatformCore

/// Workflows and their snapshots: created, read, listed, changed, validated, published,
/// restored and deleted by their owner.
public struct Workflows: Sendable {
  let store: WorkflowStore
  /// Seals schedules' API keys (WORKFLOW_ENCRYPTION_KEY).
  let secrets: SecretBox?
  let logger: Logger

  public init(store: WorkflowStore, secrets: SecretBox?, logger: Logger) {
    self.store = store
    self.secrets = secrets
    self.logger = logger
  }

  /// The fields a caller gives.
  public struct Draft: Sendable, Equatable {
    public var name: String
    public var description: String
    public var status: Workflow.Status
    public var definition: WorkflowDefinition
    public var metadata: [String: JSONValue]
    public var tags: [String]
    public var schedules: [WorkflowSchedule]

    public init(
      name: String, description: String = "", status: Workflow.Status = .draft, definition: WorkflowDefinition,
      metadata: [String: JSONValue] = [:], tags: [String] = [], schedules: [WorkflowSchedule] = []
    ) {
      self.name = name
      self.description = description
      self.status = status
      self.definition = definition
      self.metadata = metadata
      self.tags = tags
      self.schedules = schedules
    }
  }

  /// `draft` checked field by field (INVALID_ARGUMENT naming the first bad one); an ACTIVE one
  /// must also be a valid DAG (FAILED_PRECONDITION listing its issues).
  static func checked(_ draft: Draft) throws(ServiceError) -> Draft {
    var draft = draft
    draft.name = draft.name.trimmingCharacters(in: .whitespaces)
    guard (1...Workflow.maxNameCharacters).contains(draft.name.count), !draft.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    else {
      throw .invalidArgument(field: "workflow.name", reason: "must be 1 to \(Workflow.maxNameCharacters) characters without control characters")
    }
    guard draft.description.utf8.count <= Workflow.maxDescriptionBytes, !draft.description.utf8.contains(0) else {
      throw .invalidArgument(field: "workflow.description", reason: "must be at most \(Workflow.maxDescriptionBytes) bytes")
    }
    try draft.definition.checked()
    if let problem = JSONValue.object(draft.metadata).problem(maxDepth: NestingLimit.defaultDepth, maxBytes: Workflow.maxMetadataBytes) {
      throw .invalidArgument(field: "workflow.metadata", reason: problem)
    }
    guard draft.tags.count <= Workflow.maxTags else { throw .invalidArgument(field: "workflow.tags", reason: "at most \(Workflow.maxTags) tags") }
    var tags: [String] = []
    for tag in draft.tags {
      let tag = tag.trimmingCharacters(in: .whitespaces)
      guard (1...Workflow.maxTagCharacters).contains(tag.count), !tag.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
        throw .invalidArgument(field: "workflow.tags", reason: "each tag must be 1 to \(Workflow.maxTagCharacters) characters")
      }
      if !tags.contains(tag) { tags.append(tag) }
    }
    draft.tags = tags
    draft.schedules = try WorkflowSchedule.checked(draft.schedules)
    if draft.status == .active {
      let plan = WorkflowPlan(draft.definition)
      guard plan.isValid else { throw .failedPrecondition("An active workflow must be valid: \(Self.describe(plan))") }
    }
    return draft
  }

  static func describe(_ plan: WorkflowPlan) -> String {
    let problems = plan.issues.filter { !$0.isWarning }
    return problems.prefix(5).map(\.message).joined(separator: "; ") + (problems.count > 5 ? " (and \(problems.count - 5) more)" : "")
  }

  public func create(_ draft: Draft, owner: UUID, requestID: UUID?) async throws -> Workflow {
    var draft = try Self.checked(draft)
    draft.schedules = try WorkflowSchedule.sealingKeys(draft.schedules, previous: [], secrets: self.secrets)
    let now = Date()
    let workflow = Workflow(
      id: UUID(), userID: owner, name: draft.name, description: draft.description, status: draft.status, version: 1, definition: draft.definition,
      metadata: draft.metadata, tags: draft.tags, schedules: draft.schedules, createdAt: now, updatedAt: now)
    let (created, isNew) = try await self.store.insert(workflow, requestID: requestID)
    if isNew && created.status == .active { _ = try await self.store.snapshot(created, createdBy: owner, published: true) }
    return created
  }

  public func workflow(_ id: UUID, owner: UUID) async throws -> Workflow {
    guard let workflow = try await self.store.workflow(id, owner: owner) else { throw ServiceError.notFound("Workflow not found") }
    return workflow
  }

  public func list(
    owner: UUID, status: Workflow.Status?, tags: [String], query: String?, after: WorkflowStore.ListCursor?, limit: Int
  ) async throws -> (workflows: [Workflow], total: Int, more: Bool) {
    try await self.store.list(owner: owner, status: status, tags: tags, query: query, after: after, limit: limit)
  }

  /// The fields an update may name.
  public static let updatablePaths: Set<String> = ["name", "description", "status", "nodes", "edges", "viewport", "metadata", "tags", "schedules"]

  /// Replaces the fields in `paths` with `patch`'s if the workflow is still at `version`.
  public func update(_ id: UUID, owner: UUID, paths: Set<String>, patch: Draft, version: Int) async throws -> Workflow {
    guard !paths.isEmpty else { throw ServiceError.invalidArgument(field: "update_mask", reason: "names no field") }
    if let unknown = paths.subtracting(Self.updatablePaths).sorted().first {
      throw ServiceError.invalidArgument(field: "update_mask", reason: "\(unknown) cannot be updated (updatable: \(Self.updatablePaths.sorted().joined(separator: ", ")))")
    }
    let current = try await self.workflow(id, owner: owner)
    guard version == current.version else {
      throw ServiceError.failedPrecondition("The workflow is at version \(current.version), not \(version); read it again")
    }
    if current.status == .archived && !(paths == ["status"] && patch.status != .archived) {
      throw ServiceError.failedPrecondition("The workflow is archived (read-only); change its status first")
    }
    var draft = Draft(
      name: current.name, description: current.description, status: current.status, definition: current.definition, metadata: current.metadata,
      tags: current.tags, schedules: current.schedules)
    if paths.contains("name") { draft.name = patch.name }
    if paths.contains("description") { draft.description = patch.description }
    if paths.contains("status") { draft.status = patch.status }
    if paths.contains("nodes") { draft.definition.nodes = patch.definition.nodes }
    if paths.contains("edges") { draft.definition.edges = patch.definition.edges }
    if paths.contains("viewport") { draft.definition.viewport = patch.definition.viewport }
    if paths.contains("metadata") { draft.metadata = patch.metadata }
    if paths.contains("tags") { draft.tags = patch.tags }
    if paths.contains("schedules") { draft.schedules = patch.schedules }
    draft = try Self.checked(draft)
    draft.schedules = try WorkflowSchedule.sealingKeys(draft.schedules, previous: current.schedules, secrets: self.secrets)
    var updated = current
    updated.name = draft.name
    updated.description = draft.description
    updated.status = draft.status
    updated.definition = draft.definition
    updated.metadata = draft.metadata
    updated.tags = draft.tags
    updated.schedules = draft.schedules
    guard let written = try await self.store.update(updated, expected: version, previous: current, editor: owner) else {
      throw ServiceError.failedPrecondition("The workflow changed while it was being updated; read it again")
    }
    return written
  }

  /// Soft-deletes the workflow; returns the executions that were cancelled with it.
  public func delete(_ id: UUID, owner: UUID, version: Int?) async throws -> [UUID] {
    switch try await self.store.softDelete(id, owner: owner, version: version) {
    case .done(let cancelled): return cancelled
    case .notFound: throw ServiceError.notFound("Workflow not found")
    case .versionMismatch: throw ServiceError.failedPrecondition("The workflow is not at version \(version ?? 0); read it again")
    }
  }

  /// Validates the current definition and makes the workflow ACTIVE with a published snapshot.
  public func publish(_ id: UUID, owner: UUID, version: Int?) async throws -> Workflow {
    let current = try await self.workflow(id, owner: owner)
    if let version, version != current.version {
      throw ServiceError.failedPrecondition("The workflow is at version \(current.version), not \(version); read it again")
    }
    guard current.status != .archived else { throw ServiceError.failedPrecondition("The workflow is archived; change its status first") }
    let plan = WorkflowPlan(current.definition)
    guard plan.isValid else { throw ServiceError.failedPrecondition("The workflow is not valid: \(Self.describe(plan))") }
    guard let published = try await self.store.publish(current, editor: owner) else {
      throw ServiceError.failedPrecondition("The workflow changed while it was being published; read it again")
    }
    return published
  }

  /// Copies a snapshot's definition into the workflow as a new DRAFT version.
  public func restore(_ id: UUID, snapshotVersion: Int, owner: UUID, version: Int?) async throws -> Workflow {
    let current = try await self.workflow(id, owner: owner)
    if let version, version != current.version {
      throw ServiceError.failedPrecondition("The workflow is at version \(current.version), not \(version); read it again")
    }
    guard current.status != .archived else { throw ServiceError.failedPrecondition("The workflow is archived; change its status first") }
    guard let snapshot = try await self.store.snapshot(of: id, version: snapshotVersion) else {
      throw ServiceError.notFound("The workflow has no snapshot of version \(snapshotVersion)")
    }
    var restored = current
    restored.definition = snapshot.definition
    restored.status = .draft
    guard let written = try await self.store.update(restored, expected: current.version, previous: current, editor: owner) else {
      throw ServiceError.failedPrecondition("The workflow changed while it was being restored; read it again")
    }
    return written
  }

  public func snapshots(
    of id: UUID, owner: UUID, after: WorkflowStore.SnapshotCursor?, limit: Int
  ) async throws -> (snapshots: [WorkflowStore.Snapshot], total: Int, more: Bool) {
    _ = try await self.workflow(id, owner: owner)
    return try await self.store.snapshots(of: id, after: after, limit: limit)
  }
}
