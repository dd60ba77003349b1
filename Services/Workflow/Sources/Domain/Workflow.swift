public import Foundation
public import PlatformCore

/// A workflow (workflow_db.workflows): a DAG of nodes in VueFlow's JSON shape, owned by a user.
public struct Workflow: Sendable, Equatable {
  /// draft → active (published) ⇄ paused; any → archived (read-only). Drafts and active
  /// workflows run; paused and archived ones do not.
  public enum Status: String, Sendable, CaseIterable {
    case draft, active, paused, archived

    public var isRunnable: Bool { self == .draft || self == .active }
  }

  public var id: UUID
  public var userID: UUID
  public var name: String
  public var description: String
  public var status: Status
  public var version: Int
  public var definition: WorkflowDefinition
  public var metadata: [String: JSONValue]
  public var tags: [String]
  public var schedules: [WorkflowSchedule]
  public var createdAt: Date
  public var updatedAt: Date
  public var publishedAt: Date?
  public var deletedAt: Date?

  public static let maxNameCharacters = 100
  public static let maxDescriptionBytes = 8192
  public static let maxTags = 20
  public static let maxTagCharacters = 50
  public static let maxMetadataBytes = 32768
  public static let maxSchedules = 10
}

/// What runs: the nodes, the edges between them, and the canvas viewport.
public struct WorkflowDefinition: Sendable, Equatable {
  public var nodes: [WorkflowNode]
  public var edges: [WorkflowEdge]
  public var viewport: JSONValue

  public init(nodes: [WorkflowNode], edges: [WorkflowEdge], viewport: JSONValue = Self.defaultViewport) {
    self.nodes = nodes
    self.edges = edges
    self.viewport = viewport
  }

  public static let defaultViewport = JSONValue.object(["x": .number(0), "y": .number(0), "zoom": .number(1)])
  public static let maxNodes = 500
  public static let maxEdges = 2000
  /// A node's data (its configuration), as JSON text.
  public static let maxNodeDataBytes = 65536
  /// A node's extra VueFlow properties, as JSON text.
  public static let maxExtraBytes = 8192
  public static let maxConditionBytes = 4096

  /// As workflow_snapshots.snapshot_data holds it (plus the workflow's name there).
  public var json: JSONValue {
    .object(["nodes": .array(self.nodes.map(\.json)), "edges": .array(self.edges.map(\.json)), "viewport": self.viewport])
  }

  public init(stored: JSONValue) {
    let object = stored.objectValue ?? [:]
    guard case .array(let nodes)? = object["nodes"], case .array(let edges)? = object["edges"] else {
      self.init(nodes: [], edges: [])
      return
    }
    self.init(nodes: nodes.map(WorkflowNode.init(stored:)), edges: edges.map(WorkflowEdge.init(stored:)), viewport: object["viewport"] ?? Self.defaultViewport)
  }

