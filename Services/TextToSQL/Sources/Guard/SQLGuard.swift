internal import CPgQuery
internal import Foundation

/// The guard's first three layers, decided on PostgreSQL's own parse tree (libpg_query, the
/// parser of PostgreSQL 15) before anything runs. Each is an allowlist, so what it does not know
/// is refused (fail closed):
/// 1. **The statement:** within the input limits (size, no NUL byte, depth, node count), it parses,
///    and it is exactly one plain SELECT: WITH only over SELECTs, no INTO, no locking clause;
///    every node of its tree is a kind a read-only query is made of (no utility statement, no
///    parameter, no XML, no table sample).
/// 2. **Functions, operators and types:** every function called (in expressions and in FROM) is an
///    aggregate, math, string, date/time, JSON, array, window or conditional function of the
///    allowlist, named plainly or as `pg_catalog.name`; every operator is a built-in one; every
///    cast is to a built-in scalar type; attribute notation (`(x).name`, which may call a function
///    `name(x)`) is refused. Names are compared as the parser resolved them (case folding,
///    quoting and `U&""` escapes already undone).
/// 3. **Relations:** no system catalog or schema (`pg_*`, `information_schema`), and, when given,
///    only the synced schema's tables and views (and the query's own CTEs).
///
/// The read-only transaction, the timeout and the caps that execution adds are the next layers.
public struct SQLGuard: Sendable {
  /// The largest statement, in bytes.
  public static let maxBytes = 64 * 1024
  /// The parse tree's limits: 1,000 nested subqueries or a 5,000-branch UNION exceed them.
  public static let maxDepth = 600
  public static let maxNodes = 40_000

  /// Relations the query may read, lowercased, as `schema.name` and bare `name` (nil: any
  /// relation that is not a system catalog).
  public var relations: Set<String>?
  /// The synced schema's columns per relation (lowercased; keyed by bare and schema-qualified
  /// name). With them, `t.f` must name a column of what `t` stands for in the query (a table, a
  /// subquery, a CTE, a function): PostgreSQL reads `t.f` as the function call `f(t)` when `t`
  /// has no column `f` (functional notation), which no function allowlist sees.
  public var columns: [String: Set<String>]?
  /// The functions queries may call: PostgreSQL's allowlist, or SQLite's for SQLite targets
  /// (where SQLite's authorizer checks them again).
  public var functionAllowlist: Set<String>
  /// The fourth layer: deny and mask per column.
  public var policies: ColumnPolicies

  public init(
    relations: Set<String>? = nil, columns: [String: Set<String>]? = nil, dialect: SQLDialect = .postgresql,
    policies: ColumnPolicies = ColumnPolicies([])
  ) {
    self.relations = relations
    self.columns = columns
    self.functionAllowlist = dialect == .sqlite ? Self.sqliteFunctions : Self.functions
    self.policies = policies
  }

  public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
    case input(String)
    case syntax(String, position: Int)
    case statement(String)
    case function(String)
    case `operator`(String)
    case type(String)
    case relation(String)
    case column(String)

    public var description: String {
      switch self {
      case .input(let why): "The statement \(why)"
      case .syntax(let message, let position): "The statement does not parse: \(message) (at character \(position))"
      case .statement(let why): "Only one plain SELECT is allowed: \(why)"
      case .function(let name): "The function \(name) is not allowed"
      case .operator(let name): "The operator \(name) is not allowed"
      case .type(let name): "Casting to \(name) is not allowed"
      case .relation(let name): "The relation \(name) is not allowed"
      case .column(let why): "Column policy: \(why)"
      }
    }

