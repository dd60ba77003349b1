internal import Foundation

/// The offline, deterministic `SQLGenerator`: a schema linker, not a language model. It links the
/// words of a question to the catalog (tables by name, singular or plural, or by words of their
/// description; columns by their `_`-separated words and a few synonyms such as "paid" → salary;
/// values by a column's `sampleValues`, case-insensitively; numbers and dates) and writes one
/// SELECT. It handles these kinds, and only these:
/// - counts: "how many orders are there", "count customers in Germany";
/// - listings: "list the departments", "show products in category Books", "which employees are
///   in Engineering" (LIMIT 100 unless the question says N);
/// - filters on values (sample values, quoted strings, "containing 'x'"), numeric comparisons
///   ("salary over 100000", "price below 20", "stock more than 5") and booleans ("active
///   employees", "not discontinued");
/// - top-N by a column: "top 5 products by price", "the 10 highest paid employees";
/// - aggregates (count, sum, avg, min, max), alone or per group: "average salary per department",
///   "total revenue by category", "number of orders per status", "orders per month";
/// - date ranges on date/timestamp columns: "in 2024", "since 2023-01-01", "before 2022",
///   "between 2023-01-01 and 2023-06-30", "last 30 days";
/// - joins along foreign keys (shortest path, either direction, at most 3 hops) when the
///   question names two tables or a column of another table.
/// Anything it cannot link, or links two ways, throws `GenerationError.unsupported`.
public struct OfflineSQLGenerator: SQLGenerator {
  public init() {}

  public var name: String { "offline" }

  /// The part of a question that is read (the service rejects longer questions).
  static let maxQuestionLength = 2000

  public func generate(_ request: GenerationRequest) async throws(GenerationError) -> GeneratedSQL {
    try Self.translate(request.question, catalog: request.catalog, dialect: request.dialect)
  }

  static func translate(_ question: String, catalog: SchemaCatalog, dialect: SQLDialect) throws(GenerationError)
    -> GeneratedSQL
  {
    let tokens = Tokenizer.tokens(String(question.prefix(Self.maxQuestionLength)))
    let lexicon = Lexicon(catalog)
    var interpreter = Interpreter(items: lexicon.items(tokens), lexicon: lexicon)
    let plan = try interpreter.plan()
    return Renderer(plan: plan, catalog: catalog, dialect: dialect).render()
  }

  static let handles =
    "the offline generator handles counts, listings, filters on values, numbers, booleans and dates, top-N by a column,"
    + " count/sum/avg/min/max alone or per group, and joins along foreign keys"
}

extension OfflineSQLGenerator {
  fileprivate static func unsupported(_ why: String) -> GenerationError {
    .unsupported("\(why); \(OfflineSQLGenerator.handles).")
  }
}

// MARK: - Words

extension OfflineSQLGenerator {
  fileprivate struct Token {
    /// Lowercased; a quoted string keeps its case.
    var lower: String
    var quoted: Bool
    var capitalized: Bool
    /// All capitals ("IN", "US"): a code, not the word "in" or "us".
    var upper = false
  }

  fileprivate enum Tokenizer {
    static func tokens(_ text: String) -> [Token] {
      let chars = Array(text)
      var tokens: [Token] = []
      var i = 0
      while i < chars.count {
        if let close = Self.closingQuote(chars, i) {
          let inner = String(chars[(i + 1)..<close]).trimmingCharacters(in: .whitespaces)
          if !inner.isEmpty { tokens.append(Token(lower: inner, quoted: true, capitalized: false)) }
          i = close + 1
        } else if Self.isWordChar(chars[i]) {
          let start = i
          var word = ""
          while i < chars.count, let next = Self.wordChar(chars, i) {
            if let next { word.append(next) }
            i += 1
          }
          let capitalized = chars[start].isUppercase && !tokens.isEmpty
          let upper = word.count > 1 && word == word.uppercased() && word.contains(where: \.isLetter)
          tokens.append(Token(lower: word.lowercased(), quoted: false, capitalized: capitalized, upper: upper))
        } else if "<>=".contains(chars[i]) {
          let pair = i + 1 < chars.count && chars[i + 1] == "=" ? String(chars[i...(i + 1)]) : String(chars[i])
          tokens.append(Token(lower: pair, quoted: false, capitalized: false))
          i += pair.count
        } else {
          i += 1
        }
      }
      return tokens
    }

    static func isWordChar(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }

    /// The character at `i` inside a word: itself, nil to drop it (an apostrophe, a thousands
    /// comma), or no value at all when the word ends there.
    static func wordChar(_ chars: [Character], _ i: Int) -> Character?? {
      let c = chars[i]
      if Self.isWordChar(c) { return .some(c) }
      let inside = i > 0 && i + 1 < chars.count && Self.isWordChar(chars[i - 1]) && Self.isWordChar(chars[i + 1])
      guard inside else { return .none }
      if "-.:/".contains(c) { return .some(c) }
      if c == "'" || c == "’" { return .some(nil) }
      if c == ",", chars[i - 1].isNumber, chars[i + 1].isNumber { return .some(nil) }
      return .none
    }

    /// A quote that opens a quoted string: its closing quote's index.
    static func closingQuote(_ chars: [Character], _ i: Int) -> Int? {
      let pairs: [Character: Character] = ["'": "'", "\"": "\"", "“": "”", "‘": "’"]
      guard let close = pairs[chars[i]], i == 0 || !Self.isWordChar(chars[i - 1]) else { return nil }
      var j = i + 1
      while j < chars.count {
        if chars[j] == close || (close == "'" && chars[j] == "’"),
          j + 1 == chars.count || !Self.isWordChar(chars[j + 1])
        {
          return j
        }
        j += 1
      }
      return nil
    }

    /// Plural to singular, enough for table and column names ("categories" → "category").
    static func stem(_ word: String) -> String {
      guard word.count > 3, word.allSatisfy(\.isLetter) else { return word }
      if word.hasSuffix("ies") { return String(word.dropLast(3)) + "y" }
      for suffix in ["sses", "shes", "ches", "xes", "uses"] where word.hasSuffix(suffix) {
        return String(word.dropLast(2))
      }
      if word.hasSuffix("s"), !word.hasSuffix("ss"), !word.hasSuffix("us"), !word.hasSuffix("is") {
        return String(word.dropLast())
      }
      return word
    }
  }

  fileprivate static let fillerWords: Set<String> = [
    "the", "a", "an", "of", "in", "on", "at", "for", "to", "and", "or", "by", "with", "is", "are", "from", "as",
    "per", "that", "this", "it", "its", "be", "each", "every", "all", "any", "me", "us", "my", "our", "their",
    "them", "i", "we", "you",
  ]
}

// MARK: - Linking words to the catalog

extension OfflineSQLGenerator {
  fileprivate struct ColumnRef: Hashable {
    var table: Int
    var column: Int
  }

  /// A calendar day, written as an ISO date literal.
  fileprivate struct Day {
    var year: Int, month: Int, day: Int

    init(_ year: Int, _ month: Int, _ day: Int) { (self.year, self.month, self.day) = (year, month, day) }
    static func days(_ year: Int, _ month: Int) -> Int {
      if month == 2 { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28 }
      return [4, 6, 9, 11].contains(month) ? 30 : 31
    }
    var nextDay: Day {
      if self.day < Self.days(self.year, self.month) { return Day(self.year, self.month, self.day + 1) }
      return self.month == 12 ? Day(self.year + 1, 1, 1) : Day(self.year, self.month + 1, 1)
    }
    var text: String {
      func pad(_ n: Int, _ width: Int) -> String {
        String(repeating: "0", count: max(0, width - String(n).count)) + String(n)
      }
      return "\(pad(self.year, 4))-\(pad(self.month, 2))-\(pad(self.day, 2))"
    }
  }

  /// A period named in a question: [start, end).
  fileprivate struct Span {
    var start: Day
    var end: Day
  }