  /// Malformed input, as INVALID_ARGUMENT naming the field: sizes, ids, lengths, nesting. A
  /// definition that passes may still not be a runnable DAG (`WorkflowValidator` says why).
  public func checked(field: String = "workflow") throws(ServiceError) {
    guard self.nodes.count <= Self.maxNodes else {
      throw .invalidArgument(field: "\(field).nodes", reason: "at most \(Self.maxNodes) nodes (found \(self.nodes.count))")
    }
    guard self.edges.count <= Self.maxEdges else {
      throw .invalidArgument(field: "\(field).edges", reason: "at most \(Self.maxEdges) edges (found \(self.edges.count))")
    }
    for (index, node) in self.nodes.enumerated() {
      let path = "\(field).nodes[\(index)]"
      try Self.checkID(node.id, field: "\(path).id")
      guard (1...50).contains(node.type.utf8.count) else { throw .invalidArgument(field: "\(path).type", reason: "must be 1 to 50 bytes") }
      guard node.label.utf8.count <= 200 else { throw .invalidArgument(field: "\(path).label", reason: "must be at most 200 bytes") }
      if let problem = JSONValue.object(node.data).problem(maxDepth: NestingLimit.defaultDepth, maxBytes: Self.maxNodeDataBytes) {
        throw .invalidArgument(field: "\(path).data", reason: problem)
      }
      if let problem = JSONValue.object(node.extra).problem(maxDepth: 8, maxBytes: Self.maxExtraBytes) {
        throw .invalidArgument(field: "\(path).extra", reason: problem)
      }
      guard node.position.x.isFinite, node.position.y.isFinite else {
        throw .invalidArgument(field: "\(path).position", reason: "must be finite numbers")
      }
    }
    for (index, edge) in self.edges.enumerated() {
      let path = "\(field).edges[\(index)]"
      try Self.checkID(edge.id, field: "\(path).id")
      guard (1...100).contains(edge.source.utf8.count) else { throw .invalidArgument(field: "\(path).source", reason: "must name a node") }
      guard (1...100).contains(edge.target.utf8.count) else { throw .invalidArgument(field: "\(path).target", reason: "must name a node") }
      guard edge.sourceHandle.utf8.count <= 100, edge.targetHandle.utf8.count <= 100 else {
        throw .invalidArgument(field: "\(path).source_handle", reason: "handles must be at most 100 bytes")
      }
      guard edge.condition.utf8.count <= Self.maxConditionBytes else {
        throw .invalidArgument(field: "\(path).condition", reason: "must be at most \(Self.maxConditionBytes) bytes")
      }
      guard edge.label.utf8.count <= 200 else { throw .invalidArgument(field: "\(path).label", reason: "must be at most 200 bytes") }
      if let problem = JSONValue.object(edge.extra).problem(maxDepth: 8, maxBytes: Self.maxExtraBytes) {
        throw .invalidArgument(field: "\(path).extra", reason: problem)
      }
    }
    if let problem = self.viewport.problem(maxDepth: 2, maxBytes: 512) {
      throw .invalidArgument(field: "\(field).viewport", reason: problem)
    }
  }

  /// Node and edge ids: 1–100 characters of letters, digits, `_` and `-`, so that a reference
  /// `{{nodes.<id>.output…}}` can name any node.
  static func checkID(_ id: String, field: String) throws(ServiceError) {
    guard (1...100).contains(id.utf8.count),
      id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D })
    else {
      throw .invalidArgument(field: field, reason: "must be 1 to 100 letters, digits, '_' or '-'")
    }
  }
}

/// A VueFlow node.
public struct WorkflowNode: Sendable, Equatable {
  public var id: String
  public var type: String
  public var label: String
  public var position: (x: Double, y: Double)
  /// The kind's configuration.
  public var data: [String: JSONValue]
  /// Other VueFlow properties, kept for the editor.
  public var extra: [String: JSONValue]

  public init(id: String, type: String, label: String = "", position: (x: Double, y: Double) = (0, 0), data: [String: JSONValue] = [:], extra: [String: JSONValue] = [:]) {
    self.id = id
    self.type = type
    self.label = label
    self.position = position
    self.data = data
    self.extra = extra
  }

  public static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.id == rhs.id && lhs.type == rhs.type && lhs.label == rhs.label && lhs.position == rhs.position && lhs.data == rhs.data
      && lhs.extra == rhs.extra
  }

  static let ownKeys: Set<String> = ["id", "type", "label", "position", "data"]

  /// VueFlow's JSON: the extra properties at the top level beside id, type, label, position, data.
  public var json: JSONValue {
    var object = self.extra
    object["id"] = .string(self.id)
    object["type"] = .string(self.type)
    object["label"] = .string(self.label)
    object["position"] = .object(["x": .number(self.position.x), "y": .number(self.position.y)])
    object["data"] = .object(self.data)
    return .object(object)
  }

  public init(stored: JSONValue) {
    let object = stored.objectValue ?? [:]
    let position = object["position"]?.objectValue ?? [:]
    func number(_ value: JSONValue?) -> Double { if case .number(let number)? = value { number } else { 0 } }
    self.init(
      id: object["id"]?.stringValue ?? "", type: object["type"]?.stringValue ?? "", label: object["label"]?.stringValue ?? "",
      position: (number(position["x"]), number(position["y"])), data: object["data"]?.objectValue ?? [:],
      extra: object.filter { !Self.ownKeys.contains($0.key) })
  }
}

