public import PlatformCore

/// A problem with a workflow definition, naming its node or edge.
public struct WorkflowIssue: Sendable, Equatable {
  public enum Code: String, Sendable {
    case cycle, duplicateID, danglingEdge, unknownNodeType, invalidNodeData, missingStart, missingEnd, unreachableNode, invalidCondition
    case unknownReference
  }

  public var code: Code
  public var message: String
  public var nodeID: String?
  public var edgeID: String?
  /// Warnings (an unreachable node) leave the workflow valid.
  public var isWarning: Bool

  public init(_ code: Code, _ message: String, node: String? = nil, edge: String? = nil, warning: Bool = false) {
    self.code = code
    self.message = message
    self.nodeID = node
    self.edgeID = edge
    self.isWarning = warning
  }
}

/// A node ready to run: its kind, data and policy.
public struct PlannedNode: Sendable {
  public var id: String
  public var kind: NodeKind
  public var data: [String: JSONValue]
  public var policy: NodePolicy
  /// A condition node's cases in order (`expression` alone is the case "true", else "false").
  public var cases: [(handle: String, expression: ConditionExpression)]
  /// The handle taken when no case holds.
  public var elseHandle: String
}

/// An edge as the executor follows it.
public struct PlannedEdge: Sendable {
  public var id: String
  public var source: String
  public var target: String
  public var sourceHandle: String
  public var condition: ConditionExpression?
}

/// A definition checked and compiled for running: the DAG of its nodes (notes left out), each
/// node's parsed policy and expressions, a topological order, and every issue found. Built once
/// per validation or run; `issues` is what ValidateWorkflow reports.
public struct WorkflowPlan: Sendable {
  public private(set) var nodes: [String: PlannedNode] = [:]
  /// Node ids in a topological order (when there is no cycle).
  public private(set) var order: [String] = []
  public private(set) var incoming: [String: [PlannedEdge]] = [:]
  public private(set) var outgoing: [String: [PlannedEdge]] = [:]
  public private(set) var startID: String?
  public private(set) var endIDs: [String] = []
  public private(set) var issues: [WorkflowIssue] = []

  public var isValid: Bool { !self.issues.contains { !$0.isWarning } }