  fileprivate enum Target: Equatable {
    case table(Int)
    case column(ColumnRef)
    case value(ColumnRef, String)
    case flag(ColumnRef, Bool)
  }

  fileprivate struct Item {
    enum Kind {
      case word
      case number(String)
      case date(Span)
      case quoted(String)
      case table(Int)
      case columns([ColumnRef])
      case values([(ColumnRef, String)])
      case flags([(ColumnRef, Bool)])
    }
    var kind: Kind
    /// The stems of the words it spans, space-separated.
    var key: String
    var plural: Bool
    var capitalized: Bool

    var refs: [ColumnRef] { if case .columns(let refs) = self.kind { refs } else { [] } }
  }

  fileprivate struct Lexicon {
    let catalog: SchemaCatalog
    var phrases: [String: [Target]] = [:]
    /// Words of table descriptions → the tables whose description has them.
    var descriptions: [String: [Int]] = [:]

    static let synonyms: [String: [String]] = [
      "salary": ["paid", "pay", "earn", "earning", "earns", "income", "wage"],
      "price": ["expensive", "cheap", "cheapest", "costly", "pricey", "priced"],
    ]
    static let countries: [String: [String]] = [
      "germany": ["de", "deu"], "france": ["fr", "fra"], "united states": ["us", "usa"], "usa": ["us", "usa"],
      "united kingdom": ["gb", "uk", "gbr"], "uk": ["gb", "uk", "gbr"], "britain": ["gb", "uk", "gbr"],
      "india": ["in", "ind"], "japan": ["jp", "jpn"], "brazil": ["br", "bra"], "canada": ["ca", "can"],
      "australia": ["au", "aus"], "netherlands": ["nl", "nld"], "spain": ["es", "esp"], "italy": ["it", "ita"],
      "china": ["cn", "chn"],
    ]

    init(_ catalog: SchemaCatalog) {
      self.catalog = catalog
      for (t, table) in catalog.tables.enumerated() {
        self.add(Self.words(table.name), .table(t))
        self.add([Tokenizer.stem(table.name.lowercased())], .table(t))
        for token in Tokenizer.tokens(table.description)
        where token.lower.count >= 4 && !fillerWords.contains(token.lower) {
          let word = Tokenizer.stem(token.lower)
          if self.descriptions[word]?.contains(t) != true { self.descriptions[word, default: []].append(t) }
        }
        for (c, column) in table.columns.enumerated() { self.addColumn(ColumnRef(table: t, column: c), column) }
      }
    }

    static func words(_ name: String) -> [String] {
      let parts = name.lowercased().split(separator: "_").map { Tokenizer.stem(String($0)) }
      let content = parts.filter { !fillerWords.contains($0) }
      return content.isEmpty ? parts : content
    }

    mutating func add(_ words: [String], _ target: Target) {
      guard !words.isEmpty, words.count <= 4 else { return }
      let key = words.joined(separator: " ")
      if self.phrases[key]?.contains(target) != true { self.phrases[key, default: []].append(target) }
    }

    mutating func addColumn(_ ref: ColumnRef, _ column: CatalogColumn) {
      let name = column.name.lowercased()
      self.add([Tokenizer.stem(name)], columnKind(column) == .boolean ? .flag(ref, true) : .column(ref))
      for value in column.sampleValues {
        self.add(Tokenizer.tokens(value).map { Tokenizer.stem($0.lower) }, .value(ref, value))
        for (country, codes) in Self.countries where codes.contains(value.lowercased()) {
          self.add(country.split(separator: " ").map(String.init), .value(ref, value))
        }
      }
      guard name != "id", !name.hasSuffix("_id") else { return }
      if columnKind(column) == .boolean {
        var words = Self.words(name)
        if ["is", "has"].contains(words.first), words.count > 1 { words.removeFirst() }
        self.add(words, .flag(ref, true))
        if words.count == 1 {
          for prefix in ["in", "un", "non", "non-"] { self.add([prefix + words[0]], .flag(ref, false)) }
        }
      } else {
        self.add(Self.words(name), .column(ref))
        for synonym in Self.synonyms[name] ?? [] { self.add([synonym], .column(ref)) }
      }
    }

    func items(_ tokens: [Token]) -> [Item] {
      var items: [Item] = []
      var i = 0
      while i < tokens.count {
        let (item, length) = self.item(tokens, at: i)
        items.append(item)
        i += length
      }
      return items
    }

    private func item(_ tokens: [Token], at i: Int) -> (Item, Int) {
      let token = tokens[i]
      let stem = Tokenizer.stem(token.lower)
      let plain = Item(kind: .word, key: stem, plural: stem != token.lower, capitalized: token.capitalized)
      if token.quoted {
        let key = Tokenizer.tokens(token.lower).map { Tokenizer.stem($0.lower) }.joined(separator: " ")
        let values: [(ColumnRef, String)] = (self.phrases[key] ?? []).compactMap {
          guard case .value(let ref, let value) = $0, value.lowercased() == token.lower.lowercased() else { return nil }
          return (ref, value)
        }
        return (
          Item(
            kind: values.isEmpty ? .quoted(token.lower) : .values(values), key: token.lower, plural: false,
            capitalized: true), 1
        )
      }
      if token.lower.allSatisfy({ $0.isNumber || $0 == "." }), token.lower.first!.isNumber, token.lower.last!.isNumber,
        token.lower.count <= 15, token.lower.filter({ $0 == "." }).count <= 1
      {
        return (Item(kind: .number(token.lower), key: token.lower, plural: false, capitalized: false), 1)
      }
      if let span = Self.dateSpan(token.lower) {
        return (Item(kind: .date(span), key: token.lower, plural: false, capitalized: false), 1)
      }
      for length in stride(from: min(4, tokens.count - i), through: 1, by: -1) {
        let span = tokens[i..<(i + length)]
        guard !span.contains(where: \.quoted) else { continue }
        let key = span.map { Tokenizer.stem($0.lower) }.joined(separator: " ")
        guard var targets = self.phrases[key] else { continue }
        if length == 1, fillerWords.contains(key), !token.upper {
          targets.removeAll { if case .value = $0 { true } else { false } }
        }
        guard !targets.isEmpty else { continue }
        let next = i + length < tokens.count ? tokens[i + length].lower : ""
        let last = span.last!
        let item = Item(
          kind: self.kind(targets, next: next), key: key, plural: Tokenizer.stem(last.lower) != last.lower,
          capitalized: span.contains(where: \.capitalized))
        return (item, length)
      }
      return (plain, 1)
    }

    /// A table first; a value over a column of the same words unless a date follows ("shipped in
    /// 2023" is about shipped_at, "shipped orders" about status).
    private func kind(_ targets: [Target], next: String) -> Item.Kind {
      var columns: [ColumnRef] = [], values: [(ColumnRef, String)] = [], flags: [(ColumnRef, Bool)] = []
      for target in targets {
        switch target {
        case .table(let t): return .table(t)
        case .column(let ref): if !columns.contains(ref) { columns.append(ref) }
        case .value(let ref, let value): values.append((ref, value))
        case .flag(let ref, let on): flags.append((ref, on))
        }
      }
      let dateFollows = ["in", "since", "before", "after", "between", "during", "on", "until"].contains(next)
      if !values.isEmpty, !(dateFollows && columns.contains { columnKind(self.column($0)) == .date }) {
        return .values(values)
      }
      if !flags.isEmpty { return .flags(flags) }
      return .columns(columns)
    }

    func column(_ ref: ColumnRef) -> CatalogColumn { self.catalog.tables[ref.table].columns[ref.column] }

    static func dateSpan(_ text: String) -> Span? {
      let parts = text.split(separator: "-").map { Int($0) }
      guard parts.count >= 2, parts.count <= 3, parts.allSatisfy({ $0 != nil }),
        text.split(separator: "-")[0].count == 4
      else { return nil }
      let year = parts[0]!, month = parts[1]!
      guard (1...12).contains(month) else { return nil }
      if parts.count == 2 {
        return Span(start: Day(year, month, 1), end: Day(year, month, Day.days(year, month)).nextDay)
      }
      guard (1...Day.days(year, month)).contains(parts[2]!) else { return nil }
      let day = Day(year, month, parts[2]!)
      return Span(start: day, end: day.nextDay)
    }
  }

