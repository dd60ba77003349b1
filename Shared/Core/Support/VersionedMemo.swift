internal import Synchronization

/// A bounded in-process memo of what a version of something decodes or encodes to.
///
/// A version names one content for good (it grows with every write), so an entry is right for
/// as long as callers ask for the version it holds: nothing is ever invalidated, and the source
/// of truth (Redis, the database) still says which version is current. The memo only saves the
/// work of turning that version into a value again.
///
/// Bounded by entries and by bytes: when a new entry would pass either bound, the memo starts
/// over empty, which costs refills, never a wrong answer.
public final class VersionedMemo<Key: Hashable & Sendable, Value: Sendable>: Sendable {
  public let maxEntries: Int
  public let maxBytes: Int

  private struct Entry {
    var version: Int64
    var value: Value
    var bytes: Int
  }

  private struct State {
    var entries: [Key: Entry] = [:]
    var bytes = 0
  }

  private let state = Mutex(State())

  /// - Parameters:
  ///   - maxEntries: how many keys it holds at most (0 turns it off).
  ///   - maxBytes: how many bytes (as the caller counts them) it holds at most.
  public init(maxEntries: Int, maxBytes: Int) {
    self.maxEntries = max(0, maxEntries)
    self.maxBytes = max(0, maxBytes)
  }

  /// The value memoized for `key` at exactly `version`.
  public func value(for key: Key, version: Int64) -> Value? {
    self.state.withLock { state in
      guard let entry = state.entries[key], entry.version == version else { return nil }
      return entry.value
    }
  }

  /// Memoizes `value` as `key` at `version`, unless a newer version is held already.
  public func store(_ value: Value, version: Int64, bytes: Int, for key: Key) {
    guard self.maxEntries > 0, bytes <= self.maxBytes else { return }
    self.state.withLock { state in
      let previous = state.entries[key]
      if let previous, previous.version > version { return }
      let grown = state.bytes - (previous?.bytes ?? 0) + bytes
      if (previous == nil && state.entries.count >= self.maxEntries) || grown > self.maxBytes {
        state.entries.removeAll(keepingCapacity: true)
        state.bytes = 0
      } else if let previous {
        state.bytes -= previous.bytes
      }
      state.entries[key] = Entry(version: version, value: value, bytes: bytes)
      state.bytes += bytes
    }
  }

  /// How many entries and bytes it holds.
  public var usage: (entries: Int, bytes: Int) {
    self.state.withLock { ($0.entries.count, $0.bytes) }
  }
}
