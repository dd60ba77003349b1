/// Lists page by bytes as well as by count: a page holds fewer items when they are large, and
/// its next page token continues after the last one it holds. Every client's default receive
/// limit is 4 MiB (grpcio, grpc-go, ours), so a page's items stay under `listBytes` and the
/// response under 4 MiB whatever its rows hold.
public enum ResponseBudget {
  /// The bytes a page's items may take: 3 MiB, leaving room for the response's other fields.
  public static let listBytes = 3 << 20

  /// How many of the leading items fit in `budget` bytes, each taking `size(item)` (an upper
  /// bound of its encoded size). At least one, so that a listing always moves on: every stored
  /// field has a byte limit, which keeps one item far below the budget.
  public static func fittingCount<Item>(_ items: [Item], budget: Int = listBytes, size: (Item) -> Int) -> Int {
    var used = 0
    for (index, item) in items.enumerated() {
      used += size(item)
      if used > budget { return max(index, 1) }
    }
    return items.count
  }

  /// The page a listing answers with: the leading rows that fit in `budget` bytes, and the row
  /// the next page continues after, nil when these are the last.
  /// - Parameters:
  ///   - rows: the rows read for this page, in order.
  ///   - more: whether the store has rows after these.
  public static func page<Row>(
    _ rows: [Row], more: Bool, budget: Int = listBytes, size: (Row) -> Int
  ) -> (rows: ArraySlice<Row>, continueAfter: Row?) {
    let count = fittingCount(rows, budget: budget, size: size)
    let continues = count < rows.count || more
    return (rows.prefix(count), continues ? rows.prefix(count).last : nil)
  }

  /// An upper bound of the encoded size of a string, bytes or message field of `length`
  /// bytes, its tag and length prefix included.
  public static func fieldSize(_ length: Int) -> Int {
    length + 3 + varintSize(length)
  }

  static func varintSize(_ value: Int) -> Int {
    var size = 1
    var rest = UInt64(truncatingIfNeeded: value) >> 7
    while rest != 0 {
      size += 1
      rest >>= 7
    }
    return size
  }
}