  fileprivate enum ColumnKind { case number, date, boolean, text, other }

  fileprivate static func columnKind(_ column: CatalogColumn) -> ColumnKind {
    let type = column.dataType.lowercased()
    if type.hasSuffix("[]") || type.hasPrefix("_") || type.contains("interval") { return .other }  // arrays, durations
    if type.contains("bool") { return .boolean }
    if type.contains("date") || type.contains("timestamp") { return .date }
    if ["int", "numeric", "decimal", "real", "double", "float", "money", "serial"].contains(where: type.contains) {
      return .number
    }
    if ["char", "text", "string", "clob"].contains(where: type.contains) { return .text }
    return .other
  }
}

// MARK: - Reading the question

extension OfflineSQLGenerator {
  fileprivate enum Agg: String { case count, sum, avg, min, max }

  fileprivate enum DateRange {
    case between(Day?, Day?)
    case last(Int, String)
  }

  fileprivate indirect enum Expr {
    case column(ColumnRef)
    case aggregate(Agg, Expr?, distinct: Bool)
    case round(Expr)
    case product(ColumnRef, ColumnRef)
    case bucket(String, ColumnRef)
    case name(String)
    /// Stands for the measure in an ordering until the measure has its alias.
    case measure

    var isMeasure: Bool { if case .measure = self { true } else { false } }
  }

  fileprivate enum Filter {
    /// `=` one value, `IN` several ("customers from India and France").
    case equals(ColumnRef, [String], negated: Bool)
    case bool(ColumnRef, Bool)
    case compare(ColumnRef, String, String)
    case between(ColumnRef, String, String)
    case like(ColumnRef, String)
    case range(ColumnRef, DateRange)
    case notNull(ColumnRef)
  }

  fileprivate enum Measure {
    case rows(Int)
    case column(Agg, ColumnRef)
    case revenue(Agg, ColumnRef, ColumnRef)

    var table: Int {
      switch self {
      case .rows(let t): t
      case .column(_, let ref), .revenue(_, let ref, _): ref.table
      }
    }
  }

  /// A foreign key walked one way: `pairs` are (column of `to`, column of `from`).
  fileprivate struct Edge {
    var from: Int, to: Int
    var pairs: [(ColumnRef, ColumnRef)]
    /// From the referenced table to the rows that reference it (one to many).
    var fanOut: Bool
  }

  fileprivate struct Plan {
    enum Kind: String { case count, listing, topN = "top-N", aggregate, grouped = "aggregate per group" }
    var kind = Kind.listing
    var root: Int
    var joins: [Edge] = []
    var outputs: [(Expr, String?)] = []
    var filters: [Filter] = []
    var groups: [Expr] = []
    var order: [(Expr, Bool)] = []
    var limit: Int?
    var distinct = false
    var columns: [ColumnRef] = []
    /// The listing selects every column of this table.
    var everyColumnOf: Int?
  }

