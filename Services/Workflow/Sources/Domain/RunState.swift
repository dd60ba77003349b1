public import PlatformCore

/// Where a run stands, as the executor sees it: each node's status and output, and which
/// completed nodes failed under `fail_branch`. Decides which nodes run next and which are
/// skipped; pure, so it is tested directly.
public struct RunState: Sendable {
  public let plan: WorkflowPlan
  public private(set) var status: [String: NodeExecution.Status] = [:]
  public private(set) var outputs: [String: JSONValue] = [:]
  /// Completed nodes whose failure took their `fail` branch.
  public private(set) var failBranches: Set<String> = []
  public let input: JSONValue

  public init(plan: WorkflowPlan, input: JSONValue, rows: [NodeExecution]) {
    self.plan = plan
    self.input = input
    for id in plan.order { self.status[id] = .pending }
    for row in rows where plan.nodes[row.nodeID] != nil {
      self.status[row.nodeID] = row.status
      if row.status == .completed {
        self.outputs[row.nodeID] = row.output ?? .null
        if row.error != nil, plan.nodes[row.nodeID]?.policy.onError == .failBranch { self.failBranches.insert(row.nodeID) }
      }
    }
  }

  public mutating func started(_ id: String) { self.status[id] = .running }

  public mutating func completed(_ id: String, output: JSONValue, tookFailBranch: Bool) {
    self.status[id] = .completed
    self.outputs[id] = output
    if tookFailBranch { self.failBranches.insert(id) }
  }

  public mutating func ended(_ id: String, as status: NodeExecution.Status) { self.status[id] = status }

  /// What references read now.
  public var scope: RunScope { RunScope(input: self.input, outputs: self.outputs) }

  /// Whether data flows along `edge`: its source completed, on this handle (a condition's
  /// branch, `fail` for a failure under fail_branch, any other handle otherwise), and its
  /// condition (if any) holds for the source's output.
  public func isTaken(_ edge: PlannedEdge) -> Bool {
    (try? self.taken(edge)) ?? false
  }

  /// Whether data flows along `edge`, or why its condition could not be evaluated (a type
  /// error in it: the run fails rather than guess a branch).
  func taken(_ edge: PlannedEdge) throws(ConditionExpression.EvaluationError) -> Bool {
    guard self.status[edge.source] == .completed, let source = self.plan.nodes[edge.source] else { return false }
    if self.failBranches.contains(edge.source) { return edge.sourceHandle == "fail" }
    if edge.sourceHandle == "fail" { return false }
    let output = self.outputs[edge.source] ?? .null
    if source.kind == .condition, output.objectValue?["branch"]?.stringValue != edge.sourceHandle { return false }
    guard let condition = edge.condition else { return true }
    let scope = self.scope
    return try condition.isTrue { path in
      path.first == "output" ? References.value(at: path.dropFirst(), in: output) : scope.lookup(path)
    }
  }

  /// Nodes that can run now (pending, every incoming edge decided, at least one taken) and
  /// nodes skipped now (pending, every incoming edge decided, none taken; or not reachable
  /// from the start node). Skips are applied at once, so they cascade in one call. Edges whose
  /// condition could not be evaluated are in `failed` (their target neither runs nor is skipped).
  public mutating func decide() -> (ready: [String], skipped: [String], failed: [String]) {
    var ready: [String] = []
    var skipped: [String] = []
    var failed: [String] = []
    for id in self.plan.order where self.status[id] == .pending {
      let incoming = self.plan.incoming[id] ?? []
      if incoming.isEmpty {
        if id == self.plan.startID { ready.append(id) } else {
          self.status[id] = .skipped
          skipped.append(id)
        }
        continue
      }
      guard incoming.allSatisfy({ self.status[$0.source]?.isSettled == true }) else { continue }
      var anyTaken = false
      var blocked = false
      for edge in incoming {
        do {
          if try self.taken(edge) { anyTaken = true }
        } catch {
          failed.append("Edge \(edge.id): \(error)")
          blocked = true
        }
      }
      if blocked { continue }
      if anyTaken {
        ready.append(id)
      } else {
        self.status[id] = .skipped
        skipped.append(id)
      }
    }
    return (ready, skipped, failed)
  }

  /// The outputs of `id`'s direct predecessors that completed along a taken edge, in edge order.
  public func upstream(of id: String) -> [(id: String, output: JSONValue)] {
    var seen = Set<String>()
    return (self.plan.incoming[id] ?? []).compactMap { edge in
      guard self.isTaken(edge), seen.insert(edge.source).inserted else { return nil }
      return (edge.source, self.outputs[edge.source] ?? .null)
    }
  }

  /// The run's output: the one end node's output, or every completed end node's by id.
  public var output: JSONValue {
    let ends = self.plan.endIDs.filter { self.status[$0] == .completed }
    if ends.count == 1 { return self.outputs[ends[0]] ?? .null }
    return .object(Dictionary(ends.map { ($0, self.outputs[$0] ?? .null) }, uniquingKeysWith: { first, _ in first }))
  }
}
