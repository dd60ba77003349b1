internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import PlatformProtos
internal import SwiftProtobuf

struct Login: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Sign in and keep the tokens for the next commands.",
    discussion: "The password comes from --password-stdin, else PLATFORM_PASSWORD, else a prompt without echo.")

  @OptionGroup var global: GlobalOptions
  @Option(help: "The account's email.") var email: String
  @Flag(help: "Read the password from the first line of stdin.") var passwordStdin = false

  func run() async throws {
    let password = try Input.password(fromStdin: self.passwordStdin)
    try await Session.with(self.global) { session in
      let auth = Platform_Agent_V1_AuthServiceClient(channel: try session.channel(.agent))
      let response = try await auth.login(
        .with {
          $0.email = self.email
          $0.password = password
        }, options: session.anonymousOptions)
      try CredentialStore.save(StoredCredentials(email: response.user.email, tokens: response.tokens))
      try self.global.emit(response.user) {
        print("Logged in as \(response.user.email) (\(UserText.roles(response.user)))")
        if Session.apiKey != nil { printError("note: PLATFORM_API_KEY is set and is used instead of these tokens") }
      }
    }
  }
}

struct Logout: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "End the session at the server and forget the stored tokens.",
    discussion: "With --json, prints {\"email\": …, \"loggedOut\": true|false} (false: there was no session).")

  @OptionGroup var global: GlobalOptions

  func run() async throws {
    guard let stored = try? CredentialStore.load() else {
      CredentialStore.remove()
      try self.report(email: nil)
      return
    }
    try await Session.with(self.global) { session in
      let auth = Platform_Agent_V1_AuthServiceClient(channel: try session.channel(.agent))
      do {
        // Through the refreshing path: an expired access token is renewed first, so the server
        // ends the session rather than refusing the call.
        _ = try await session.call { options in
          try await auth.logout(.with { $0.refreshToken = session.storedCredentials?.refreshToken ?? "" }, options: options)
        }
      } catch let error as RPCError where error.code == .unauthenticated {
        // The session has ended already (revoked, or its refresh token expired): nothing to end.
      }
      CredentialStore.remove()
      try self.report(email: stored.email)
    }
  }

  /// Says who was logged out (nil: nobody was).
  func report(email: String?) throws {
    if self.global.json {
      let object: [String: Any] = ["email": email ?? "", "loggedOut": email != nil]
      print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
    } else if let email {
      print("Logged out \(email)")
    } else {
      printError("Not logged in")
    }
  }
}

struct WhoAmI: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show the signed-in user.")

  @OptionGroup var global: GlobalOptions

  func run() async throws {
    try await Session.with(self.global) { session in
      let auth = Platform_Agent_V1_AuthServiceClient(channel: try session.channel(.agent))
      let user = try await session.call { try await auth.getCurrentUser(.init(), options: $0) }
      try self.global.emit(user) {
        var fields = UserText.fields(user)
        fields.add("Credential", Session.apiKey != nil ? "API key (PLATFORM_API_KEY)" : "tokens in \(CredentialStore.file.path)")
        fields.print()
      }
    }
  }
}

struct Register: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Create an account (a viewer; admins grant more).",
    discussion: "Needs open registration (AGENT_REGISTRATION=open, the default). Then `platform login`.")

  @OptionGroup var global: GlobalOptions
  @Option(help: "The account's email.") var email: String
  @Option(help: "Your name.") var name: String
  @Flag(help: "Read the password from the first line of stdin.") var passwordStdin = false

  func run() async throws {
    let password = try Input.password(fromStdin: self.passwordStdin, prompt: "New password (12 characters or more): ")
    try await Session.with(self.global) { session in
      let auth = Platform_Agent_V1_AuthServiceClient(channel: try session.channel(.agent))
      let user = try await auth.register(
        .with {
          $0.email = self.email
          $0.password = password
          $0.name = self.name
        }, options: session.anonymousOptions)
      try self.global.emit(user) {
        UserText.fields(user).print()
      }
    }
  }
}

/// How users read in tables.
enum UserText {
  static func roles(_ user: Platform_Agent_V1_User) -> String {
    let names = user.roleNames.isEmpty ? user.roles.map { Format.enumName($0).lowercased() } : user.roleNames
    return names.joined(separator: ",")
  }

  static func fields(_ user: Platform_Agent_V1_User) -> Fields {
    var fields = Fields()
    fields.add("ID", user.id)
    fields.add("Email", user.email)
    fields.add("Name", user.name)
    fields.add("Roles", self.roles(user))
    fields.add("Active", user.isActive ? "yes" : "no")
    if !user.permissions.isEmpty { fields.add("Permissions", user.permissions.joined(separator: " ")) }
    return fields
  }
}

struct ApiKeyCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "api-key", abstract: "API keys for scripts and schedules (used through PLATFORM_API_KEY).",
    subcommands: [Create.self, List.self, Revoke.self])

  static func client(_ session: Session) throws -> Platform_Agent_V1_AuthServiceClient {
    .init(channel: try session.channel(.agent))
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Create a key; prints its secret, shown this once.",
      discussion: "Example: export PLATFORM_API_KEY=$(platform api-key create --name laptop --permission persona:read)")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Its name.") var name: String
    @Option(help: "A permission it grants (repeatable; at most yours), e.g. persona:read.") var permission: [String] = []
    @Option(help: "Calls per minute it may make (default 100; a load test needs more).") var rateLimit: Int32?

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try ApiKeyCommand.client(session)
        let response = try await session.call { options in
          try await client.createApiKey(
            .with {
              $0.name = self.name
              $0.permissions = self.permission
              if let rateLimit = self.rateLimit { $0.rateLimitPerMinute = rateLimit }
            }, options: options)
        }
        try self.global.emit(response) {
          print(response.secret)
          printError("key \(response.apiKey.id): store the secret now, it is not shown again")
        }
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List your keys.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Include revoked keys.") var revoked = false

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try ApiKeyCommand.client(session)
        let response = try await session.call { try await client.listApiKeys(.with { $0.includeRevoked = self.revoked }, options: $0) }
        try self.global.emit(response) {
          var table = Table("ID", "NAME", "PREFIX", "STATUS", "PERMISSIONS", "LAST USED")
          for key in response.apiKeys {
            table.append(
              key.id, key.name, key.keyPrefix, Format.enumName(key.status), key.permissions.joined(separator: " "), Format.time(key.lastUsedTime))
          }
          table.print()
        }
      }
    }
  }

  struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke a key (refused everywhere within 30 s).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The key's id.") var id: String

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try ApiKeyCommand.client(session)
        let key = try await session.call { try await client.revokeApiKey(.with { $0.id = self.id }, options: $0) }
        try self.global.emit(key) { print("\(key.id) \(Format.enumName(key.status))") }
      }
    }
  }
}
