internal import Synchronization

/// What a service says about its own state beside SERVING: lines `name: value` under the
/// verdict of the admin port's `/readyz` (what isolation the code sandbox has, for instance).
public final class HealthDetails: Sendable {
  private let entries = Mutex<[(name: String, value: String)]>([])

  public init() {}

  /// Sets `name` (replacing an earlier value); newlines in either become spaces.
  public func set(_ name: String, _ value: String) {
    let clean = { (text: String) in String(text.map { $0.isNewline ? " " : $0 }) }
    self.entries.withLock { entries in
      entries.removeAll { $0.name == clean(name) }
      entries.append((clean(name), clean(value)))
    }
  }

  /// The lines, in the order they were first set.
  public var text: String {
    self.entries.withLock { $0.map { "\($0.name): \($0.value)\n" }.joined() }
  }
}
