/// libpg_query's JSON parse tree, read without recursion into flat arrays: a statement nested a
/// thousand levels deep costs memory bounded by `maxNodes`, never stack. Nodes are in document
/// order; a node's children are indices into `nodes`.
struct ParseTree {
  enum Kind: UInt8 {
    case object, array, string, number, bool, null
  }

  struct Node {
    var kind: Kind
    /// The member name, for a member of an object.
    var key: String?
    /// A string's, number's or boolean's text.
    var text: String?
    var parent: Int
    var children: [Int] = []
  }

  private(set) var nodes: [Node] = []

  enum Failure: Error, Equatable {
    case tooDeep(Int)
    case tooLarge(Int)
    case malformed
  }

  init(json: [UInt8], maxDepth: Int, maxNodes: Int) throws(Failure) {
    var stack: [Int] = []
    var index = 0
    var pendingKey: String?
    let count = json.count

    func skipSpace() {
      while index < count, json[index] == 0x20 || json[index] == 0x0A || json[index] == 0x0D || json[index] == 0x09 { index += 1 }
    }
    func readString() throws(Failure) -> String {
      // At the opening quote.
      index += 1
      var bytes: [UInt8] = []
      while index < count {
        let byte = json[index]
        if byte == UInt8(ascii: "\"") {
          index += 1
          return String(decoding: bytes, as: UTF8.self)
        }
        if byte == UInt8(ascii: "\\") {
          guard index + 1 < count else { throw .malformed }
          let escaped = json[index + 1]
          index += 2
          switch escaped {
          case UInt8(ascii: "n"): bytes.append(0x0A)
          case UInt8(ascii: "t"): bytes.append(0x09)
          case UInt8(ascii: "r"): bytes.append(0x0D)
          case UInt8(ascii: "b"): bytes.append(0x08)
          case UInt8(ascii: "f"): bytes.append(0x0C)
          case UInt8(ascii: "u"):
            guard index + 4 <= count, var scalar = UInt32(String(decoding: json[index..<index + 4], as: UTF8.self), radix: 16) else {
              throw .malformed
            }
            index += 4
            if (0xD800..<0xDC00).contains(scalar), index + 6 <= count, json[index] == UInt8(ascii: "\\"), json[index + 1] == UInt8(ascii: "u"),
              let low = UInt32(String(decoding: json[index + 2..<index + 6], as: UTF8.self), radix: 16), (0xDC00..<0xE000).contains(low)
            {
              scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
              index += 6
            }
            bytes += Array(String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
          default: bytes.append(escaped)
          }
          continue
        }
        bytes.append(byte)
        index += 1
      }
      throw .malformed
    }
    func add(_ node: Node) throws(Failure) -> Int {
      guard self.nodes.count < maxNodes else { throw .tooLarge(maxNodes) }
      self.nodes.append(node)
      let id = self.nodes.count - 1
      if node.parent >= 0 { self.nodes[node.parent].children.append(id) }
      return id
    }

    skipSpace()
    repeat {
      skipSpace()
      guard index < count else { throw .malformed }
      let parent = stack.last ?? -1
      // In an object, each value is preceded by its key.
      if parent >= 0, self.nodes[parent].kind == .object, pendingKey == nil, json[index] != UInt8(ascii: "}") {
        guard json[index] == UInt8(ascii: "\"") else { throw .malformed }
        pendingKey = try readString()
        skipSpace()
        guard index < count, json[index] == UInt8(ascii: ":") else { throw .malformed }
        index += 1
        continue
      }
      let byte = json[index]
      switch byte {
      case UInt8(ascii: "{"), UInt8(ascii: "["):
        guard stack.count < maxDepth else { throw .tooDeep(maxDepth) }
        let id = try add(Node(kind: byte == UInt8(ascii: "{") ? .object : .array, key: pendingKey, parent: parent))
        pendingKey = nil
        stack.append(id)
        index += 1
        continue
      case UInt8(ascii: "}"), UInt8(ascii: "]"):
        guard let top = stack.popLast(), self.nodes[top].kind == (byte == UInt8(ascii: "}") ? .object : .array), pendingKey == nil else {
          throw .malformed
        }
        index += 1
      case UInt8(ascii: "\""):
        _ = try add(Node(kind: .string, key: pendingKey, text: try readString(), parent: parent))
        pendingKey = nil
      default:
        let start = index
        while index < count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x0A, 0x0D, 0x09].contains(json[index]) {
          index += 1
        }
        let text = String(decoding: json[start..<index], as: UTF8.self)
        let kind: Kind = text == "true" || text == "false" ? .bool : text == "null" ? .null : .number
        guard kind != .number || Double(text) != nil else { throw .malformed }
        _ = try add(Node(kind: kind, key: pendingKey, text: text, parent: parent))
        pendingKey = nil
      }
      skipSpace()
      if index < count, json[index] == UInt8(ascii: ",") { index += 1 }
    } while !stack.isEmpty
    skipSpace()
    guard index == count, !self.nodes.isEmpty else { throw .malformed }
  }

  /// The child of object `node` named `key`.
  func member(_ node: Int, _ key: String) -> Int? {
    self.nodes[node].children.first { self.nodes[$0].key == key }
  }

  /// The strings of a name list such as `funcname` ([{"String": {"sval": "x"}}, …]).
  func names(_ list: Int?) -> [String]? {
    guard let list, self.nodes[list].kind == .array else { return nil }
    var names: [String] = []
    for item in self.nodes[list].children {
      guard let string = self.member(item, "String"), let value = self.member(string, "sval"), let text = self.nodes[value].text else {
        return nil
      }
      names.append(text)
    }
    return names
  }

  /// A string member's text.
  func text(_ node: Int, _ key: String) -> String? {
    self.member(node, key).flatMap { self.nodes[$0].text }
  }
}
