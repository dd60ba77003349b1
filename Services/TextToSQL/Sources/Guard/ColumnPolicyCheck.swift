/// The guard's fourth layer: column policies (seed 000 auth_policy, effect per field).
/// - `deny`: any query that reads the column is refused, by name, by `*` (`t.*`), by a
///   whole-row reference (`SELECT e FROM employees e`, `row_to_json(e)`), or by NATURAL JOIN or
///   USING, wherever it appears (CTEs, subqueries, conditions, ordering).
/// - `mask`: the column may only be *selected as it is* by the outermost SELECT, as a plain
///   column or through `*`; any other reading (a condition, a join, grouping, ordering, an
///   expression, a function, a subquery, a CTE, a set operation, DISTINCT, ordering by
///   position) is refused, because it would reveal the values the mask hides
///   (`WHERE ssn LIKE '1%'`). Its values are then replaced in the result (`ResultMasker`).
///
/// Names are resolved conservatively: an unqualified column with a protected column's name
/// counts as reading it when the protected table is anywhere in the query, whichever table it
/// really belongs to; a policy refuses more, never less.
public struct ColumnPolicies: Sendable, Equatable {
  public enum Effect: Sendable, Equatable {
    case deny
    case mask(MaskKind)
  }

  public enum MaskKind: String, Sendable, Equatable {
    case null, hash, partial
  }

  public struct Rule: Sendable, Equatable {
    public var column: ColumnName
    public var effect: Effect
    /// The auth_policy row.
    public var id: Int64

    public init(column: ColumnName, effect: Effect, id: Int64) {
      self.column = column
      self.effect = effect
      self.id = id
    }
  }

  public var rules: [Rule]

  public init(_ rules: [Rule]) {
    self.rules = rules
  }

  public var isEmpty: Bool { self.rules.isEmpty }

  public var denied: Set<ColumnName> {
    Set(self.rules.filter { $0.effect == .deny }.map(\.column))
  }

  public func rule(for column: ColumnName) -> Rule? {
    self.rules.first { $0.column == column }
  }
}

/// A protected column a query reads, and how.
struct ColumnRead: Equatable {
  var rule: ColumnPolicies.Rule
  /// Read only as a plain output column of the outermost SELECT.
  var asOutput: Bool
}