/// A VueFlow edge: data flows from `source` to `target`.
public struct WorkflowEdge: Sendable, Equatable {
  public var id: String
  public var source: String
  public var target: String
  public var sourceHandle: String
  public var targetHandle: String
  /// An expression over the source's output (`output.score > 0.5`); empty = always followed.
  public var condition: String
  public var label: String
  public var extra: [String: JSONValue]

  public init(
    id: String, source: String, target: String, sourceHandle: String = "", targetHandle: String = "", condition: String = "", label: String = "",
    extra: [String: JSONValue] = [:]
  ) {
    self.id = id
    self.source = source
    self.target = target
    self.sourceHandle = sourceHandle
    self.targetHandle = targetHandle
    self.condition = condition
    self.label = label
    self.extra = extra
  }

  static let ownKeys: Set<String> = ["id", "source", "target", "sourceHandle", "targetHandle", "condition", "label"]

  public var json: JSONValue {
    var object = self.extra
    object["id"] = .string(self.id)
    object["source"] = .string(self.source)
    object["target"] = .string(self.target)
    if !self.sourceHandle.isEmpty { object["sourceHandle"] = .string(self.sourceHandle) }
    if !self.targetHandle.isEmpty { object["targetHandle"] = .string(self.targetHandle) }
    if !self.condition.isEmpty { object["condition"] = .string(self.condition) }
    if !self.label.isEmpty { object["label"] = .string(self.label) }
    return .object(object)
  }

  public init(stored: JSONValue) {
    let object = stored.objectValue ?? [:]
    self.init(
      id: object["id"]?.stringValue ?? "", source: object["source"]?.stringValue ?? "", target: object["target"]?.stringValue ?? "",
      sourceHandle: object["sourceHandle"]?.stringValue ?? "", targetHandle: object["targetHandle"]?.stringValue ?? "",
      condition: object["condition"]?.stringValue ?? "", label: object["label"]?.stringValue ?? "",
      extra: object.filter { !Self.ownKeys.contains($0.key) })
  }
}

/// A cron trigger: each fire time runs the workflow once, across replicas.
public struct WorkflowSchedule: Sendable, Equatable {
  public var id: String
  public var cron: String
  /// An IANA zone; empty = UTC.
  public var timeZone: String
  public var inputs: [String: JSONValue]
  public var enabled: Bool
  /// The API key scheduled runs call other services with, as given (never stored: `sealedKey`).
  public var apiKey: String?
  /// That key sealed with WORKFLOW_ENCRYPTION_KEY.
  public var sealedKey: SealedKey?

  public struct SealedKey: Sendable, Equatable {
    public var keyID: String
    public var sealed: String
  }

  public init(
    id: String, cron: String, timeZone: String = "", inputs: [String: JSONValue] = [:], enabled: Bool = true, apiKey: String? = nil,
    sealedKey: SealedKey? = nil
  ) {
    self.id = id
    self.cron = cron
    self.timeZone = timeZone
    self.inputs = inputs
    self.enabled = enabled
    self.apiKey = apiKey
    self.sealedKey = sealedKey
  }

  /// The AES-GCM context a schedule's key is sealed for.
  static let keyContext = "workflow-schedule-api-key"

  public var json: JSONValue {
    var object: [String: JSONValue] = [
      "id": .string(self.id), "cron": .string(self.cron), "time_zone": .string(self.timeZone), "inputs": .object(self.inputs),
      "enabled": .bool(self.enabled),
    ]
    if let key = self.sealedKey { object["api_key"] = .object(["key_id": .string(key.keyID), "sealed": .string(key.sealed)]) }
    return .object(object)
  }

