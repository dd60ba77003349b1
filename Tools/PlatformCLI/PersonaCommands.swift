internal import ArgumentParser
internal import Foundation
internal import GRPCRuntime
internal import PlatformProtos
internal import SwiftProtobuf

struct PersonaCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "persona", abstract: "Personas: prompt templates with a variable schema.",
    subcommands: [Create.self, List.self, Get.self, Render.self])

  static func client(_ session: Session) throws -> Platform_Persona_V1_PersonaServiceClient {
    .init(channel: try session.channel(.persona))
  }

  static func table(_ personas: [Platform_Persona_V1_Persona]) -> Table {
    var table = Table("ID", "NAME", "PUBLIC", "VERSION", "USES", "UPDATED")
    for persona in personas {
      table.append(
        persona.id, persona.name, persona.isPublic ? "yes" : "no", "\(persona.version)", "\(persona.usageCount)",
        Format.time(persona.updateTime))
    }
    return table
  }

  static func fields(_ persona: Platform_Persona_V1_Persona) -> Fields {
    var fields = Fields()
    fields.add("ID", persona.id)
    fields.add("Name", persona.name)
    if !persona.description_p.isEmpty { fields.add("Description", persona.description_p) }
    fields.add("Public", persona.isPublic ? "yes" : "no")
    fields.add("Version", "\(persona.version)")
    fields.add("Template", persona.template)
    if !persona.variables.fields.isEmpty { fields.add("Variables", Format.json(persona.variables)) }
    return fields
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a persona.")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Its name.") var name: String
    @Option(help: "The Mustache template, e.g. 'You are {{role}}.'") var template: String?
    @Option(help: "Read the template from this file.") var templateFile: String?
    @Option(help: "A description.") var description = ""
    @Option(help: "The variables' JSON Schema (an object schema), e.g. '{\"type\": \"object\", \"properties\": {\"role\": {\"type\": \"string\"}}}'.")
    var variables: String?
    @Flag(help: "Visible to every user.") var `public` = false

    func validate() throws {
      guard (self.template == nil) != (self.templateFile == nil) else {
        throw ValidationError("Give the template with --template or --template-file")
      }
    }

    func run() async throws {
      let template = try self.template ?? Input.text(self.templateFile!)
      let schema = try Input.structure(self.variables, option: "--variables")
      try await Session.with(self.global) { session in
        let client = try PersonaCommand.client(session)
        let persona = try await session.call { options in
          try await client.createPersona(
            .with {
              $0.persona = .with {
                $0.name = self.name
                $0.template = template
                $0.description_p = self.description
                $0.variables = schema
                $0.isPublic = self.public
              }
            }, options: options)
        }
        try self.global.emit(persona) { PersonaCommand.fields(persona).print() }
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List your personas (and public ones with --public).")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Full-text search of name, description and template.") var query = ""
    @Flag(help: "Include other users' public personas.") var `public` = false
    @Option(help: "At most this many.") var limit = 50

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try PersonaCommand.client(session)
        let response = try await session.call { options in
          try await client.listPersonas(
            .with {
              $0.query = self.query
              $0.includePublic = self.public
              $0.pageSize = Int32(self.limit)
            }, options: options)
        }
        try self.global.emitList(response, shown: response.personas.count, nextPageToken: response.nextPageToken) {
          PersonaCommand.table(response.personas).print()
        }
      }
    }
  }

  struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one persona.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The persona's id.") var id: String

    func run() async throws {
      try await Session.with(self.global) { session in
        let client = try PersonaCommand.client(session)
        let persona = try await session.call { try await client.getPersona(.with { $0.id = self.id }, options: $0) }
        try self.global.emit(persona) { PersonaCommand.fields(persona).print() }
      }
    }
  }

  struct Render: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Render a persona's template with variables; prints the text.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The persona's id.") var id: String
    @Option(name: .customLong("var"), help: ArgumentHelp("A string variable (repeatable).", valueName: "key=value"))
    var vars: [String] = []
    @Option(help: "The variables as a JSON object (any types); --var adds to them.") var variables: String?

    func run() async throws {
      let variables = try Input.pairs(self.vars, over: Input.structure(self.variables, option: "--variables"), option: "--var")
      try await Session.with(self.global) { session in
        let client = try PersonaCommand.client(session)
        let response = try await session.call { options in
          try await client.renderPersona(
            .with {
              $0.personaID = self.id
              $0.variables = variables
            }, options: options)
        }
        try self.global.emit(response) { print(response.text) }
      }
    }
  }
}