  public init(_ definition: WorkflowDefinition) {
    var issues: [WorkflowIssue] = []
    // Nodes: unique ids, known kinds, valid data and policy.
    var seen = Set<String>()
    var nodeOrder: [String] = []
    var rawData: [String: [String: JSONValue]] = [:]
    var notes = Set<String>()
    for node in definition.nodes {
      guard seen.insert(node.id).inserted else {
        issues.append(.init(.duplicateID, "Two nodes have the id \(node.id)", node: node.id))
        continue
      }
      guard let kind = NodeKind(type: node.type) else {
        issues.append(.init(.unknownNodeType, "Node \(node.id) has the unknown type \"\(node.type.prefix(50))\"", node: node.id))
        continue
      }
      if kind == .note {
        notes.insert(node.id)
        continue
      }
      let (policy, policyProblems) = NodePolicy.parse(node.data, kind: kind)
      for problem in kind.problems(node.data) + policyProblems {
        issues.append(.init(.invalidNodeData, "Node \(node.id): \(problem)", node: node.id))
      }
      var cases: [(String, ConditionExpression)] = []
      var elseHandle = "else"
      if kind == .condition {
        if case .array(let list)? = node.data["cases"] {
          for item in list {
            guard let object = item.objectValue, let id = object["id"]?.stringValue, let source = object["expression"]?.stringValue else { continue }
            do { cases.append((id, try ConditionExpression(parsing: source))) } catch {
              issues.append(.init(.invalidCondition, "Node \(node.id), case \(id): \(error)", node: node.id))
            }
          }
        } else if let source = node.data["expression"]?.stringValue {
          elseHandle = "false"
          do { cases.append(("true", try ConditionExpression(parsing: source))) } catch {
            issues.append(.init(.invalidCondition, "Node \(node.id): \(error)", node: node.id))
          }
        }
      }
      self.nodes[node.id] = PlannedNode(id: node.id, kind: kind, data: node.data, policy: policy, cases: cases, elseHandle: elseHandle)
      nodeOrder.append(node.id)
      rawData[node.id] = node.data
      if kind == .start {
        if self.startID == nil { self.startID = node.id } else {
          issues.append(.init(.missingStart, "More than one start node (\(self.startID!) and \(node.id))", node: node.id))
        }
      }
      if kind == .end { self.endIDs.append(node.id) }
    }
    if self.startID == nil { issues.append(.init(.missingStart, "The workflow has no start node")) }
    if self.endIDs.isEmpty { issues.append(.init(.missingEnd, "The workflow has no end node")) }

    // Edges: unique ids, existing endpoints, handles the source has, conditions that parse.
    var edgeIDs = Set<String>()
    for edge in definition.edges {
      guard edgeIDs.insert(edge.id).inserted else {
        issues.append(.init(.duplicateID, "Two edges have the id \(edge.id)", edge: edge.id))
        continue
      }
      if notes.contains(edge.source) || notes.contains(edge.target) {
        issues.append(.init(.invalidNodeData, "Edge \(edge.id) touches a note, which takes no edges", edge: edge.id))
        continue
      }
      guard let source = self.nodes[edge.source], self.nodes[edge.target] != nil else {
        let missing = self.nodes[edge.source] == nil ? edge.source : edge.target
        issues.append(.init(.danglingEdge, "Edge \(edge.id) names the node \(missing.prefix(100)), which does not exist", edge: edge.id))
        continue
      }
      if edge.source == edge.target {
        issues.append(.init(.cycle, "Edge \(edge.id) leads from \(edge.source) to itself", node: edge.source, edge: edge.id))
        continue
      }
      if source.kind == .end {
        issues.append(.init(.invalidNodeData, "Edge \(edge.id) leaves the end node \(edge.source)", node: edge.source, edge: edge.id))
      }
      if self.nodes[edge.target]?.kind == .start {
        issues.append(.init(.invalidNodeData, "Edge \(edge.id) enters the start node \(edge.target)", node: edge.target, edge: edge.id))
      }
      if !edge.sourceHandle.isEmpty, edge.sourceHandle != "fail", let handles = source.kind.handles(source.data), !handles.contains(edge.sourceHandle) {
        issues.append(
          .init(
            .invalidNodeData, "Edge \(edge.id) leaves \(edge.source) from the handle \"\(edge.sourceHandle.prefix(100))\", which it does not have (\(handles.sorted().joined(separator: ", ")))",
            node: edge.source, edge: edge.id))
      }
      if source.kind == .condition && edge.sourceHandle.isEmpty {
        issues.append(.init(.invalidNodeData, "Edge \(edge.id) leaves the condition \(edge.source) without a handle (which branch is it?)", node: edge.source, edge: edge.id))
      }
      if edge.sourceHandle == "fail", source.policy.onError != .failBranch {
        issues.append(.init(.invalidNodeData, "Edge \(edge.id) leaves \(edge.source) from \"fail\", but its on_error is not fail_branch", node: edge.source, edge: edge.id))
      }
      var condition: ConditionExpression?
      if !edge.condition.isEmpty {
        do { condition = try ConditionExpression(parsing: edge.condition) } catch {
          issues.append(.init(.invalidCondition, "Edge \(edge.id): \(error)", edge: edge.id))
        }
      }
      let planned = PlannedEdge(id: edge.id, source: edge.source, target: edge.target, sourceHandle: edge.sourceHandle, condition: condition)
      self.outgoing[edge.source, default: []].append(planned)
      self.incoming[edge.target, default: []].append(planned)
    }

    // A topological order (Kahn); what is left is on a cycle.
    var indegree: [String: Int] = [:]
    for id in nodeOrder { indegree[id] = self.incoming[id]?.count ?? 0 }
    var ready = nodeOrder.filter { indegree[$0] == 0 }
    var order: [String] = []
    var next = 0
    while next < ready.count {
      let id = ready[next]
      next += 1
      order.append(id)
      for edge in self.outgoing[id] ?? [] {
        indegree[edge.target]! -= 1
        if indegree[edge.target] == 0 { ready.append(edge.target) }
      }
    }
    if order.count < nodeOrder.count {
      let onCycle = nodeOrder.filter { indegree[$0]! > 0 }
      for id in onCycle.prefix(20) {
        issues.append(.init(.cycle, "Node \(id) is on a cycle (or after one)", node: id))
      }
    }
    self.order = order

    // Reachability from the start node: nodes it never leads to never run.
    if let start = self.startID {
      var reached: Set<String> = [start]
      var stack = [start]
      while let id = stack.popLast() {
        for edge in self.outgoing[id] ?? [] where reached.insert(edge.target).inserted { stack.append(edge.target) }
      }
      for id in nodeOrder where !reached.contains(id) {
        issues.append(.init(.unreachableNode, "Node \(id) cannot be reached from the start node \(start); it never runs", node: id, warning: true))
      }
    }

    // References: each names an upstream node and a field it produces.
    if order.count == nodeOrder.count {
      var ancestors: [String: Set<String>] = [:]
      for id in order {
        var set = Set<String>()
        for edge in self.incoming[id] ?? [] {
          set.insert(edge.source)
          set.formUnion(ancestors[edge.source] ?? [])
        }
        ancestors[id] = set
      }
      for id in order {
        guard let node = self.nodes[id] else { continue }
        for problem in self.referenceProblems(node, upstream: ancestors[id] ?? []) {
          issues.append(.init(.unknownReference, "Node \(id): \(problem)", node: id))
        }
        for edge in self.outgoing[id] ?? [] {
          guard let condition = edge.condition else { continue }
          for path in condition.references {
            if let problem = self.problem(path, upstream: ancestors[id]!.union([id]), extraRoots: ["output"]) {
              issues.append(.init(.unknownReference, "Edge \(edge.id): \(problem)", edge: edge.id))
            } else if path.first == "output", path.count > 1, let fields = Self.outputFields(of: node), !fields.contains(path[1]) {
              issues.append(.init(.unknownReference, "Edge \(edge.id): \(node.id) produces no field \(path[1]) (it has \(fields.sorted().joined(separator: ", ")))", edge: edge.id))
            }
          }
        }
      }
    }
    self.issues = issues
  }