  public init(stored: JSONValue) {
    let object = stored.objectValue ?? [:]
    var enabled = true
    if case .bool(let value)? = object["enabled"] { enabled = value }
    let key = object["api_key"]?.objectValue
    self.init(
      id: object["id"]?.stringValue ?? "", cron: object["cron"]?.stringValue ?? "", timeZone: object["time_zone"]?.stringValue ?? "",
      inputs: object["inputs"]?.objectValue ?? [:], enabled: enabled,
      sealedKey: key.flatMap { key in
        guard let id = key["key_id"]?.stringValue, let sealed = key["sealed"]?.stringValue else { return nil }
        return SealedKey(keyID: id, sealed: sealed)
      })
  }

  /// The zone fire times are computed in.
  public var zone: TimeZone? { self.timeZone.isEmpty ? TimeZone(identifier: "UTC") : TimeZone(identifier: self.timeZone) }

  /// The schedules with their given API keys sealed (and, for a schedule given none, the key the
  /// schedule of that id had in `previous`).
  /// - Throws: FAILED_PRECONDITION when a key is given and nothing can seal it.
  static func sealingKeys(_ schedules: [WorkflowSchedule], previous: [WorkflowSchedule], secrets: SecretBox?) throws -> [WorkflowSchedule] {
    try schedules.map { schedule in
      var schedule = schedule
      if let key = schedule.apiKey, !key.isEmpty {
        guard let secrets else {
          throw ServiceError.failedPrecondition("A schedule's api_key is kept sealed, and this service has no WORKFLOW_ENCRYPTION_KEY")
        }
        let sealed = try secrets.seal(Array(key.utf8), context: Self.keyContext)
        schedule.sealedKey = SealedKey(keyID: sealed.keyID, sealed: sealed.sealed)
      } else if schedule.sealedKey == nil {
        schedule.sealedKey = previous.first { $0.id == schedule.id }?.sealedKey
      }
      schedule.apiKey = nil
      return schedule
    }
  }

  /// The schedule's API key, opened; nil without one (or when it cannot be opened).
  func openedKey(_ secrets: SecretBox?) -> String? {
    guard let key = self.sealedKey, let secrets, let plaintext = try? secrets.open(key.sealed, keyID: key.keyID, context: Self.keyContext) else {
      return nil
    }
    return String(decoding: plaintext, as: UTF8.self)
  }

  /// The schedules, checked: unique ids, cron expressions that parse, known zones, bounded inputs.
  public static func checked(_ schedules: [WorkflowSchedule], field: String = "workflow.schedules") throws(ServiceError) -> [WorkflowSchedule] {
    guard schedules.count <= Workflow.maxSchedules else {
      throw .invalidArgument(field: field, reason: "at most \(Workflow.maxSchedules) schedules")
    }
    var ids = Set<String>()
    for (index, schedule) in schedules.enumerated() {
      try WorkflowDefinition.checkID(schedule.id, field: "\(field)[\(index)].id")
      guard ids.insert(schedule.id).inserted else { throw .invalidArgument(field: "\(field)[\(index)].id", reason: "\(schedule.id) is used twice") }
      do {
        _ = try CronSchedule(parsing: schedule.cron)
      } catch {
        throw .invalidArgument(field: "\(field)[\(index)].cron", reason: error.description)
      }
      guard schedule.zone != nil else { throw .invalidArgument(field: "\(field)[\(index)].time_zone", reason: "is not a known time zone") }
      if let problem = JSONValue.object(schedule.inputs).problem(maxDepth: NestingLimit.defaultDepth, maxBytes: 16384) {
        throw .invalidArgument(field: "\(field)[\(index)].inputs", reason: problem)
      }
      if let key = schedule.apiKey, key.utf8.count > 512 || key.unicodeScalars.contains(where: { !$0.isASCII || $0.value < 0x21 || $0.value == 0x7F }) {
        throw .invalidArgument(field: "\(field)[\(index)].api_key", reason: "must be an API key (at most 512 printable ASCII characters)")
      }
    }
    return schedules
  }
}