    /// Which layer refused.
    public var layer: String {
      switch self {
      case .input, .syntax, .statement: "parser"
      case .function, .operator, .type: "functions"
      case .relation: "relations"
      case .column: "columns"
      }
    }
  }

  /// What a checked statement reads.
  public struct Checked: Sendable, Equatable {
    /// The relations it names (as written, lowercased), CTEs excluded.
    public var relations: Set<String>
    public var functions: Set<String>
    /// The masked columns it selects (their values are replaced in results).
    public var masked: [ColumnPolicies.Rule] = []
    /// The statement as the parser delimited it (without a trailing semicolon): what runs.
    public var statement: String = ""
  }

  public func check(_ sql: String) -> Result<Checked, Refusal> {
    guard sql.utf8.count <= Self.maxBytes else { return .failure(.input("is longer than \(Self.maxBytes) bytes")) }
    guard !sql.utf8.contains(0) else { return .failure(.input("contains a NUL byte")) }
    return Self.parse(sql, maxDepth: Self.maxDepth, maxNodes: Self.maxNodes).flatMap { tree in
      self.check(tree).map { checked in
        var checked = checked
        checked.statement = Self.statementText(tree, sql)
        return checked
      }
    }
  }

  /// The text of the tree's only statement: `stmt_location` and `stmt_len` (0: to the end).
  private static func statementText(_ tree: ParseTree, _ sql: String) -> String {
    guard let statements = tree.member(0, "stmts"), let first = tree.nodes[statements].children.first else { return sql }
    let bytes = Array(sql.utf8)
    let start = tree.text(first, "stmt_location").flatMap { Int($0) } ?? 0
    let length = tree.text(first, "stmt_len").flatMap { Int($0) } ?? 0
    guard start >= 0, start <= bytes.count, length >= 0, start + length <= bytes.count else { return sql }
    return String(decoding: bytes[start..<(length == 0 ? bytes.count : start + length)], as: UTF8.self)
  }

  /// PostgreSQL's parse tree of `sql`, within the limits.
  static func parse(_ sql: String, maxDepth: Int, maxNodes: Int) -> Result<ParseTree, Refusal> {
    let parsed = pg_query_parse(sql)
    defer { pg_query_free_parse_result(parsed) }
    if let error = parsed.error {
      return .failure(.syntax(error.pointee.message.map { String(cString: $0) } ?? "syntax error", position: Int(error.pointee.cursorpos)))
    }
    guard let json = parsed.parse_tree else { return .failure(.input("could not be parsed")) }
    let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(json).assumingMemoryBound(to: UInt8.self), count: strlen(json)))
    do throws(ParseTree.Failure) {
      return .success(try ParseTree(json: bytes, maxDepth: maxDepth, maxNodes: maxNodes))
    } catch .tooDeep {
      return .failure(.input("is nested too deeply"))
    } catch .tooLarge {
      return .failure(.input("is too large (more than \(maxNodes) parse nodes)"))
    } catch {
      return .failure(.input("could not be parsed"))
    }
  }

  // MARK: - The rules

  private func check(_ tree: ParseTree) -> Result<Checked, Refusal> {
    guard let statements = tree.member(0, "stmts"), tree.nodes[statements].kind == .array else {
      return .failure(.statement("it is empty (or only a comment)"))
    }
    let list = tree.nodes[statements].children
    guard list.count == 1 else {
      return .failure(.statement(list.isEmpty ? "it is empty (or only a comment)" : "it holds \(list.count) statements"))
    }
    guard let wrapper = tree.member(list[0], "stmt"), let kind = tree.nodes[wrapper].children.first.flatMap({ tree.nodes[$0].key }),
      kind == "SelectStmt"
    else {
      let kind = tree.member(list[0], "stmt").flatMap { tree.nodes[$0].children.first }.flatMap { tree.nodes[$0].key } ?? "?"
      return .failure(.statement("it is a \(kind.replacingOccurrences(of: "Stmt", with: "")) statement"))
    }

    var cteNames = Set<String>()
    for node in tree.nodes.indices {
      switch tree.nodes[node].key {
      case "CommonTableExpr":
        if let name = tree.text(node, "ctename") { cteNames.insert(name.lowercased()) }
      case "intoClause":
        return .failure(.statement("SELECT INTO creates a table"))
      case "lockingClause":
        return .failure(.statement("FOR UPDATE/SHARE locks rows"))
      default: break
      }
    }
    let scopes = self.columns.map { Self.scopes(tree, schema: $0) }
    var checked = Checked(relations: [], functions: [])
    for node in tree.nodes.indices {
      guard let key = tree.nodes[node].key, let first = key.unicodeScalars.first, ("A"..."Z").contains(first) else { continue }
      guard Self.nodeKinds.contains(key) else { return .failure(Self.refusal(forNode: key)) }
      switch key {
      case "SelectStmt":
        if tree.member(node, "intoClause") != nil { return .failure(.statement("SELECT INTO creates a table")) }
        if tree.member(node, "lockingClause") != nil { return .failure(.statement("FOR UPDATE/SHARE locks rows")) }
      case "FuncCall":
        guard let parts = tree.names(tree.member(node, "funcname")), let name = Self.builtin(parts) else {
          let parts = tree.names(tree.member(node, "funcname")) ?? ["?"]
          return .failure(.function(parts.joined(separator: ".")))
        }
        guard self.functionAllowlist.contains(name) else { return .failure(.function(name)) }
        checked.functions.insert(name)
      case "A_Expr":
        if let parts = tree.names(tree.member(node, "name")) {
          guard let name = Self.builtin(parts), Self.operators.contains(name) else { return .failure(.operator(parts.joined(separator: "."))) }
        }
      case "TypeCast":
        guard let typeName = tree.member(node, "typeName") else { return .failure(.type("?")) }
        guard let parts = tree.names(tree.member(typeName, "names")), let name = Self.builtin(parts), Self.types.contains(name) else {
          return .failure(.type((tree.names(tree.member(typeName, "names")) ?? ["?"]).joined(separator: ".")))
        }
      case "A_Indirection":
        // (x).name is attribute notation, which calls a function name(x) when x has no such field.
        if let list = tree.member(node, "indirection"),
          tree.nodes[list].children.contains(where: { tree.member($0, "String") != nil || tree.member($0, "A_Star") != nil })
        {
          return .failure(.function("(…).field: attribute notation"))
        }
      case "ColumnRef":
        // schema.table.column is fine; four parts (catalog.schema.table.column) or more are not.
        guard let fields = tree.member(node, "fields") else { continue }
        let parts = tree.nodes[fields].children
        if parts.count > 3 { return .failure(.relation("a four-part name")) }
        if parts.count >= 2, let scopes, let names = tree.names(fields)?.map({ $0.lowercased() }) {
          let (qualifier, field) = (names[names.count - 2], names[names.count - 1])
          // The qualifier's own columns; a qualifier the query does not define (an unusual
          // join alias), any column at all.
          let known = scopes.byName[qualifier] ?? scopes.all
          guard known.contains(field) else {
            return .failure(.function("\(qualifier).\(field): \(qualifier) has no column \(field) (it would call \(field)(\(qualifier)))"))
          }
        }
      case "RangeVar":
        let schema = tree.text(node, "schemaname")?.lowercased()
        let relation = (tree.text(node, "relname") ?? "").lowercased()
        if tree.text(node, "catalogname") != nil { return .failure(.relation("a name with a database")) }
        if schema == "information_schema" && Self.metadataViews.contains(relation) {
          checked.relations.insert("information_schema.\(relation)")
          continue
        }
        if let schema, Self.systemSchemas.contains(schema) || schema.hasPrefix("pg_") {
          return .failure(.relation("\(schema).\(relation)"))
        }
        if schema == nil && cteNames.contains(relation) { continue }
        if relation.hasPrefix("pg_") {
          return .failure(.relation(schema.map { "\($0).\(relation)" } ?? relation))
        }
        let qualified = schema.map { "\($0).\(relation)" } ?? relation
        if let allowed = self.relations, !allowed.contains(qualified) {
          return .failure(.relation(qualified))
        }
        checked.relations.insert(qualified)
      default:
        break
      }
    }
    switch Self.checkColumns(tree, policies: self.policies) {
    case .success(let masked): checked.masked = masked
    case .failure(let refusal): return .failure(refusal)
    }
    return .success(checked)
  }

  /// What each name that can qualify a column stands for in the query, with its columns: tables
  /// and views (by alias or name), subqueries and CTEs (their column lists or output names),
  /// functions in FROM (their column lists and alias). `all` is every column name known.
  private static func scopes(_ tree: ParseTree, schema: [String: Set<String>]) -> (byName: [String: Set<String>], all: Set<String>) {
    var byName: [String: Set<String>] = [:]
    var all = Set(schema.values.flatMap { $0 })
    func add(_ name: String?, _ columns: Set<String>) {
      guard let name = name?.lowercased() else { return }
      byName[name, default: []].formUnion(columns)
      all.formUnion(columns)
    }
    func aliasColumns(_ node: Int) -> (name: String?, columns: [String]?) {
      guard let alias = tree.member(node, "alias") else { return (nil, nil) }
      return (tree.text(alias, "aliasname"), tree.names(tree.member(alias, "colnames")))
    }
    var ctes: [String: Set<String>] = [:]
    for node in tree.nodes.indices where tree.nodes[node].key == "CommonTableExpr" {
      guard let name = tree.text(node, "ctename")?.lowercased() else { continue }
      let columns = tree.names(tree.member(node, "aliascolnames")).map { Set($0.map { $0.lowercased() }) }
        ?? Self.targetNames(tree, tree.member(node, "ctequery").flatMap { tree.member($0, "SelectStmt") })
      ctes[name] = columns
      add(name, columns)
    }
    for node in tree.nodes.indices {
      switch tree.nodes[node].key {
      case "RangeVar":
        let relation = (tree.text(node, "relname") ?? "").lowercased()
        let qualified = tree.text(node, "schemaname").map { "\($0.lowercased()).\(relation)" } ?? relation
        var columns = schema[qualified] ?? schema[relation] ?? ctes[relation] ?? []
        let (alias, renamed) = aliasColumns(node)
        if let renamed { columns.formUnion(renamed.map { $0.lowercased() }) }
        add(alias ?? relation, columns)
        if alias == nil, qualified != relation { add(qualified, columns) }
      case "RangeSubselect":
        let (alias, renamed) = aliasColumns(node)
        add(alias, renamed.map { Set($0.map { $0.lowercased() }) } ?? Self.targetNames(tree, tree.member(node, "subquery").flatMap { tree.member($0, "SelectStmt") }))
      case "RangeFunction":
        // A set-returning function's columns: its column list, else its output parameters' names
        // (for the allowlisted ones that have them), else the alias (a scalar result).
        let (alias, renamed) = aliasColumns(node)
        var columns = Set((renamed ?? []).map { $0.lowercased() } + (alias.map { [$0.lowercased()] } ?? []))
        for call in tree.nodes.indices where tree.nodes[call].key == "FuncCall" && Self.isInside(call, node, tree) {
          if let name = tree.names(tree.member(call, "funcname"))?.last?.lowercased() {
            columns.insert(name)
            columns.formUnion(Self.functionColumns[name] ?? [])
          }
        }
        add(alias, columns)
      default: break
      }
    }
    return (byName, all)
  }

  /// Whether `node` lies under `ancestor`.
  static func isInside(_ node: Int, _ ancestor: Int, _ tree: ParseTree) -> Bool {
    var current = tree.nodes[node].parent
    while current >= 0 {
      if current == ancestor { return true }
      current = tree.nodes[current].parent
    }
    return false
  }

  /// The output columns of allowlisted set-returning functions that name them.
  static let functionColumns: [String: Set<String>] = [
    "json_each": ["key", "value"], "jsonb_each": ["key", "value"], "json_each_text": ["key", "value"],
    "jsonb_each_text": ["key", "value"], "json_array_elements": ["value"], "jsonb_array_elements": ["value"],
    "json_array_elements_text": ["value"], "jsonb_array_elements_text": ["value"],
  ]

  /// A plain name, or one qualified with pg_catalog; nil for any other schema.
  private static func builtin(_ parts: [String]) -> String? {
    switch parts.count {
    case 1: parts[0]
    case 2 where parts[0] == "pg_catalog": parts[1]
    default: nil
    }
  }

  private static func refusal(forNode kind: String) -> Refusal {
    if kind.hasSuffix("Stmt") { return .statement("it holds a \(kind.replacingOccurrences(of: "Stmt", with: "")) statement") }
    switch kind {
    case "IntoClause": return .statement("SELECT INTO creates a table")
    case "LockingClause": return .statement("FOR UPDATE/SHARE locks rows")
    case "ParamRef": return .statement("it has parameters")
    default: return .statement("\(kind) is not part of a read-only query")
    }
  }

  // MARK: - The allowlists

  /// Parse-tree node kinds a plain SELECT is made of.
  static let nodeKinds: Set<String> = [
    "SelectStmt", "ResTarget", "ColumnRef", "A_Star", "A_Const", "A_Expr", "BoolExpr", "FuncCall", "TypeCast", "SubLink",
    "RangeVar", "JoinExpr", "RangeSubselect", "RangeFunction", "SortBy", "WindowDef", "CaseExpr", "CaseWhen", "CoalesceExpr",
    "MinMaxExpr", "NullTest", "BooleanTest", "A_Indirection", "A_Indices", "A_ArrayExpr", "RowExpr", "CommonTableExpr",
    "WithClause", "GroupingSet", "String", "Integer", "Float", "Boolean", "BitString", "List", "Alias", "SQLValueFunction",
    "CollateClause", "NamedArgExpr", "TypeName", "GroupingFunc",
  ]

  static let systemSchemas: Set<String> = ["pg_catalog", "information_schema", "pg_toast"]

  /// information_schema views of table metadata (filtered by the role's own privileges); the
  /// rest of information_schema (roles, user mappings, server options) is refused.
  static let metadataViews: Set<String> = [
    "columns", "tables", "views", "schemata", "key_column_usage", "table_constraints", "referential_constraints",
    "constraint_column_usage", "check_constraints",
  ]

  static let functions: Set<String> = [
    // Aggregates.
    "count", "sum", "avg", "min", "max", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "bool_and",
    "bool_or", "every", "string_agg", "array_agg", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
    "percentile_cont", "percentile_disc", "mode", "corr", "covar_pop", "covar_samp", "regr_slope", "regr_intercept", "regr_r2",
    "regr_count", "regr_avgx", "regr_avgy", "bit_and", "bit_or",
    // Window functions.
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value", "last_value",
    "nth_value",
    // Math.
    "abs", "ceil", "ceiling", "floor", "round", "trunc", "sqrt", "cbrt", "power", "pow", "exp", "ln", "log", "log10", "mod",
    "sign", "pi", "degrees", "radians", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "width_bucket", "div", "gcd",
    "lcm", "factorial", "scale", "random",
    // Strings.
    "length", "char_length", "character_length", "octet_length", "bit_length", "lower", "upper", "initcap", "btrim", "ltrim",
    "rtrim", "lpad", "rpad", "substr", "substring", "position", "strpos", "replace", "split_part", "concat", "concat_ws",
    "left", "right", "reverse", "repeat", "translate", "ascii", "chr", "starts_with", "regexp_replace", "regexp_match",
    "regexp_matches", "regexp_split_to_array", "regexp_split_to_table", "regexp_count", "regexp_like", "overlay", "md5",
    "to_char", "to_number", "to_date", "to_timestamp", "format", "quote_literal", "quote_ident", "string_to_array",
    "array_to_string", "encode", "decode", "normalize", "unistr",
    // Dates and times.
    "now", "date_trunc", "date_part", "extract", "age", "make_date", "make_time", "make_timestamp", "make_timestamptz",
    "make_interval", "justify_days", "justify_hours", "justify_interval", "isfinite", "timezone", "date_bin",
    "transaction_timestamp", "statement_timestamp",
    // JSON.
    "to_json", "to_jsonb", "row_to_json", "json_build_object", "jsonb_build_object", "json_build_array", "jsonb_build_array",
    "json_object", "jsonb_object", "json_array_length", "jsonb_array_length", "json_each", "jsonb_each", "json_each_text",
    "jsonb_each_text", "json_extract_path", "jsonb_extract_path", "json_extract_path_text", "jsonb_extract_path_text",
    "json_object_keys", "jsonb_object_keys", "json_array_elements", "jsonb_array_elements", "json_array_elements_text",
    "jsonb_array_elements_text", "json_typeof", "jsonb_typeof", "jsonb_strip_nulls", "jsonb_pretty", "jsonb_set",
    "jsonb_insert", "jsonb_path_exists", "jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first",
    "jsonb_path_match",
    // Arrays and sets.
    "array_length", "array_lower", "array_upper", "array_position", "array_positions", "array_remove", "array_replace",
    "array_append", "array_prepend", "array_cat", "cardinality", "unnest", "generate_series", "array_fill",
    // Conditional and comparison, and what LIKE … ESCAPE, SIMILAR TO, OVERLAPS and SQL/JSON
    // queries parse into.
    "num_nulls", "num_nonnulls", "like_escape", "similar_to_escape", "similar_escape", "overlaps", "json_value",
    "json_query", "json_exists",
  ]

  /// SQLite's aggregate, window, math, string, date/time, JSON and conditional functions; not
  /// load_extension, randomblob/zeroblob (byte bombs), sqlite_* or anything else.
  static let sqliteFunctions: Set<String> = [
    "count", "sum", "total", "avg", "min", "max", "group_concat", "string_agg", "row_number", "rank", "dense_rank",
    "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value", "last_value", "nth_value", "abs", "round", "ceil",
    "ceiling", "floor", "sqrt", "power", "pow", "exp", "ln", "log", "log10", "log2", "mod", "pi", "sign", "trunc", "sin",
    "cos", "tan", "lower", "upper", "length", "octet_length", "substr", "substring", "trim", "ltrim", "rtrim", "replace",
    "instr", "printf", "format", "char", "unicode", "hex", "quote", "like", "glob", "concat", "concat_ws", "coalesce",
    "ifnull", "nullif", "iif", "typeof", "date", "time", "datetime", "julianday", "strftime", "unixepoch", "timediff", "json",
    "json_extract", "json_array", "json_object", "json_array_length", "json_type", "json_valid", "json_quote",
    "json_group_array", "json_group_object", "json_each", "json_tree", "likely", "unlikely", "likelihood",
  ]

  static let operators: Set<String> = [
    "=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "^", "|/", "||/", "@", "&", "|", "#", "~", "<<", ">>",
    "||", "~~", "~~*", "!~~", "!~~*", "~*", "!~", "!~*", "@>", "<@", "&&", "->", "->>", "#>", "#>>", "?", "?|", "?&", "#-",
    "@?", "@@",
    // How BETWEEN's forms appear in the tree.
    "BETWEEN", "NOT BETWEEN", "BETWEEN SYMMETRIC", "NOT BETWEEN SYMMETRIC",
  ]

  static let types: Set<String> = [
    "int2", "int4", "int8", "smallint", "integer", "int", "bigint", "numeric", "decimal", "float4", "float8", "real", "text",
    "varchar", "bpchar", "char", "name", "bool", "boolean", "date", "time", "timetz", "timestamp", "timestamptz", "interval",
    "json", "jsonb", "uuid", "bytea", "money", "inet", "cidr",
  ]
}

