internal import Foundation

/// Why identity input was refused; each case names the field.
public enum IdentityError: Error, Equatable, Sendable {
  case invalidArgument(field: String, reason: String)
  /// A wrong email or password, an unknown, inactive or deleted user: one message for all, so
  /// the answer tells nothing about which accounts exist.
  case invalidCredentials
  /// A refresh token that is unknown, expired, revoked or used before.
  case invalidRefreshToken
  case alreadyExists(String)
  case registrationClosed
  case rateLimited(retryAfter: Duration)
  case busy
  case notFound(String)
}

/// An email address as accounts are keyed: trimmed, lowercased, ASCII only. Internationalized
/// addresses must come in their ASCII form (punycode): look-alike letters from other scripts
/// cannot make a second account that reads as the first.
public struct EmailAddress: Hashable, Sendable, CustomStringConvertible {
  public let value: String
  public var description: String { self.value }

  public static let maxLength = 254

  /// - Throws: `IdentityError.invalidArgument` naming `email`.
  public init(_ text: String) throws(IdentityError) {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    func refuse(_ reason: String) -> IdentityError { .invalidArgument(field: "email", reason: reason) }
    guard !trimmed.isEmpty else { throw refuse("is required") }
    guard trimmed.utf8.count <= Self.maxLength else { throw refuse("is longer than \(Self.maxLength) characters") }
    guard trimmed.utf8.allSatisfy({ $0 < 0x80 }) else {
      throw refuse("must be ASCII (give an internationalized domain in its xn-- form)")
    }
    let lowered = trimmed.lowercased()
    let parts = lowered.split(separator: "@", omittingEmptySubsequences: false)
    guard parts.count == 2 else { throw refuse("is not an address (local@domain)") }
    let (local, domain) = (parts[0], parts[1])
    // RFC 5322 dot-atom: atext characters, dots only between them.
    let atext = Set("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~".utf8)
    guard !local.isEmpty, local.utf8.count <= 64,
      local.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(atext.contains) })
    else { throw refuse("has an invalid part before the @") }
    let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
    let labelCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789-".utf8)
    guard labels.count >= 2,
      labels.allSatisfy({
        !$0.isEmpty && $0.utf8.count <= 63 && $0.utf8.allSatisfy(labelCharacters.contains) && $0.first != "-" && $0.last != "-"
      })
    else { throw refuse("has an invalid domain") }
    self.value = lowered
  }
}

/// A password as the service accepts it: long enough to resist guessing, short enough that
/// hashing it costs what hashing any other costs.
public enum PasswordPolicy {
  public static let minCharacters = 12
  /// In UTF-8 bytes.
  public static let maxBytes = 1024

  /// - Throws: `IdentityError.invalidArgument` naming `password`.
  public static func check(_ password: String) throws(IdentityError) {
    guard password.utf8.count <= Self.maxBytes else {
      throw .invalidArgument(field: "password", reason: "is longer than \(Self.maxBytes) bytes")
    }
    guard password.count >= Self.minCharacters else {
      throw .invalidArgument(field: "password", reason: "must be at least \(Self.minCharacters) characters")
    }
  }
}

/// A display name: 1–100 characters, no control characters.
public enum DisplayName {
  public static let maxCharacters = 100

  public static func check(_ name: String) throws(IdentityError) -> String {
    let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !trimmed.isEmpty else { throw .invalidArgument(field: "name", reason: "is required") }
    guard trimmed.count <= Self.maxCharacters, trimmed.utf8.count <= 4 * Self.maxCharacters else {
      throw .invalidArgument(field: "name", reason: "is longer than \(Self.maxCharacters) characters")
    }
    guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
      throw .invalidArgument(field: "name", reason: "contains control characters")
    }
    return trimmed
  }
}