  /// The references of `node` that name no upstream node or a field it does not produce.
  private func referenceProblems(_ node: PlannedNode, upstream: Set<String>) -> [String] {
    var paths: [[String]] = []
    var problems: [String] = []
    var data = node.data
    switch node.kind {
    case .template:
      if let text = data.removeValue(forKey: "template")?.stringValue {
        paths += Self.templateNames(text).filter { $0.first == "nodes" || $0.first == "input" }
      }
    case .condition:
      data.removeValue(forKey: "cases")
      data.removeValue(forKey: "expression")
      paths += node.cases.flatMap { $0.expression.references }
    case .iteration:
      if let inner = data.removeValue(forKey: "node") {
        let found = References.paths(in: inner)
        for path in found.paths {
          if let problem = self.problem(path, upstream: upstream, extraRoots: ["item", "index"]) { problems.append(problem) }
        }
        problems += found.invalid.map { "{{\($0)}} is not a reference" }
      }
    default:
      break
    }
    data.removeValue(forKey: "default_output")
    let found = References.paths(in: .object(data))
    paths += found.paths
    problems += found.invalid.map { "{{\($0)}} is not a reference" }
    for path in paths {
      if let problem = self.problem(path, upstream: upstream, extraRoots: []) { problems.append(problem) }
    }
    return Array(problems.prefix(50))
  }

  /// Why `path` cannot be read before the node runs, if it cannot.
  private func problem(_ path: [String], upstream: Set<String>, extraRoots: Set<String>) -> String? {
    let joined = path.joined(separator: ".")
    switch path.first {
    case "input":
      return nil
    case "nodes":
      guard path.count >= 2 else { return "\(joined) names no node" }
      let id = path[1]
      guard let source = self.nodes[id] else { return "\(joined) names the node \(id), which does not exist" }
      guard upstream.contains(id) else { return "\(joined) names \(id), which does not run before it (not upstream)" }
      guard path.count >= 3, path[2] == "output" else { return "\(joined) must read nodes.\(id).output…" }
      if path.count >= 4, let fields = Self.outputFields(of: source), !fields.contains(path[3]) {
        return "\(joined): \(id) (\(source.kind.rawValue)) produces no field \(path[3]) (it has \(fields.sorted().joined(separator: ", ")))"
      }
      return nil
    case let root? where extraRoots.contains(root):
      return nil
    default:
      return "\(joined) must start with input or nodes"
    }
  }

  /// The fields `node`'s output may have: its kind's, plus `error` under fail_branch and the
  /// default output's under default; nil when they are not known before it runs.
  static func outputFields(of node: PlannedNode) -> Set<String>? {
    guard let fields = node.kind.outputFields(node.data) else { return nil }
    switch node.policy.onError {
    case .fail: return fields
    case .failBranch: return fields.union(["error"])
    case .useDefault(let output):
      guard let object = output.objectValue else { return nil }
      return fields.union(object.keys)
    }
  }

  /// The variable names of a Mustache template's tags, as paths (section names included).
  static func templateNames(_ text: String) -> [[String]] {
    References.spans(in: text).compactMap { span in
      var inner = span.inner.trimming(" ")
      guard let sigil = inner.first else { return nil }
      if "!=/>".contains(sigil) { return nil }
      if "#^&{".contains(sigil) { inner = inner.dropFirst().trimming(" {}") }
      return References.path(inner)
    }
  }
}
