internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import PlatformProtos
internal import SwiftProtobuf

struct AdminCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "admin", abstract: "Administration: users, roles, the audit log (agent:admin), index monitoring.",
    subcommands: [Users.self, Roles.self, Audit.self, DatabaseReport.self])

  static func client(_ session: Session) throws -> Platform_Agent_V1_UserServiceClient {
    .init(channel: try session.channel(.agent))
  }

  struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Users.", subcommands: [List.self, SetRoles.self])

    struct SetRoles: AsyncParsableCommand {
      static let configuration = CommandConfiguration(
        commandName: "set-roles", abstract: "Replace a user's roles (built-in or defined; effective with their next token).",
        discussion: "The user's extra permissions are kept, unless --permission is given: then they are replaced.")

      @OptionGroup var global: GlobalOptions
      @Argument(help: "The user's id.") var user: String
      @Argument(help: "Role names, e.g. developer.") var roles: [String]
      @Option(help: "An extra permission (repeatable); replaces the user's extra permissions, e.g. persona:read.")
      var permission: [String] = []

      func run() async throws {
        try await Session.with(self.global) { session in
          let client = try AdminCommand.client(session)
          // UpdateUserRoles replaces the permissions too: without --permission, send back the
          // user's own.
          var permissions = self.permission
          if permissions.isEmpty {
            permissions = try await session.call { try await client.getUser(.with { $0.id = self.user }, options: $0) }.permissions
          }
          let updated = try await session.call { options in
            try await client.updateUserRoles(
              .with {
                $0.userID = self.user
                $0.roleNames = self.roles
                $0.permissions = permissions
              }, options: options)
          }
          try self.global.emit(updated) { UserText.fields(updated).print() }
        }
      }
    }

    struct List: AsyncParsableCommand {
      static let configuration = CommandConfiguration(abstract: "List users.")

      @OptionGroup var global: GlobalOptions
      @Option(help: "A substring of email or name.") var query = ""
      @Option(help: "Only holders of this role.") var role = ""
      @Flag(help: "Include deactivated users.") var inactive = false
      @Option(help: "At most this many.") var limit = 100

      func run() async throws {
        try await Session.with(self.global) { session in
          let client = try AdminCommand.client(session)
          let response = try await session.call { options in
            try await client.listUsers(
              .with {
                $0.query = self.query
                $0.roleName = self.role
                $0.includeInactive = self.inactive
                $0.pageSize = Int32(self.limit)
              }, options: options)
          }
          try self.global.emitList(response, shown: response.users.count, nextPageToken: response.nextPageToken) {
            var table = Table("ID", "EMAIL", "NAME", "ROLES", "ACTIVE", "LAST LOGIN")
            for user in response.users {
              table.append(user.id, user.email, user.name, UserText.roles(user), user.isActive ? "yes" : "no", Format.time(user.lastLoginTime))
            }
            table.print()
          }
        }
      }
    }
  }

  struct Roles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the roles with their permissions and holders.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try AdminCommand.client(session)
        let response = try await session.call { try await client.listRoles(.init(), options: $0) }
        try self.global.emit(response) {
          var table = Table("ROLE", "BUILT-IN", "USERS", "PERMISSIONS", maxCellWidth: 90)
          for role in response.roles {
            table.append(role.name, role.builtin ? "yes" : "no", "\(role.userCount)", role.permissions.joined(separator: " "))
          }
          table.print()
        }
      }
    }
  }

  struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the agent service's audit log, newest first.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Only events of this user id.") var subject = ""
    @Option(help: "Only this action (e.g. login_failed).") var action = ""
    @Option(help: "At most this many.") var limit = 50

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try AdminCommand.client(session)
        let response = try await session.call { options in
          try await client.listAuditEvents(
            .with {
              $0.subjectID = self.subject
              $0.action = self.action
              $0.pageSize = Int32(self.limit)
            }, options: options)
        }
        try self.global.emitList(response, shown: response.events.count, nextPageToken: response.nextPageToken) {
          var table = Table("TIME", "SUBJECT", "RESOURCE", "ACTION", "DECISION", "DETAIL", maxCellWidth: 70)
          for event in response.events {
            let detail = event.detail.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            table.append(Format.time(event.createTime), event.subjectID, event.resource, event.action, event.decision, detail)
          }
          table.print()
        }
      }
    }
  }
}