extension SQLGuard {
  /// The columns DDL defines, per relation (CREATE TABLE columns; a view's or materialized view's
  /// output names), lowercased: the `columns` of a schema known only as DDL (tests, fixtures).
  public static func columns(inDDL ddl: String) throws -> [String: Set<String>] {
    let tree = try Self.parse(ddl, maxDepth: 10_000, maxNodes: 10_000_000).get()
    var columns: [String: Set<String>] = [:]
    func add(_ relation: Int?, _ names: Set<String>) {
      guard let relation, let name = tree.text(relation, "relname")?.lowercased() else { return }
      columns[name, default: []].formUnion(names)
      if let schema = tree.text(relation, "schemaname")?.lowercased() { columns["\(schema).\(name)", default: []].formUnion(names) }
    }
    for node in tree.nodes.indices {
      switch tree.nodes[node].key {
      case "CreateStmt":
        var names = Set<String>()
        for element in tree.member(node, "tableElts").map({ tree.nodes[$0].children }) ?? [] {
          if let definition = tree.member(element, "ColumnDef"), let name = tree.text(definition, "colname") { names.insert(name.lowercased()) }
        }
        add(tree.member(node, "relation"), names)
      case "ViewStmt":
        let query = tree.member(node, "query").flatMap { tree.member($0, "SelectStmt") }
        add(tree.member(node, "view"), Self.targetNames(tree, query))
      case "CreateTableAsStmt":
        let query = tree.member(node, "query").flatMap { tree.member($0, "SelectStmt") }
        add(tree.member(node, "into").flatMap { tree.member($0, "rel") }, Self.targetNames(tree, query))
      default: break
      }
    }
    return columns
  }