  /// Reads the linked items in passes; each pass consumes the items it understands, and what is
  /// left at the end must be filler.
  fileprivate struct Interpreter {
    var items: [Item]
    let tables: [CatalogTable]
    var used: [Bool]
    /// Item → the table named just before it that qualifies it ("department name", "category Books").
    var qualifiers: [Int: Int] = [:]
    var groupItems: Set<Int> = [], measureItems: Set<Int> = []
    var subjectItem: Int?, subject: Int?
    var mentioned: [Int] = []
    var chosen: [ColumnRef] = []
    var filters: [Filter] = []
    /// Date ranges on the root's default date column (or the named table's), known at the end.
    var pendingDates: [(DateRange, Int?)] = []
    var measure: Measure?
    var groups: [Expr] = []
    var order: Expr?
    var descending: Bool?
    /// Ordered by "sorted by", not by a superlative: a listing, not a top-N.
    var sorted = false
    var limit: Int?
    var selected: [ColumnRef] = []

    static let descWords: Set = [
      "most", "highest", "largest", "biggest", "greatest", "top", "best", "latest", "newest", "recent", "last",
    ]
    static let ascWords: Set = [
      "least", "lowest", "smallest", "fewest", "cheapest", "oldest", "earliest", "worst", "bottom",
    ]
    static let dateOrderWords: Set = ["latest", "newest", "recent", "last", "oldest", "earliest"]
    static let aggregates: [String: Agg] = [
      "average": .avg, "avg": .avg, "mean": .avg, "total": .sum, "sum": .sum, "minimum": .min, "min": .min,
      "maximum": .max, "max": .max,
    ]
    static let refused: Set = [
      "delete", "update", "insert", "drop", "create", "alter", "truncate", "grant", "revoke", "remove", "modify",
      "why", "predict", "forecast", "median", "percentage", "percent", "ratio", "correlation", "trend", "compare",
      "versus", "vs",
    ]
    static let comparators: [(String, String)] = [
      ("more than", ">"), ("greater than", ">"), ("higher than", ">"), ("larger than", ">"), ("over", ">"),
      ("above", ">"), ("exceeding", ">"), (">", ">"), ("at least", ">="), (">=", ">="), ("less than", "<"),
      ("fewer than", "<"), ("lower than", "<"), ("under", "<"), ("below", "<"), ("<", "<"), ("at most", "<="),
      ("<=", "<="), ("equal to", "="), ("exactly", "="), ("=", "="),
    ]
    static let months = [
      "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
      "december",
    ]
    static let units: Set = ["day", "week", "month", "year"]
    static let negations: Set = ["not", "except", "excluding", "non", "without", "no", "nor"]

    init(items: [Item], lexicon: Lexicon) {
      self.items = items
      self.tables = lexicon.catalog.tables
      self.used = Array(repeating: false, count: items.count)
      self.linkDescriptions(lexicon)
      self.markRoles()
    }

    // MARK: Accessors

    func word(_ i: Int) -> String? {
      guard self.items.indices.contains(i), !self.used[i], case .word = self.items[i].kind else { return nil }
      return self.items[i].key
    }
    func number(_ i: Int) -> String? {
      guard self.items.indices.contains(i), !self.used[i], case .number(let text) = self.items[i].kind else {
        return nil
      }
      return text
    }
    func integer(_ i: Int) -> Int? { self.number(i).flatMap { Int($0) } }
    func table(_ i: Int) -> Int? {
      guard self.items.indices.contains(i), case .table(let t) = self.items[i].kind else { return nil }
      return t
    }
    func column(_ ref: ColumnRef) -> CatalogColumn { self.tables[ref.table].columns[ref.column] }
    func name(_ ref: ColumnRef) -> String { "\(self.tables[ref.table].name).\(self.column(ref).name)" }
    func refs(_ t: Int, _ matching: (CatalogColumn) -> Bool) -> [ColumnRef] {
      self.tables[t].columns.indices.filter { matching(self.tables[t].columns[$0]) }.map {
        ColumnRef(table: t, column: $0)
      }
    }
    /// Whether item `i` is an unused column mention with a column of `kind`.
    func isColumn(_ i: Int, _ kind: ColumnKind? = nil) -> Bool {
      guard self.items.indices.contains(i), !self.used[i] else { return false }
      return self.items[i].refs.contains { kind == nil || columnKind(self.column($0)) == kind }
    }
    func phrase(_ i: Int, _ text: String) -> Bool {
      text.split(separator: " ").enumerated().allSatisfy { self.word(i + $0.offset) == String($0.element) }
    }
    /// The index from `i` on past filler words.
    func skip(_ i: Int, _ words: Set<String> = ["the", "of", "a", "an", "each", "every"]) -> Int {
      var j = i
      while let w = self.word(j), words.contains(w), j < i + 3 { j += 1 }
      return j
    }
    /// The index from `i` back past filler words.
    func skipBack(_ i: Int, _ words: Set<String>) -> Int {
      var j = i
      while let w = self.word(j), words.contains(w), j > i - 3 { j -= 1 }
      return j
    }
    /// The nearest table named before item `i`, over words only ("customers in Germany").
    func context(before i: Int) -> Int? {
      var j = i - 1
      while j >= max(0, i - 3), case .word = self.items[j].kind { j -= 1 }
      return j >= 0 ? self.table(j) : nil
    }
    mutating func use(_ range: Range<Int>) {
      for i in range where self.items.indices.contains(i) { self.used[i] = true }
    }
    mutating func note(_ ref: ColumnRef) -> ColumnRef {
      if !self.chosen.contains(ref) { self.chosen.append(ref) }
      return ref
    }

    // MARK: Resolving

    /// The column item `i` means: its qualifier's, else the first of (the table named just before,
    /// the subject, the tables named, every table) that has exactly one of its candidates.
    mutating func resolve(_ i: Int, _ kind: ColumnKind? = nil, among given: [ColumnRef]? = nil) throws(GenerationError)
      -> ColumnRef
    {
      var refs = (given ?? self.items[i].refs).filter { kind == nil || columnKind(self.column($0)) == kind }
      if let q = self.qualifiers[i] { refs = refs.filter { $0.table == q } }
      let tiers = [self.context(before: i).map { [$0] } ?? [], self.subject.map { [$0] } ?? [], self.mentioned]
      for tier in tiers + [Array(self.tables.indices)] {
        var hits: [ColumnRef] = []
        for ref in refs where tier.contains(ref.table) && !hits.contains(ref) { hits.append(ref) }
        if hits.count > 1 {
          throw unsupported("'\(self.items[i].key)' could mean \(hits.map(self.name).joined(separator: " or "))")
        }
        if let hit = hits.first {
          self.used[i] = true
          return self.note(hit)
        }
      }
      throw unsupported("cannot link '\(self.items[i].key)' to a column")
    }

    /// What names a row: a `name` column, else the key and the *_name columns, else a title, else the key.
    mutating func label(_ t: Int) -> [ColumnRef] {
      let names = self.tables[t].columns.map { $0.name.lowercased() }
      guard !names.isEmpty else { return [] }
      let key = self.refs(t) { $0.isPrimaryKey }
      let nameColumns = self.refs(t) { $0.name.lowercased().hasSuffix("_name") }
      var picked = key.isEmpty ? [ColumnRef(table: t, column: 0)] : key
      if let i = names.firstIndex(of: "name") {
        picked = [ColumnRef(table: t, column: i)]
      } else if !nameColumns.isEmpty {
        picked = key + nameColumns
      } else if let i = names.firstIndex(where: { ["title", "label"].contains($0) }) {
        picked = [ColumnRef(table: t, column: i)]
      }
      return picked.map { self.note($0) }
    }

    /// The table's first non-null date column (else its first), else one of a table it references
    /// ("revenue per month": order_items → orders.ordered_at).
    mutating func defaultDate(_ t: Int) throws(GenerationError) -> ColumnRef {
      for table in [t] + Planner.graph(self.tables)[t].filter({ !$0.fanOut }).map(\.to) {
        let dates = self.refs(table) { columnKind($0) == .date }
        if let ref = dates.first(where: { !self.column($0).isNullable }) ?? dates.first { return self.note(ref) }
      }
      throw unsupported("\(self.tables[t].name) has no date or timestamp column")
    }

    func subjectTable() throws(GenerationError) -> Int {
      guard let t = self.measure?.table ?? self.subject else { throw unsupported("no table of the catalog is named") }
      return t
    }

    // MARK: Passes

    mutating func plan() throws(GenerationError) -> Plan {
      if let i = self.items.indices.first(where: { self.word($0).map(Self.refused.contains) == true }) {
        throw unsupported("'\(self.items[i].key)' asks for more than a read-only lookup")
      }
      self.readDates()
      try self.readComparisons()
      self.readLimits()
      try self.readQuoted()
      try self.readMeasures()
      try self.readSuperlatives()
      try self.readGroups()
      try self.readValues()
      try self.readLeftovers()
      var planner = Planner(self)
      return try planner.plan()
    }

    /// With no table named, a word of one table's description names it ("staff" → employees).
    mutating func linkDescriptions(_ lexicon: Lexicon) {
      guard !self.items.contains(where: { if case .table = $0.kind { true } else { false } }) else { return }
      let cues = Self.descWords.union(Self.ascWords).union(Self.aggregates.keys).union(Self.units)
      if let i = self.items.indices.first(where: { i in
        self.word(i).map { !cues.contains($0) && lexicon.descriptions[$0]?.count == 1 } == true
      }) {
        self.items[i].kind = .table(lexicon.descriptions[self.items[i].key]![0])
      }
    }

    /// Qualifying tables, grouping tables ("per department") and the subject: the first table
    /// named otherwise.
    mutating func markRoles() {
      var tableItems: [Int] = []
      for i in self.items.indices {
        guard let t = self.table(i) else { continue }
        tableItems.append(i)
        if !self.mentioned.contains(t) { self.mentioned.append(t) }
        if ["per", "each", "by"].contains(self.word(self.skipBack(i - 1, ["the", "every"])) ?? "") {
          self.groupItems.insert(i)
        }
        guard i + 1 < self.items.count else { continue }
        switch self.items[i + 1].kind {
        case .columns(let refs) where refs.contains { $0.table == t }: break
        case .values(let values) where values.contains { $0.0.table == t }: break
        case .quoted: break
        default: continue
        }
        self.qualifiers[i] = t
        self.qualifiers[i + 1] = t
      }
      let candidates = tableItems.filter { !self.groupItems.contains($0) }
      self.subjectItem = candidates.first { self.qualifiers[$0] == nil } ?? candidates.first
      self.subject = self.subjectItem.flatMap(self.table)
    }

    mutating func readDates() {
      var i = 0
      while i < self.items.count {
        guard let (range, end) = self.dateRange(at: i) else {
          i += 1
          continue
        }
        // The column just before ("hired in 2020"), else the table's ("orders in 2024").
        let filler: Set = [
          "was", "were", "is", "are", "been", "placed", "made", "that", "who", "which", "in", "the", "of", "within",
        ]
        let j = self.skipBack(i - 1, filler)
        if self.isColumn(j, .number), !self.isColumn(j, .date) {
          i += 1  // "salary between 1990 and 2010": numbers, not years
          continue
        }
        if self.isColumn(j, .date), let ref = try? self.resolve(j, .date) {
          self.filters.append(.range(ref, range))
        } else {
          self.pendingDates.append((range, self.table(j)))
        }
        self.use(i..<end)
        i = end
      }
    }

    /// A period: "2023-01-01", "2023-06", "2024", "March 2024".
    func period(_ i: Int) -> (Span, Int)? {
      guard self.items.indices.contains(i), !self.used[i] else { return nil }
      if case .date(let span) = self.items[i].kind { return (span, i + 1) }
      var month = 0, j = i
      if let w = self.word(i), let m = Self.months.firstIndex(of: w) { (month, j) = (m + 1, i + 1) }
      guard let year = self.integer(j), self.number(j)?.count == 4, (1900...2100).contains(year) else { return nil }
      if month == 0 { return (Span(start: Day(year, 1, 1), end: Day(year + 1, 1, 1)), j + 1) }
      return (Span(start: Day(year, month, 1), end: Day(year, month, Day.days(year, month)).nextDay), j + 1)
    }

    func dateRange(at i: Int) -> (DateRange, Int)? {
      guard let w = self.word(i) else { return nil }
      if ["last", "past", "previous"].contains(w) {
        let n = self.integer(i + 1)
        let u = n == nil ? i + 1 : i + 2
        guard let unit = self.word(u), Self.units.contains(unit), (1...100_000).contains(n ?? 1) else { return nil }
        return (.last(n ?? 1, unit), u + 1)
      }
      guard let (a, j) = self.period(i + 1) else { return nil }
      switch w {
      case "between", "from":
        if ["and", "to", "until", "through"].contains(self.word(j) ?? ""), let (b, k) = self.period(j + 1) {
          return (.between(a.start, b.end), k)
        }
        return w == "from" ? (.between(a.start, nil), j) : nil
      case "since": return (.between(a.start, nil), j)
      case "after": return (.between(a.end, nil), j)
      case "before": return (.between(nil, a.start), j)
      case "until", "till", "through": return (.between(nil, a.end), j)
      case "in", "during", "on": return (.between(a.start, a.end), j)
      default: return nil
      }
    }

    mutating func readComparisons() throws(GenerationError) {
      for i in self.items.indices where !self.used[i] {
        if self.word(i) == "between", let low = self.number(i + 1), self.word(i + 2) == "and",
          let high = self.number(i + 3)
        {
          let ref = try self.comparedColumn(before: i, after: i + 4, "between \(low) and \(high)")
          self.filters.append(.between(ref, low, high))
          self.use(i..<(i + 4))
        } else if let (text, op) = Self.comparators.first(where: { self.phrase(i, $0.0) }),
          case let n = text.split(separator: " ").count, let value = self.number(i + n)
        {
          self.filters.append(
            .compare(try self.comparedColumn(before: i, after: i + n + 1, "\(text) \(value)"), op, value))
          self.use(i..<(i + n + 1))
        }
      }
    }

    /// The numeric column a comparison is about: named before it ("salary over 100000") or just
    /// after the number ("more than 5 in stock").
    mutating func comparedColumn(before i: Int, after k: Int, _ text: String) throws(GenerationError) -> ColumnRef {
      let filler: Set = [
        "with", "a", "an", "is", "of", "the", "whose", "has", "have", "that", "are", "was", "were", "priced",
      ]
      for j in [self.skipBack(i - 1, filler), self.skip(k, ["in", "of", "the"])] where self.isColumn(j, .number) {
        return try self.resolve(j, .number)
      }
      throw unsupported("cannot tell which numeric column '\(text)' is about")
    }

    /// "top 5", "first 20", "10 highest", "5 products".
    mutating func readLimits() {
      for i in self.items.indices where self.limit == nil {
        guard let n = self.integer(i), (1...100_000).contains(n) else { continue }
        let next = self.items.indices.contains(i + 1) ? self.items[i + 1].key : ""
        if let before = self.word(i - 1), ["top", "first", "limit"].contains(before) {
          self.use((before == "top" ? i : i - 1)..<(i + 1))
        } else if Self.descWords.union(Self.ascWords).contains(next) || self.table(i + 1) != nil {
          self.used[i] = true
        } else {
          continue
        }
        self.limit = n
      }
    }

    /// A quoted string that is no sample value: equal to ("named 'Ada'") or contained in
    /// ("containing 'lamp'", "with 'lamp' in the name") the column named before it (after it), or
    /// the label of the table named before it.
    mutating func readQuoted() throws(GenerationError) {
      for i in self.items.indices {
        guard case .quoted(let text) = self.items[i].kind else { continue }
        let after = self.word(i + 1) == "in" && self.isColumn(self.skip(i + 2), .text) ? self.skip(i + 2) : nil
        let like =
          after != nil
          || ["containing", "contain", "contains", "like", "matching", "including"].contains(self.word(i - 1) ?? "")
        let filler: Set = ["is", "named", "called", "equal", "equals", "=", "whose", "the", "with", "in", "its"]
        let j = after ?? self.skipBack(i - (like ? 2 : 1), filler)
        let ref: ColumnRef
        if let after { self.use((i + 1)..<after) }
        if self.isColumn(j, .text) {
          ref = try self.resolve(j, .text)
        } else if let t = self.table(j) ?? self.context(before: i),
          let found = self.label(t).first(where: { columnKind(self.column($0)) == .text })
        {
          ref = found
        } else {
          throw unsupported("cannot tell which column '\(text)' is compared with")
        }
        self.filters.append(like ? .like(ref, text) : .equals(ref, [text], negated: false))
        self.use((i - (like && after == nil ? 1 : 0))..<(i + 1))
      }
    }

    /// "how many", "count", "number of" (rows of the table named next, else the subject's);
    /// "average/total/minimum/maximum <column>" and "revenue".
    mutating func readMeasures() throws(GenerationError) {
      if let i = self.items.indices.first(where: {
        self.phrase($0, "how many") || self.phrase($0, "number of") || self.phrase($0, "count")
      }) {
        let cue = self.word(i) == "count" ? (self.word(i + 1) == "of" ? 2 : 1) : 2
        let j = self.skip(i + cue)
        guard let t = self.table(j) ?? self.subject else { throw unsupported("cannot tell what to count") }
        self.measure = .rows(t)
        self.measureItems.formUnion(i..<(self.table(j) == nil ? i + cue : j + 1))
        self.use(i..<(i + cue))
      }
      for i in self.items.indices {
        if self.word(i) == "revenue", Self.aggregates[self.word(i - 1) ?? ""] == nil, self.measure == nil {
          self.setMeasure(try self.revenue(.sum), i..<(i + 1))  // "revenue in 2024"
        }
        guard let w = self.word(i), let agg = Self.aggregates[w] else { continue }
        let j = self.skip(i + 1)
        if self.isColumn(j, .number), self.measure == nil {
          let ref = try self.resolve(j, .number)
          self.setMeasure(.column(agg, ref), i..<(j + 1))
        } else if self.word(j) == "revenue", self.measure == nil {
          self.setMeasure(try self.revenue(agg), i..<(j + 1))
        } else if agg == .sum, case .rows = self.measure {
          self.used[i] = true  // "total number of orders"
        } else if agg == .sum, let t = self.table(j), self.measure == nil {
          self.setMeasure(.rows(t), i..<(j + 1))  // "total orders"
        } else {
          throw unsupported("cannot tell what '\(w)' is taken over, or the question asks for more than one aggregate")
        }
      }
    }

    /// Revenue: a revenue/amount column, else quantity × price, of the first table (named ones
    /// first) that has one.
    func revenue(_ agg: Agg) throws(GenerationError) -> Measure {
      for t in self.mentioned + self.tables.indices.filter({ !self.mentioned.contains($0) }) {
        let names = self.tables[t].columns.map { $0.name.lowercased() }
        if let i = names.firstIndex(where: { ["revenue", "amount", "total_amount"].contains($0) }) {
          return .column(agg, ColumnRef(table: t, column: i))
        }
        if let q = names.firstIndex(where: { ["quantity", "qty"].contains($0) }),
          let p = names.firstIndex(where: { ["unit_price", "price"].contains($0) })
        {
          return .revenue(agg, ColumnRef(table: t, column: q), ColumnRef(table: t, column: p))
        }
      }
      throw unsupported("no table has a revenue column or a quantity and a price column")
    }

    mutating func setMeasure(_ measure: Measure, _ range: Range<Int>) {
      switch measure {
      case .column(_, let ref): _ = self.note(ref)
      case .revenue(_, let q, let p): _ = (self.note(q), self.note(p))
      case .rows: break
      }
      self.measure = measure
      self.subject = self.subject ?? measure.table
      self.measureItems.formUnion(range)
      self.use(range)
    }

    /// "highest paid", "cheapest", "newest", "most employees", "highest average salary", "top".
    mutating func readSuperlatives() throws(GenerationError) {
      for i in self.items.indices where !self.used[i] {
        let key = self.items[i].key
        guard Self.descWords.contains(key) || Self.ascWords.contains(key) else { continue }
        guard self.descending == nil else { throw unsupported("the question orders by more than one thing") }
        self.descending = Self.descWords.contains(key)
        let j = self.skip(i + 1)
        if self.isColumn(i) {
          self.order = .column(try self.resolve(i))
        } else if self.measureItems.contains(j) {
          self.order = .measure
        } else if self.isColumn(j), key != "top" {
          self.order = .column(try self.resolve(j))
        } else if Self.dateOrderWords.contains(key) {
          self.order = .column(try self.defaultDate(try self.subjectTable()))
        } else if let t = self.table(j), ["most", "fewest", "least"].contains(key), self.measure == nil {
          self.setMeasure(.rows(t), j..<(j + 1))
          self.order = .measure
        } else if key != "top", self.table(j) == nil {
          throw unsupported("cannot tell what '\(key)' is about")
        }  // else "top"/"largest departments": "by <column>" gives the order
        self.used[i] = true
        if case .column(let ref) = self.order { self.subject = self.subject ?? ref.table }
      }
    }

    /// "per/each/by <table>" (its label), "<table> <column>", "<column>", "<unit>"; "monthly";
    /// "by <column>" after "top" orders; "by <measure>" orders by it.
    mutating func readGroups() throws(GenerationError) {
      for i in self.items.indices where !self.used[i] {
        if let w = self.word(i), let unit = ["daily": "day", "weekly": "week", "monthly": "month", "yearly": "year"][w]
        {
          self.groups.append(.bucket(unit, try self.defaultDate(try self.subjectTable())))
          self.used[i] = true
          continue
        }
        guard let w = self.word(i), ["per", "each", "by"].contains(w) else { continue }
        let j = self.skip(i + 1)
        if w == "by", i > 0, ["sorted", "ordered", "ranked"].contains(self.items[i - 1].key), self.isColumn(j) {
          self.order = .column(try self.resolve(j))  // "sorted by salary [descending]"
          let direction = ["asc", "ascending", "desc", "descending"].contains(self.word(j + 1) ?? "")
          self.descending = self.descending ?? self.word(j + 1)?.hasPrefix("desc") == true
          self.use((i - 1)..<(direction ? j + 2 : j + 1))
          self.sorted = true
          continue
        } else if w == "by", self.measureItems.contains(j) {
          self.order = .measure
        } else if w == "by", self.descending != nil, self.measure == nil, self.isColumn(j) {
          self.order = .column(try self.resolve(j))
        } else if let t = self.table(j), self.groupItems.contains(j) {
          if self.isColumn(j + 1), self.qualifiers[j + 1] == t {
            self.groups.append(.column(try self.resolve(j + 1)))
          } else {
            self.groups += self.label(t).map(Expr.column)
          }
        } else if self.isColumn(j) {
          self.groups.append(.column(try self.resolve(j)))
        } else if let unit = self.word(j), Self.units.contains(unit) {
          let dated = self.isColumn(i - 1, .date)  // "hired per year"
          self.groups.append(
            .bucket(unit, dated ? try self.resolve(i - 1, .date) : try self.defaultDate(try self.subjectTable())))
        } else if w == "by" {
          continue
        } else {
          throw unsupported("cannot tell what '\(w)' groups by")
        }
        self.use(i..<(j + 1))
        if ["for", "in"].contains(self.word(i - 1) ?? "") { self.used[i - 1] = true }
      }
    }

    /// Sample values and flags: equal to, or (after "not") different from. A column named next to
    /// a value narrows it ("title is 'Engineer'", "the gold tier").
    mutating func readValues() throws(GenerationError) {
      for i in self.items.indices where !self.used[i] {
        let n = self.skipBack(i - 1, ["in", "from", "is", "of", "at", "equal", "to"])
        let negated = Self.negations.contains(self.word(n) ?? "")
        switch self.items[i].kind {
        case .values(var values):
          let before = ["is", "=", "of", "equal", "equals"].contains(self.word(i - 1) ?? "") ? i - 2 : i - 1
          if let j = [before, i + 1].first(where: { j in
            self.isColumn(j) && self.items[j].refs.contains { r in values.contains { $0.0 == r } }
          }) {
            values = values.filter { self.items[j].refs.contains($0.0) }
            self.used[j] = true
          }
          let ref = try self.resolve(i, among: values.map(\.0))
          let value = values.first { $0.0 == ref }!.1
          if let k = self.filters.firstIndex(where: { if case .equals(ref, _, negated) = $0 { true } else { false } }),
            case .equals(_, let earlier, _) = self.filters[k]
          {
            self.filters[k] = .equals(ref, earlier + [value], negated: negated)  // "India and France"
          } else {
            self.filters.append(.equals(ref, [value], negated: negated))
          }
        case .flags(let flags):
          let ref = try self.resolve(i, among: flags.map(\.0))
          self.filters.append(.bool(ref, flags.first { $0.0 == ref }!.1 != negated))
        default: continue
        }
        if negated { self.used[n] = true }
      }
    }

    /// A word left over must not change the meaning: a comparison, a negation, an "or" between
    /// conditions, a name, or a word after "in", "with", "whose"… that links to nothing is refused.
    func checkLeftover(_ i: Int) throws(GenerationError) {
      let key = self.items[i].key
      if Self.comparators.contains(where: { self.phrase(i, $0.0) }) {
        throw unsupported("cannot read the comparison '\(key) …': it needs a numeric column and a number")
      }
      if Self.negations.contains(key) { throw unsupported("cannot tell what '\(key)' applies to") }
      if key == "or", self.filters.count + self.pendingDates.count > 1 {
        throw unsupported("cannot combine conditions with 'or'")
      }
      guard !fillerWords.contains(key) else { return }
      let introduced = [i - 1, i - 2].contains {
        ["in", "from", "named", "called", "with", "having", "whose", "where"].contains(self.word($0) ?? "")
      }
      if self.items[i].capitalized || key.contains(where: \.isNumber) || introduced {
        throw unsupported("cannot link '\(key)' to a table, column or value")
      }
    }

    /// A number, a date or a quoted string left over, or a name that links to nothing, is refused
    /// rather than dropped; a column left over is selected.
    mutating func readLeftovers() throws(GenerationError) {
      for i in self.items.indices where !self.used[i] {
        let item = self.items[i]
        switch item.kind {
        case .number, .date, .quoted: throw unsupported("cannot tell what '\(item.key)' refers to")
        case .columns: self.selected.append(try self.resolve(i))
        case .word:
          try self.checkLeftover(i)
        default: continue
        }
      }
    }
  }
}