extension SQLGuard {
  /// Refuses a query that reads a denied column, or a masked one other than as output.
  /// - Returns: the masked columns it outputs (the rules that apply), or the refusal.
  static func checkColumns(_ tree: ParseTree, policies: ColumnPolicies) -> Result<[ColumnPolicies.Rule], Refusal> {
    guard !policies.isEmpty, let root = Self.rootSelect(tree) else { return .success([]) }
    // Every occurrence of a protected table, with the name it goes by and its SELECT.
    struct Occurrence {
      var table: String
      var exposed: String
      var select: Int
      var node: Int
    }
    let tables = Set(policies.rules.map(\.column.table))
    var occurrences: [Occurrence] = []
    for node in tree.nodes.indices where tree.nodes[node].key == "RangeVar" {
      let relation = (tree.text(node, "relname") ?? "").lowercased()
      let schema = tree.text(node, "schemaname")?.lowercased()
      for table in tables {
        let parts = table.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[1] == relation, schema == nil || schema == parts[0] else { continue }
        let alias = tree.member(node, "alias").flatMap { tree.text($0, "aliasname") }?.lowercased()
        occurrences.append(Occurrence(table: table, exposed: alias ?? relation, select: Self.enclosingSelect(node, tree) ?? -1, node: node))
      }
    }
    guard !occurrences.isEmpty else { return .success([]) }
    let rootIsPlain = tree.text(root, "op").map { $0 == "SETOP_NONE" } ?? true
    var reads: [ColumnRead] = []

    func record(_ rule: ColumnPolicies.Rule, asOutput: Bool) {
      reads.append(ColumnRead(rule: rule, asOutput: asOutput))
    }
    /// Whether `node` is the whole value of an output column of the outermost SELECT.
    func isOutput(_ columnRef: Int) -> Bool {
      let value = tree.nodes[columnRef].parent
      guard rootIsPlain, value >= 0, tree.nodes[value].key == "val" else { return false }
      let target = tree.nodes[value].parent
      guard target >= 0, tree.nodes[target].key == "ResTarget" else { return false }
      let item = tree.nodes[target].parent
      guard item >= 0 else { return false }
      let list = tree.nodes[item].parent
      return list >= 0 && tree.nodes[list].key == "targetList" && tree.nodes[list].parent == root
    }

    for node in tree.nodes.indices {
      switch tree.nodes[node].key {
      case "ColumnRef":
        guard let fields = tree.member(node, "fields") else { continue }
        let parts = tree.nodes[fields].children
        let select = Self.enclosingSelect(node, tree)
        let output = isOutput(node)
        let isStar = parts.last.map { tree.member($0, "A_Star") != nil } ?? false
        let names = parts.compactMap { part in tree.member(part, "String").flatMap { tree.text($0, "sval") }?.lowercased() }
        for occurrence in occurrences {
          for rule in policies.rules where rule.column.table == occurrence.table {
            let column = rule.column.column
            var reads = false
            var asOutput = output
            if isStar {
              if names.isEmpty {
                // `*` reads every table of its own SELECT's FROM.
                reads = occurrence.select == select
              } else {
                reads = names.last == occurrence.exposed || names.joined(separator: ".") == occurrence.table
              }
              asOutput = output && occurrence.select == root
            } else if names.count == 1 {
              // A column of that name, or the whole row of the table.
              reads = names[0] == column || names[0] == occurrence.exposed
              if names[0] == occurrence.exposed && names[0] != column { asOutput = false }
            } else if names.count >= 2 {
              let qualifier = names[names.count - 2]
              reads = names.last == column && (qualifier == occurrence.exposed || qualifier == occurrence.table.split(separator: ".").last.map(String.init))
            }
            if reads { record(rule, asOutput: asOutput && occurrence.select == root) }
          }
        }
      case "JoinExpr":
        let natural = tree.member(node, "isNatural").flatMap { tree.nodes[$0].text } == "true"
        let using = Set((tree.names(tree.member(node, "usingClause")) ?? []).map { $0.lowercased() })
        guard natural || !using.isEmpty else { continue }
        for occurrence in occurrences where Self.isInside(occurrence.node, node, tree) {
          for rule in policies.rules where rule.column.table == occurrence.table && (natural || using.contains(rule.column.column)) {
            record(rule, asOutput: false)
          }
        }
      default:
        break
      }
    }
    guard !reads.isEmpty else { return .success([]) }
    for read in reads where read.rule.effect == .deny {
      return .failure(.column("\(read.rule.column) is denied by a column policy"))
    }
    if let read = reads.first(where: { !$0.asOutput }) {
      return .failure(.column("\(read.rule.column) is masked: it may be selected as it is, not used in a condition, join, grouping, ordering, expression or subquery"))
    }
    // Selected as it is; but not behind DISTINCT or ordering/grouping by position.
    if tree.member(root, "distinctClause") != nil {
      return .failure(.column("a masked column may not be selected with DISTINCT"))
    }
    for clause in ["sortClause", "groupClause"] {
      guard let list = tree.member(root, clause) else { continue }
      if tree.nodes.indices.contains(where: { tree.nodes[$0].key == "A_Const" && Self.isInside($0, list, tree) }) {
        return .failure(.column("a query with a masked column may not order or group by position"))
      }
    }
    var seen = Set<ColumnName>()
    return .success(reads.map(\.rule).filter { seen.insert($0.column).inserted })
  }

  /// The statement's own SELECT.
  static func rootSelect(_ tree: ParseTree) -> Int? {
    guard let statements = tree.member(0, "stmts"), let first = tree.nodes[statements].children.first,
      let wrapper = tree.member(first, "stmt")
    else { return nil }
    return tree.member(wrapper, "SelectStmt")
  }

  /// The SelectStmt `node` belongs to (for a RangeVar, the one whose FROM it is in).
  static func enclosingSelect(_ node: Int, _ tree: ParseTree) -> Int? {
    var current = tree.nodes[node].parent
    while current >= 0 {
      if tree.nodes[current].key == "SelectStmt" { return current }
      current = tree.nodes[current].parent
    }
    return nil
  }
}