  /// The output column names of a SELECT's fields object (of the first branch of a set
  /// operation): an alias, else a column's or a function's name, as PostgreSQL names them.
  static func targetNames(_ tree: ParseTree, _ select: Int?) -> Set<String> {
    var select = select
    while let current = select, let left = tree.member(current, "larg") { select = left }
    guard let select, let list = tree.member(select, "targetList") else { return [] }
    var names = Set<String>()
    for item in tree.nodes[list].children {
      guard let target = tree.member(item, "ResTarget") else { continue }
      if let name = tree.text(target, "name") {
        names.insert(name.lowercased())
      } else if let value = tree.member(target, "val") {
        if let column = tree.member(value, "ColumnRef"), let last = tree.names(tree.member(column, "fields"))?.last {
          names.insert(last.lowercased())
        } else if let call = tree.member(value, "FuncCall"), let last = tree.names(tree.member(call, "funcname"))?.last {
          names.insert(last.lowercased())
        }
      }
    }
    return names
  }
}

extension SQLGuard {
  /// The statements of a script, split by PostgreSQL's own parser (function bodies, quoted
  /// semicolons and comments respected): for loading fixtures one statement at a time.
  public static func statements(of script: String) -> [String]? {
    let result = pg_query_split_with_parser(script)
    defer { pg_query_free_split_result(result) }
    guard result.error == nil, let list = result.stmts else { return nil }
    let bytes = Array(script.utf8)
    return (0..<Int(result.n_stmts)).compactMap { index in
      guard let statement = list[index]?.pointee else { return nil }
      let start = Int(statement.stmt_location)
      let text = String(decoding: bytes[start..<start + Int(statement.stmt_len)], as: UTF8.self)
      return text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : text
    }
  }
}