// MARK: - Planning

extension OfflineSQLGenerator {
  /// Turns what was read into a plan: the kind, the root table, joins, outputs and order.
  fileprivate struct Planner {
    var reading: Interpreter
    var tables: [CatalogTable] { self.reading.tables }

    init(_ reading: Interpreter) { self.reading = reading }

    mutating func plan() throws(GenerationError) -> Plan {
      guard let subject = self.reading.subject else { throw unsupported("no table of the catalog is named") }
      guard !self.tables[subject].columns.isEmpty else { throw unsupported("\(self.tables[subject].name) has no columns") }
      var measure = self.reading.measure, order = self.reading.order, groups = self.reading.groups
      let descending = self.reading.descending ?? true
      if order == nil, self.reading.descending != nil {
        throw unsupported("cannot tell what to order by ('top 5 products by price')")
      }
      var implicitGroup = false
      if measure == nil, case .column(let ref)? = order, !groups.isEmpty || ref.table != subject {
        measure = .column(descending ? .max : .min, ref)  // "highest salary per department"
        order = groups.isEmpty ? .measure : nil
      }
      if groups.isEmpty, case .measure? = order, let m = measure, m.table != subject {
        groups = self.reading.label(subject).map(Expr.column)  // "which department has the most employees"
        implicitGroup = true
      }
      if !groups.isEmpty, measure == nil { measure = .rows(subject) }
      var plan = Plan(root: measure?.table ?? subject)
      plan.filters = self.reading.filters
      for (range, table) in self.reading.pendingDates {
        plan.filters.append(.range(try self.reading.defaultDate(table ?? plan.root), range))
      }
      if case .column(let ref)? = order, self.reading.column(ref).isNullable { plan.filters.append(.notNull(ref)) }
      if let measure {
        try self.aggregate(
          &plan, measure, groups: groups, order: order.map { ($0, descending) }, implicitGroup: implicitGroup)
      } else {
        self.listing(&plan, subject: subject, order: order.map { ($0, descending) })
      }
      var needed =
        [subject]
        + self.reading.mentioned.filter { t in
          self.reading.items.indices.contains {
            self.reading.table($0) == t && self.reading.qualifiers[$0] == nil && !self.reading.groupItems.contains($0)
          }
        }
      for ref in self.reading.chosen where !needed.contains(ref.table) { needed.append(ref.table) }
      (plan.joins, plan.distinct) = try self.joins(root: plan.root, needed: needed)
      try self.checkFanOut(&plan)
      plan.columns = self.reading.chosen
      return plan
    }

    /// The subject's columns (or those named), and the label of every other table named.
    mutating func listing(_ plan: inout Plan, subject: Int, order: (Expr, Bool)?) {
      var columns = self.reading.selected
      if columns.isEmpty {
        columns = self.reading.refs(subject) { _ in true }
        plan.everyColumnOf = subject
      }
      if case .column(let ref)? = order?.0, !columns.contains(ref) { columns.append(ref) }
      plan.outputs = columns.map { (.column($0), nil) }
      for t in self.reading.mentioned
      where t != subject
        && self.reading.items.indices.contains(where: {
          self.reading.table($0) == t && self.reading.qualifiers[$0] == nil
        })
      {
        let prefix = Tokenizer.stem(self.tables[t].name.lowercased()) + "_"
        for ref in self.reading.label(t) {
          plan.outputs.append((.column(ref), prefix + self.reading.column(ref).name.lowercased()))
        }
      }
      let topN = order != nil && !self.reading.sorted
      plan.kind = topN ? .topN : .listing
      plan.order = order.map { [$0] } ?? []
      let plural = self.reading.subjectItem.map { self.reading.items[$0].plural } ?? true
      plan.limit = self.reading.limit ?? (!topN ? 100 : plural ? 10 : 1)
    }

    mutating func aggregate(
      _ plan: inout Plan, _ measure: Measure, groups: [Expr], order: (Expr, Bool)?, implicitGroup: Bool
    ) throws(GenerationError) {
      if let extra = self.reading.selected.first {
        throw unsupported("cannot tell what '\(self.reading.column(extra).name)' is for in an aggregate")
      }
      if groups.isEmpty, order != nil || self.reading.limit != nil {
        throw unsupported("cannot take an aggregate over the top rows of a table")
      }
      let (expr, alias) = self.measureExpr(measure)
      plan.groups = groups
      plan.outputs =
        groups.map { g in if case .bucket(let unit, _) = g { (g, unit) } else { (g, nil) } } + [(expr, alias)]
      guard !groups.isEmpty else {
        plan.kind = if case .rows = measure { .count } else { .aggregate }
        return
      }
      plan.kind = .grouped
      let plural = self.reading.subjectItem.map { self.reading.items[$0].plural } ?? true
      if let order {
        if case .column(let ref) = order.0, !groups.contains(where: { if case .column(ref) = $0 { true } else { false } }) {
          throw unsupported("groups are ordered by their aggregate or a grouped column, not by \(self.reading.name(ref))")
        }
        plan.order = [(order.0.isMeasure ? .name(alias) : order.0, order.1)]
        plan.limit = self.reading.limit ?? (!implicitGroup ? 100 : plural ? 10 : 1)
      } else {
        plan.order = plan.outputs.dropLast().map { ($0.1.map(Expr.name) ?? $0.0, false) }
        plan.limit = self.reading.limit ?? 100
      }
    }

    func measureExpr(_ measure: Measure) -> (Expr, String) {
      let prefix: (Agg) -> String = { $0 == .sum ? "total" : $0.rawValue }
      switch measure {
      case .rows(let t):
        return (.aggregate(.count, nil, distinct: false), Tokenizer.stem(self.tables[t].name.lowercased()) + "_count")
      case .column(let agg, let ref):
        let call = Expr.aggregate(agg, .column(ref), distinct: false)
        let numeric = columnKind(self.reading.column(ref)) == .number
        return (
          agg == .avg && numeric ? .round(call) : call, "\(prefix(agg))_\(self.reading.column(ref).name.lowercased())"
        )
      case .revenue(let agg, let q, let p):
        let call = Expr.aggregate(agg, .product(q, p), distinct: false)
        return (agg == .avg ? .round(call) : call, prefix(agg) + "_revenue")
      }
    }

    /// Joins from the root to every needed table, each along the shortest path over foreign keys
    /// (either direction, at most 3 hops) from the tables joined so far.
    func joins(root: Int, needed: [Int]) throws(GenerationError) -> ([Edge], Bool) {
      let graph = Self.graph(self.tables)
      var joined = [root], joins: [Edge] = []
      for target in needed where !joined.contains(target) {
        guard let path = Self.path(from: joined, to: target, graph) else {
          throw unsupported(
            "no foreign-key path of at most 3 joins links \(self.tables[root].name) and \(self.tables[target].name)")
        }
        for edge in path where !joined.contains(edge.to) {
          joined.append(edge.to)
          joins.append(edge)
        }
      }
      return (joins, joins.contains(where: \.fanOut))
    }

    static func graph(_ tables: [CatalogTable]) -> [[Edge]] {
      var graph = Array(repeating: [Edge](), count: tables.count)
      for (t, table) in tables.enumerated() {
        for key in table.foreignKeys {
          guard
            let r = tables.indices.first(where: {
              tables[$0].name == key.referencedTable
                && (key.referencedSchema.isEmpty || tables[$0].schema == key.referencedSchema)
            }), r != t
          else { continue }
          let from = key.columns.compactMap { c in table.columns.firstIndex { $0.name == c } }.map {
            ColumnRef(table: t, column: $0)
          }
          let to = key.referencedColumns.compactMap { c in tables[r].columns.firstIndex { $0.name == c } }
            .map { ColumnRef(table: r, column: $0) }
          guard from.count == key.columns.count, to.count == from.count, !from.isEmpty else { continue }
          graph[t].append(Edge(from: t, to: r, pairs: Array(zip(to, from)), fanOut: false))
          graph[r].append(Edge(from: r, to: t, pairs: Array(zip(from, to)), fanOut: true))
        }
      }
      return graph
    }

    /// Breadth-first from every source, at most 3 edges deep.
    static func path(from sources: [Int], to target: Int, _ graph: [[Edge]]) -> [Edge]? {
      var depth: [Int: Int] = [:], parent: [Int: Edge] = [:]
      for source in sources { depth[source] = 0 }
      var queue = sources, head = 0
      while head < queue.count, depth[target] == nil {
        let node = queue[head]
        head += 1
        for edge in graph[node] where depth[edge.to] == nil && depth[node]! < 3 {
          depth[edge.to] = depth[node]! + 1
          parent[edge.to] = edge
          queue.append(edge.to)
        }
      }
      guard depth[target] != nil else { return nil }
      var path: [Edge] = [], node = target
      while let edge = parent[node] {
        path.insert(edge, at: 0)
        node = edge.from
      }
      return path
    }

    /// A join to the many side repeats the root's rows: listings are DISTINCT, counts count
    /// distinct keys, and sums and averages are refused.
    func checkFanOut(_ plan: inout Plan) throws(GenerationError) {
      guard plan.distinct, plan.kind != .listing, plan.kind != .topN else { return }
      plan.distinct = false
      for (i, output) in plan.outputs.enumerated() {
        switch output.0 {
        case .aggregate(.count, nil, _):
          let key = self.reading.refs(plan.root) { $0.isPrimaryKey }
          guard key.count == 1 else {
            throw unsupported("counting \(self.tables[plan.root].name) across joins needs a one-column key")
          }
          plan.outputs[i].0 = .aggregate(.count, .column(key[0]), distinct: true)
        case .aggregate(.sum, _, _), .aggregate(.avg, _, _), .round:
          throw unsupported(
            "a sum or average over \(self.tables[plan.root].name) joined to many rows would count rows twice")
        default: continue
        }
      }
    }
  }
}

// MARK: - Writing SQL

extension OfflineSQLGenerator {
  fileprivate struct Renderer {
    let plan: Plan
    let catalog: SchemaCatalog
    let dialect: SQLDialect
    var aliases: [Int: String] = [:]

    static let reserved: Set<String> = [
      "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "between",
      "binary", "both", "by", "case", "cast", "check", "collate", "collation", "column", "concurrently",
      "constraint", "create", "cross", "current_catalog", "current_date", "current_role", "current_schema",
      "current_time", "current_timestamp", "current_user", "default", "deferrable", "delete", "desc", "distinct",
      "do", "drop", "else", "end", "escape", "except", "exists", "false", "fetch", "for", "foreign", "freeze",
      "from", "full", "glob", "grant", "group", "having", "ilike", "in", "index", "initially", "inner", "insert",
      "intersect", "into", "is", "isnull", "join", "key", "lateral", "leading", "left", "like", "limit", "localtime",
      "localtimestamp", "match", "natural", "not", "notnull", "null", "offset", "on", "only", "or", "order", "outer",
      "overlaps", "placing", "primary", "references", "regexp", "returning", "right", "select", "session_user",
      "set", "similar", "some", "symmetric", "table", "tablesample", "then", "to", "trailing", "true", "union",
      "unique", "update", "user", "using", "values", "variadic", "verbose", "when", "where", "window", "with",
    ]

    init(plan: Plan, catalog: SchemaCatalog, dialect: SQLDialect) {
      self.plan = plan
      self.catalog = catalog
      self.dialect = dialect
      guard !plan.joins.isEmpty else { return }
      for t in [plan.root] + plan.joins.map(\.to) {
        let initials = String(
          catalog.tables[t].name.lowercased().split(separator: "_").compactMap(\.first).filter(\.isLetter))
        let base = initials.isEmpty ? "t" : initials
        var alias = base, n = 1
        while Self.reserved.contains(alias) || self.aliases.values.contains(alias) {
          n += 1
          alias = "\(base)\(n)"
        }
        self.aliases[t] = alias
      }
    }

    static func ident(_ name: String) -> String {
      let plain =
        name.first.map { $0.isLowercase || $0 == "_" } == true
        && name.allSatisfy { ($0.isLowercase || $0.isNumber || $0 == "_") && $0.isASCII }
      return plain && !Self.reserved.contains(name)
        ? name : "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    func table(_ t: Int) -> String {
      let table = self.catalog.tables[t]
      let name =
        ["", "public", "main"].contains(table.schema)
        ? Self.ident(table.name) : "\(Self.ident(table.schema)).\(Self.ident(table.name))"
      return self.aliases[t].map { "\(name) \($0)" } ?? name
    }

    func column(_ ref: ColumnRef) -> String {
      let name = Self.ident(self.catalog.tables[ref.table].columns[ref.column].name)
      return self.aliases[ref.table].map { "\($0).\(name)" } ?? name
    }

    func expr(_ e: Expr) -> String {
      switch e {
      case .column(let ref): return self.column(ref)
      case .aggregate(let agg, nil, _): return "\(agg.rawValue)(*)"
      case .aggregate(let agg, let inner?, let distinct):
        return "\(agg.rawValue)(\(distinct ? "DISTINCT " : "")\(self.expr(inner)))"
      case .round(let inner): return "round(\(self.expr(inner)), 2)"
      case .product(let a, let b): return "\(self.column(a)) * \(self.column(b))"
      case .name(let name): return Self.ident(name)
      case .measure: return "NULL"  // never planned: the planner names the measure
      case .bucket(let unit, let ref):
        let c = self.column(ref)
        switch (self.dialect, unit) {
        case (.postgresql, "year"): return "extract(YEAR FROM \(c))"
        case (.postgresql, _): return "date_trunc('\(unit)', \(c))"
        case (.sqlite, "day"): return "date(\(c))"
        case (.sqlite, _): return "strftime('\(["week": "%Y-%W", "month": "%Y-%m"][unit] ?? "%Y")', \(c))"
        }
      }
    }

    func filter(_ f: Filter) -> String {
      switch f {
      case .equals(let ref, let values, let negated):
        if values.count == 1 { return "\(self.column(ref)) \(negated ? "<>" : "=") \(Self.literal(values[0]))" }
        return "\(self.column(ref)) \(negated ? "NOT IN" : "IN") (\(values.map(Self.literal).joined(separator: ", ")))"
      case .bool(let ref, let on):
        return "\(self.column(ref)) = \(self.dialect == .sqlite ? (on ? "1" : "0") : (on ? "TRUE" : "FALSE"))"
      case .compare(let ref, let op, let value): return "\(self.column(ref)) \(op) \(value)"
      case .between(let ref, let low, let high): return "\(self.column(ref)) BETWEEN \(low) AND \(high)"
      case .like(let ref, let text):
        return "\(self.column(ref)) \(self.dialect == .sqlite ? "LIKE" : "ILIKE") \(Self.literal("%\(text)%"))"
      case .notNull(let ref): return "\(self.column(ref)) IS NOT NULL"
      case .range(let ref, .between(let low, let high)):
        let parts = [
          low.map { "\(self.column(ref)) >= \(Self.literal($0.text))" },
          high.map { "\(self.column(ref)) < \(Self.literal($0.text))" },
        ]
        return parts.compactMap { $0 }.joined(separator: " AND ")
      case .range(let ref, .last(let n, let unit)):
        if self.dialect == .postgresql {
          return "\(self.column(ref)) >= now() - INTERVAL '\(n) \(unit)\(n == 1 ? "" : "s")'"
        }
        let (count, sqliteUnit) = unit == "week" ? (n * 7, "day") : (n, unit)
        return "\(self.column(ref)) >= date('now', '-\(count) \(sqliteUnit)\(count == 1 ? "" : "s")')"
      }
    }

    func render() -> GeneratedSQL {
      var sql = "SELECT " + (self.plan.distinct ? "DISTINCT " : "")
      sql += self.plan.outputs.map { output in
        output.1.map { "\(self.expr(output.0)) AS \(Self.ident($0))" } ?? self.expr(output.0)
      }
      .joined(separator: ", ")
      sql += " FROM " + self.table(self.plan.root)
      for join in self.plan.joins {
        let on = join.pairs.map { "\(self.column($0.0)) = \(self.column($0.1))" }.joined(separator: " AND ")
        sql += " JOIN \(self.table(join.to)) ON \(on)"
      }
      if !self.plan.filters.isEmpty { sql += " WHERE " + self.plan.filters.map(self.filter).joined(separator: " AND ") }
      if !self.plan.groups.isEmpty { sql += " GROUP BY " + self.plan.groups.map(self.expr).joined(separator: ", ") }
      if !self.plan.order.isEmpty {
        sql +=
          " ORDER BY " + self.plan.order.map { "\(self.expr($0.0)) \($0.1 ? "DESC" : "ASC")" }.joined(separator: ", ")
      }
      if let limit = self.plan.limit { sql += " LIMIT \(limit)" }
      return GeneratedSQL(sql: sql, explanation: self.explanation())
    }

    func explanation() -> String {
      let tables = ([self.plan.root] + self.plan.joins.map(\.to)).map { self.catalog.tables[$0].name }
      let columns = self.plan.columns.map {
        "\(self.catalog.tables[$0.table].name).\(self.catalog.tables[$0.table].columns[$0.column].name)"
      }
      let kind = self.plan.kind.rawValue
      var text = "Offline schema linking recognised \("aeiou".contains(kind.first!) ? "an" : "a") \(kind) question. "
      text +=
        "Tables: \(tables.joined(separator: ", "))\(self.plan.joins.isEmpty ? "" : " (joined along foreign keys)")."
      if !columns.isEmpty { text += " Columns: \(columns.joined(separator: ", "))." }
      if let t = self.plan.everyColumnOf { text += " Selects every column of \(self.catalog.tables[t].name)." }
      return text
    }
  }
}
