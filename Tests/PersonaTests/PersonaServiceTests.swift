import Foundation
import GRPCRuntime
import Persona
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing

typealias PersonaClient = Platform_Persona_V1_PersonaServiceClient

/// Starts the persona service on a fresh database and hands the test a client, two users and
/// their call options.
struct PersonaFixture {
  let service: PlatformTestService
  let client: PersonaClient
  let alice: UUID
  let bob: UUID
  let asAlice: CallOptions
  let asBob: CallOptions

  static func run(_ body: (PersonaFixture) async throws -> Void) async throws {
    try await PlatformTestService.run(PersonaService()) { service in
      let alice = UUID()
      let bob = UUID()
      let fixture = PersonaFixture(
        service: service, client: PersonaClient(channel: service.client), alice: alice, bob: bob,
        asAlice: try await service.options(for: alice), asBob: try await service.options(for: bob))
      try await body(fixture)
    }
  }

  static let schema = try! JSONValue(
    jsonText: #"{"type":"object","required":["role"],"properties":{"role":{"type":"string"},"tone":{"type":"string","default":"calmly"}}}"#)

  static func persona(
    _ name: String, template: String = "You are {{role}}. Speak {{tone}}.", description: String = "",
    variables: JSONValue = schema, isPublic: Bool = false
  ) -> Platform_Persona_V1_Persona {
    .with {
      $0.name = name
      $0.description_p = description
      $0.template = template
      $0.variables = variables.protobufStruct
      $0.isPublic = isPublic
    }
  }

  @discardableResult
  func create(_ persona: Platform_Persona_V1_Persona, as options: CallOptions? = nil) async throws -> Platform_Persona_V1_Persona {
    try await self.client.createPersona(.with { $0.persona = persona }, options: options ?? self.asAlice)
  }

  /// Every column of every persona row, to prove a refused call changed nothing.
  func snapshot() async throws -> [String] {
    var rows: [String] = []
    for try await (row,) in try await self.service.database.query(
      """
      SELECT concat_ws('|', p.id, p.name, p.template, p.variables::text, p.is_public, p.usage_count, p.rating, p.rating_count,
        p.version, p.updated_at, p.deleted_at, (SELECT count(*) FROM persona_validations v WHERE v.persona_id = p.id),
        (SELECT count(*) FROM persona_ratings r WHERE r.persona_id = p.id))
      FROM personas p ORDER BY p.id
      """, logger: TestPostgres.logger
    ).decode((String,).self) {
      rows.append(row)
    }
    return rows
  }
}

@Suite("Persona service over gRPC with PostgreSQL")
struct PersonaServiceTests {
  @Test("Create, get, update, render, rate and delete a persona")
  func lifecycle() async throws {
    try await PersonaFixture.run { fixture in
      let created = try await fixture.create(PersonaFixture.persona("Pirate", description: "Talks like a pirate"))
      #expect(created.userID == fixture.alice.uuidString.lowercased())
      #expect(created.version == 1 && created.usageCount == 0 && !created.hasRating && !created.hasDeleteTime)
      #expect(JSONValue(created.variables) == PersonaFixture.schema)

      let fetched = try await fixture.client.getPersona(.with { $0.id = created.id }, options: fixture.asAlice)
      #expect(fetched == created)

      let updated = try await fixture.client.updatePersona(
        .with {
          $0.persona = .with {
            $0.id = created.id
            $0.name = "Captain"
            $0.template = "Ignored: not in the mask"
          }
          $0.updateMask = .with { $0.paths = ["name"] }
          $0.version = 1
        }, options: fixture.asAlice)
      #expect(updated.name == "Captain" && updated.template == created.template && updated.version == 2)
      #expect(updated.etag != created.etag)

      let rendered = try await fixture.client.renderPersona(
        .with {
          $0.personaID = created.id
          $0.variables = JSONValue.object(["role": .string("a pirate")]).protobufStruct
        }, options: fixture.asAlice)
      #expect(rendered.text == "You are a pirate. Speak calmly.")
      #expect(rendered.personaVersion == 2 && rendered.defaultedVariables == ["tone"])

      let rated = try await fixture.client.ratePersona(.with { $0.personaID = created.id; $0.score = 4 }, options: fixture.asAlice)
      #expect(rated.rating == 4 && rated.ratingCount == 1 && rated.usageCount == 1)

      _ = try await fixture.client.deletePersona(.with { $0.id = created.id; $0.version = 2 }, options: fixture.asAlice)
      await expectStatus(.notFound) { try await fixture.client.getPersona(.with { $0.id = created.id }, options: fixture.asAlice) }
      await expectStatus(.notFound) {
        try await fixture.client.deletePersona(.with { $0.id = created.id }, options: fixture.asAlice)
      }
      // Soft: the row stays, marked deleted.
      let rows = try await fixture.service.database.query(
        "SELECT deleted_at IS NOT NULL FROM personas WHERE id = \(UUID(uuidString: created.id)!)", logger: TestPostgres.logger)
      var deleted: [Bool] = []
      for try await (flag,) in rows.decode((Bool,).self) { deleted.append(flag) }
      #expect(deleted == [true])
    }
  }

  @Test("A retried create with the same request id makes one persona")
  func idempotentCreate() async throws {
    try await PersonaFixture.run { fixture in
      let requestID = UUID().uuidString
      let request = Platform_Persona_V1_CreatePersonaRequest.with {
        $0.persona = PersonaFixture.persona("Once")
        $0.requestID = requestID
      }
      let first = try await fixture.client.createPersona(request, options: fixture.asAlice)
      let second = try await fixture.client.createPersona(request, options: fixture.asAlice)
      #expect(first.id == second.id)
      #expect(try await fixture.snapshot().count == 1)
      // The same request id from another user is another persona.
      let bobs = try await fixture.client.createPersona(request, options: fixture.asBob)
      #expect(bobs.id != first.id)
    }
  }

  @Test("Listing pages through the caller's personas (and public ones on request) without gaps or repeats")
  func pagination() async throws {
    try await PersonaFixture.run { fixture in
      var mine: [String] = []
      for index in 0..<5 {
        mine.append(try await fixture.create(PersonaFixture.persona("Mine \(index)", isPublic: index == 0)).id)
      }
      let bobsPublic = try await fixture.create(PersonaFixture.persona("Bob public", isPublic: true), as: fixture.asBob).id
      _ = try await fixture.create(PersonaFixture.persona("Bob private"), as: fixture.asBob)

      var seen: [String] = []
      var token = ""
      var pages = 0
      repeat {
        let page = try await fixture.client.listPersonas(
          .with {
            $0.pageSize = 2
            $0.pageToken = token
          }, options: fixture.asAlice)
        #expect(page.totalSize == 5)
        seen += page.personas.map(\.id)
        token = page.nextPageToken
        pages += 1
      } while !token.isEmpty && pages < 10
      #expect(pages == 3)
      #expect(seen == mine.reversed())  // most recently updated first

      // Every usage count is 0: the sort key ties everywhere, and the id breaks the ties.
      func allPages(_ request: Platform_Persona_V1_ListPersonasRequest) async throws -> [String] {
        var request = request
        var ids: [String] = []
        for _ in 0..<10 {
          let page = try await fixture.client.listPersonas(request, options: fixture.asAlice)
          ids += page.personas.map(\.id)
          request.pageToken = page.nextPageToken
          if request.pageToken.isEmpty { break }
        }
        return ids
      }
      let byUsage = try await allPages(.with { $0.pageSize = 2; $0.orderBy = .usageCount })
      #expect(byUsage.count == 5 && Set(byUsage) == Set(mine))
      // A long query (500 CJK characters, 1,500 bytes) still pages: the token holds its hash.
      let longQuery = String(repeating: "海", count: 500)
      #expect(try await allPages(.with { $0.pageSize = 1; $0.query = longQuery }).isEmpty)
      let page1 = try await fixture.client.listPersonas(.with { $0.pageSize = 1; $0.query = "Mine" }, options: fixture.asAlice)
      #expect(page1.nextPageToken.count < 300)
      #expect(try await allPages(.with { $0.pageSize = 1; $0.query = "Mine" }).count == 5)

      let withPublic = try await fixture.client.listPersonas(.with { $0.includePublic = true }, options: fixture.asAlice)
      #expect(Set(withPublic.personas.map(\.id)) == Set(mine + [bobsPublic]))
      let bobSees = try await fixture.client.listPersonas(.with { $0.includePublic = true }, options: fixture.asBob)
      #expect(bobSees.totalSize == 3)  // Bob's two and Alice's public one

      // A token belongs to its listing.
      let first = try await fixture.client.listPersonas(.with { $0.pageSize = 2 }, options: fixture.asAlice)
      await expectStatus(.invalidArgument) {
        try await fixture.client.listPersonas(
          .with {
            $0.pageToken = first.nextPageToken
            $0.orderBy = .usageCount
          }, options: fixture.asAlice)
      }
      let message = await expectStatus(.invalidArgument) {
        try await fixture.client.listPersonas(.with { $0.pageToken = "garbage" }, options: fixture.asAlice)
      }
      #expect(message.contains("page_token"))
      await expectStatus(.invalidArgument) {
        try await fixture.client.listPersonas(.with { $0.pageSize = -1 }, options: fixture.asAlice)
      }
    }
  }

  @Test("Full-text search and ordering by usage and rating")
  func searchAndOrder() async throws {
    try await PersonaFixture.run { fixture in
      let pirate = try await fixture.create(PersonaFixture.persona("Sea captain", description: "Sails the oceans with pirates"))
      let chef = try await fixture.create(
        PersonaFixture.persona("Chef", template: "You are a chef cooking {{role}} dishes.", description: "Kitchen expert"))
      let plain = try await fixture.create(PersonaFixture.persona("Plain"))

      let found = try await fixture.client.listPersonas(.with { $0.query = "pirate" }, options: fixture.asAlice)
      #expect(found.personas.map(\.id) == [pirate.id])
      let byTemplate = try await fixture.client.listPersonas(.with { $0.query = "cooking" }, options: fixture.asAlice)
      #expect(byTemplate.personas.map(\.id) == [chef.id])
      let none = try await fixture.client.listPersonas(.with { $0.query = "submarine -pirate" }, options: fixture.asAlice)
      #expect(none.personas.isEmpty && none.totalSize == 0)

      for _ in 0..<3 {
        _ = try await fixture.client.renderPersona(
          .with {
            $0.personaID = chef.id
            $0.variables = JSONValue.object(["role": .string("x")]).protobufStruct
          }, options: fixture.asAlice)
      }
      _ = try await fixture.client.ratePersona(.with { $0.personaID = plain.id; $0.score = 5 }, options: fixture.asAlice)
      _ = try await fixture.client.ratePersona(.with { $0.personaID = pirate.id; $0.score = 2 }, options: fixture.asAlice)

      let byUsage = try await fixture.client.listPersonas(.with { $0.orderBy = .usageCount }, options: fixture.asAlice)
      #expect(byUsage.personas.first?.id == chef.id)
      let byRating = try await fixture.client.listPersonas(.with { $0.orderBy = .rating; $0.pageSize = 1 }, options: fixture.asAlice)
      #expect(byRating.personas.map(\.id) == [plain.id])
      let rest = try await fixture.client.listPersonas(
        .with {
          $0.orderBy = .rating
          $0.pageToken = byRating.nextPageToken
        }, options: fixture.asAlice)
      #expect(rest.personas.map(\.id) == [pirate.id, chef.id])  // unrated last
    }
  }

  @Test("Concurrent renders are each counted once, and counted by the time they are answered")
  func concurrentRenderCounts() async throws {
    try await PersonaFixture.run { fixture in
      let first = try await fixture.create(PersonaFixture.persona("First"))
      let second = try await fixture.create(PersonaFixture.persona("Second"))
      // 60 renders at once, 40 of one and 20 of the other, then one alone after them.
      try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<60 {
          group.addTask {
            _ = try await fixture.client.renderPersona(
              .with {
                $0.personaID = index % 3 == 0 ? second.id : first.id
                $0.variables = JSONValue.object(["role": .string("r\(index)")]).protobufStruct
              }, options: fixture.asAlice)
          }
        }
        try await group.waitForAll()
      }
      func counts() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for try await (id, count) in try await fixture.service.database.query(
          "SELECT id::text, usage_count FROM personas", logger: TestPostgres.logger
        ).decode((String, Int).self) {
          counts[id] = count
        }
        return counts
      }
      #expect(try await counts() == [first.id: 40, second.id: 20])
      _ = try await fixture.client.renderPersona(
        .with {
          $0.personaID = second.id
          $0.variables = JSONValue.object(["role": .string("last")]).protobufStruct
        }, options: fixture.asAlice)
      #expect(try await counts() == [first.id: 40, second.id: 21])
    }
  }

  @Test("A stale version is FAILED_PRECONDITION and changes nothing")
  func updateConflict() async throws {
    try await PersonaFixture.run { fixture in
      let created = try await fixture.create(PersonaFixture.persona("Versioned"))
      let bump = Platform_Persona_V1_UpdatePersonaRequest.with {
        $0.persona = .with {
          $0.id = created.id
          $0.description_p = "first writer"
        }
        $0.updateMask = .with { $0.paths = ["description"] }
        $0.version = 1
      }
      _ = try await fixture.client.updatePersona(bump, options: fixture.asAlice)
      let before = try await fixture.snapshot()
      let message = await expectStatus(.failedPrecondition) { try await fixture.client.updatePersona(bump, options: fixture.asAlice) }
      #expect(message.contains("version 2"))
      await expectStatus(.failedPrecondition) {
        try await fixture.client.deletePersona(.with { $0.id = created.id; $0.version = 1 }, options: fixture.asAlice)
      }
      await expectStatus(.failedPrecondition) {
        try await fixture.client.renderPersona(
          .with {
            $0.personaID = created.id
            $0.version = 1
            $0.variables = JSONValue.object(["role": .string("x")]).protobufStruct
          }, options: fixture.asAlice)
      }
      #expect(try await fixture.snapshot() == before)
    }
  }

  @Test("Rendering checks variables against the schema, naming every violation, and caps the output")
  func renderRejections() async throws {
    try await PersonaFixture.run { fixture in
      let created = try await fixture.create(PersonaFixture.persona("Strict"))
      let before = try await fixture.snapshot()
      let message = await expectStatus(.invalidArgument) {
        try await fixture.client.renderPersona(
          .with {
            $0.personaID = created.id
            $0.variables = JSONValue.object(["tone": .number(3)]).protobufStruct
          }, options: fixture.asAlice)
      }
      #expect(message.contains("variables.role: is required") && message.contains("variables.tone: expected string"))
      await expectStatus(.resourceExhausted) {
        try await fixture.client.renderPersona(
          .with {
            $0.personaID = created.id
            $0.maxChars = 10
            $0.variables = JSONValue.object(["role": .string("a pirate")]).protobufStruct
          }, options: fixture.asAlice)
      }
      #expect(try await fixture.snapshot() == before)  // usage_count untouched
    }
  }

  @Test("Validators run, are recorded per persona version, and list newest first")
  func validation() async throws {
    try await PersonaFixture.run { fixture in
      let created = try await fixture.create(
        PersonaFixture.persona("Judge me", template: "You are {{role}}. Answer in a {{mood}} tone."))
      let response = try await fixture.client.validatePersona(
        .with {
          $0.personaID = created.id
          $0.validators = [.templateSyntax, .variableSchema, .gpt4Judge]
          $0.sampleVariables = JSONValue.object(["role": .string("a helpful librarian")]).protobufStruct
        }, options: fixture.asAlice)
      #expect(response.validations.map(\.validator) == [.templateSyntax, .variableSchema, .gpt4Judge])
      #expect(!response.isValid)
      let syntax = response.validations[0]
      #expect(!syntax.isValid && syntax.issues == ["line 1: unknown variable `mood` (not declared in the variables schema)"])
      #expect(response.validations[1].isValid)
      let judged = response.validations[2]
      #expect(judged.personaVersion == 1)
      #expect(JSONValue(judged.result).objectValue?["model"] == .string(OfflineHeuristicJudge.model))

      let defaults = try await fixture.client.validatePersona(.with { $0.personaID = created.id }, options: fixture.asAlice)
      #expect(defaults.validations.map(\.validator) == [.templateSyntax, .variableSchema])

      let listed = try await fixture.client.listPersonaValidations(
        .with {
          $0.personaID = created.id
          $0.pageSize = 3
        }, options: fixture.asAlice)
      #expect(listed.totalSize == 5 && listed.validations.count == 3 && !listed.nextPageToken.isEmpty)
      let rest = try await fixture.client.listPersonaValidations(
        .with {
          $0.personaID = created.id
          $0.pageSize = 3
          $0.pageToken = listed.nextPageToken
        }, options: fixture.asAlice)
      let all = listed.validations + rest.validations
      #expect(Set(all.map(\.id)).count == 5)
      // Newest first: the second call's two, then the first call's three, each in reverse order.
      #expect(all.map(\.validator) == [.variableSchema, .templateSyntax, .gpt4Judge, .variableSchema, .templateSyntax])
      #expect(zip(all, all.dropFirst()).allSatisfy { $0.validateTime.date >= $1.validateTime.date })
      let judgeOnly = try await fixture.client.listPersonaValidations(
        .with {
          $0.personaID = created.id
          $0.validator = .gpt4Judge
        }, options: fixture.asAlice)
      #expect(judgeOnly.validations.map(\.id) == [judged.id])

      await expectStatus(.invalidArgument) {
        try await fixture.client.validatePersona(
          .with {
            $0.personaID = created.id
            $0.validators = [.unspecified]
          }, options: fixture.asAlice)
      }
      // Another user may not validate it (it is private: NOT_FOUND).
      await expectStatus(.notFound) { try await fixture.client.validatePersona(.with { $0.personaID = created.id }, options: fixture.asBob) }
    }
  }

  @Test("Ratings: one per user, averaged; bad scores refused")
  func ratings() async throws {
    try await PersonaFixture.run { fixture in
      let created = try await fixture.create(PersonaFixture.persona("Rated", isPublic: true))
      _ = try await fixture.client.ratePersona(.with { $0.personaID = created.id; $0.score = 5 }, options: fixture.asAlice)
      let first = try await fixture.client.ratePersona(.with { $0.personaID = created.id; $0.score = 2 }, options: fixture.asBob)
      let again = try await fixture.client.ratePersona(.with { $0.personaID = created.id; $0.score = 4 }, options: fixture.asBob)
      #expect(again.rating == 4.5 && again.ratingCount == 2)
      #expect(again.etag != first.etag)  // same count and version, different average
      let before = try await fixture.snapshot()
      for score: Int32 in [0, 6, -1] {
        let message = await expectStatus(.invalidArgument) {
          try await fixture.client.ratePersona(.with { $0.personaID = created.id; $0.score = score }, options: fixture.asAlice)
        }
        #expect(message.hasPrefix("score"))
      }
      #expect(try await fixture.snapshot() == before)
    }
  }

  @Test("Another user's personas: private is NOT_FOUND, public is readable but not writable")
  func ownership() async throws {
    try await PersonaFixture.run { fixture in
      let secret = try await fixture.create(PersonaFixture.persona("Secret"))
      let shared = try await fixture.create(PersonaFixture.persona("Shared", isPublic: true))
      let before = try await fixture.snapshot()

      await expectStatus(.notFound) { try await fixture.client.getPersona(.with { $0.id = secret.id }, options: fixture.asBob) }
      await expectStatus(.notFound) {
        try await fixture.client.renderPersona(.with { $0.personaID = secret.id }, options: fixture.asBob)
      }
      await expectStatus(.notFound) { try await fixture.client.ratePersona(.with { $0.personaID = secret.id; $0.score = 1 }, options: fixture.asBob) }
      await expectStatus(.notFound) { try await fixture.client.deletePersona(.with { $0.id = secret.id }, options: fixture.asBob) }
      await expectStatus(.notFound) {
        try await fixture.client.listPersonaValidations(.with { $0.personaID = secret.id }, options: fixture.asBob)
      }
      #expect(try await fixture.client.getPersona(.with { $0.id = shared.id }, options: fixture.asBob).name == "Shared")
      await expectStatus(.permissionDenied) { try await fixture.client.deletePersona(.with { $0.id = shared.id }, options: fixture.asBob) }
      await expectStatus(.permissionDenied) {
        try await fixture.client.updatePersona(
          .with {
            $0.persona = .with { $0.id = shared.id; $0.name = "Mine now" }
            $0.updateMask = .with { $0.paths = ["name"] }
            $0.version = 1
          }, options: fixture.asBob)
      }
      await expectStatus(.permissionDenied) { try await fixture.client.validatePersona(.with { $0.personaID = shared.id }, options: fixture.asBob) }
      #expect(try await fixture.snapshot() == before)
    }
  }

  @Test("Bad input is INVALID_ARGUMENT naming the field, and changes nothing")
  func badInput() async throws {
    try await PersonaFixture.run { fixture in
      let existing = try await fixture.create(PersonaFixture.persona("Existing"))
      // A backslash followed by "u0000" is text, not NUL: it is stored as it is.
      let literal = try await fixture.create(
        PersonaFixture.persona("Literal", variables: .object(["title": .string(#"C:\u0000"#)])))
      #expect(JSONValue(literal.variables).objectValue?["title"] == .string(#"C:\u0000"#))
      let before = try await fixture.snapshot()
      let cases: [(Platform_Persona_V1_Persona, String)] = [
        (PersonaFixture.persona(""), "persona.name"),
        (PersonaFixture.persona("   "), "persona.name"),
        (PersonaFixture.persona(String(repeating: "n", count: 101)), "persona.name"),
        (PersonaFixture.persona("Empty", template: ""), "persona.template"),
        (PersonaFixture.persona("Huge", template: String(repeating: "t", count: 64 * 1024 + 1)), "persona.template"),
        (PersonaFixture.persona("Broken", template: "Hello {{#open}} never closed"), "persona.template: line 1"),
        (PersonaFixture.persona("Bad schema", variables: .object(["type": .string("array")])), "persona.variables.type"),
        (PersonaFixture.persona("Bad prop", variables: .object(["properties": .object(["a": .object(["type": .number(1)])])])), "persona.variables.properties.a.type"),
        (PersonaFixture.persona("Long description", description: String(repeating: "d", count: 5000)), "persona.description"),
        (PersonaFixture.persona("Nul\u{0}name"), "persona.name"),
        (PersonaFixture.persona("Nul template", template: "You are\u{0}{{role}}"), "persona.template"),
        (PersonaFixture.persona("Nul schema", variables: .object(["title": .string("a\u{0}b")])), "persona.variables"),
        (PersonaFixture.persona("NaN schema", variables: .object(["properties": .object(["n": .object(["minimum": .number(.nan)])])])), "persona.variables"),
        // 100 characters but 200 code points: more than VARCHAR(100) holds.
        (PersonaFixture.persona(String(repeating: "e\u{301}", count: 100)), "persona.name"),
      ]
      for (persona, field) in cases {
        let message = await expectStatus(.invalidArgument, "\(field)") {
          try await fixture.client.createPersona(.with { $0.persona = persona }, options: fixture.asAlice)
        }
        #expect(message.hasPrefix(field), "\(message)")
      }
      await expectStatus(.invalidArgument) { try await fixture.client.createPersona(.init(), options: fixture.asAlice) }
      await expectStatus(.invalidArgument) {
        try await fixture.client.createPersona(
          .with {
            $0.persona = PersonaFixture.persona("Bad request id")
            $0.requestID = "not-a-uuid"
          }, options: fixture.asAlice)
      }
      for id in ["", "not-a-uuid", "'; DROP TABLE personas; --"] {
        await expectStatus(.invalidArgument) { try await fixture.client.getPersona(.with { $0.id = id }, options: fixture.asAlice) }
      }
      await expectStatus(.notFound) { try await fixture.client.getPersona(.with { $0.id = UUID().uuidString }, options: fixture.asAlice) }
      await expectStatus(.invalidArgument) {
        try await fixture.client.updatePersona(
          .with {
            $0.persona = .with { $0.id = existing.id; $0.name = "x" }
            $0.updateMask = .with { $0.paths = ["usage_count"] }
            $0.version = 1
          }, options: fixture.asAlice)
      }
      await expectStatus(.invalidArgument) {
        try await fixture.client.updatePersona(
          .with {
            $0.persona = .with { $0.id = existing.id; $0.template = "{{/nope}}" }
            $0.updateMask = .with { $0.paths = ["template"] }
            $0.version = 1
          }, options: fixture.asAlice)
      }
      await expectStatus(.invalidArgument) {
        try await fixture.client.updatePersona(
          .with {
            $0.persona = .with { $0.id = existing.id; $0.name = "x" }
            $0.updateMask = .with { $0.paths = ["name"] }
          }, options: fixture.asAlice)
      }
      await expectStatus(.invalidArgument) {
        try await fixture.client.listPersonas(.with { $0.query = String(repeating: "q", count: 501) }, options: fixture.asAlice)
      }
      await expectStatus(.invalidArgument) {
        try await fixture.client.listPersonas(.with { $0.query = "pirate\u{0}" }, options: fixture.asAlice)
      }
      let renderNaN = await expectStatus(.invalidArgument) {
        try await fixture.client.renderPersona(
          .with {
            $0.personaID = existing.id
            $0.variables = JSONValue.object(["role": .string("x"), "n": .number(.infinity)]).protobufStruct
          }, options: fixture.asAlice)
      }
      #expect(renderNaN.hasPrefix("variables"))
      // Sample variables end up in stored issues and results: NUL and NaN are refused up front,
      // before any validator runs or anything is recorded.
      for sample in [JSONValue.object(["a\u{0}": .number(1)]), .object(["a": .number(.nan)])] {
        let message = await expectStatus(.invalidArgument) {
          try await fixture.client.validatePersona(
            .with {
              $0.personaID = existing.id
              $0.validators = [.templateSyntax, .variableSchema, .gpt4Judge]
              $0.sampleVariables = sample.protobufStruct
            }, options: fixture.asAlice)
        }
        #expect(message.hasPrefix("sample_variables"), "\(message)")
      }
      #expect(try await fixture.snapshot() == before)
    }
  }

  @Test("No token, a forged or expired token, or a missing permission is refused before anything happens")
  func authentication() async throws {
    try await PersonaFixture.run { fixture in
      let existing = try await fixture.create(PersonaFixture.persona("Guarded", isPublic: true))
      let before = try await fixture.snapshot()
      let create = Platform_Persona_V1_CreatePersonaRequest.with { $0.persona = PersonaFixture.persona("Intruder") }

      await expectStatus(.unauthenticated) { try await fixture.client.createPersona(create) }
      var wrongScheme = Metadata()
      wrongScheme.addString("Basic dXNlcjpwYXNz", forKey: "authorization")
      await expectStatus(.unauthenticated) { try await fixture.client.createPersona(create, options: CallOptions(metadata: wrongScheme)) }

      let forger = try await TokenIssuer(configuration: AuthConfiguration(signingKey: .generate(id: "test-key")))
      let forged = try await forger.issue(userID: fixture.alice, roles: [.admin])
      let forgedMessage = await expectStatus(.unauthenticated) {
        try await fixture.client.createPersona(create, options: fixture.service.options(token: forged))
      }
      #expect(forgedMessage.contains("signature"))
      let expired = try await TokenIssuer(configuration: fixture.service.auth).issue(
        userID: fixture.alice, roles: [.admin], lifetime: .seconds(1), now: Date().addingTimeInterval(-3600))
      await expectStatus(.unauthenticated) { try await fixture.client.createPersona(create, options: fixture.service.options(token: expired)) }

      let viewer = try await fixture.service.options(for: fixture.alice, roles: [.viewer])
      await expectStatus(.permissionDenied) { try await fixture.client.createPersona(create, options: viewer) }
      await expectStatus(.permissionDenied) { try await fixture.client.deletePersona(.with { $0.id = existing.id }, options: viewer) }
      // A viewer may read.
      #expect(try await fixture.client.getPersona(.with { $0.id = existing.id }, options: viewer).id == existing.id)
      // An extra permission grants what the role does not.
      let granted = try await fixture.service.options(for: fixture.bob, roles: [.viewer], permissions: ["persona:write"])
      let bobs = try await fixture.client.createPersona(create, options: granted)
      #expect(bobs.userID == fixture.bob.uuidString.lowercased())
      #expect(try await fixture.snapshot().count == before.count + 1)
    }
  }
}

extension PersonaServiceTests {
  @Test("An id with anything after its 36 characters (a NUL and more) is INVALID_ARGUMENT, not that id")
  func strictIDs() async throws {
    try await PersonaFixture.run { fixture in
      let created = try await fixture.create(PersonaFixture.persona("Strict"))
      #expect(try await fixture.client.getPersona(.with { $0.id = created.id }, options: fixture.asAlice).id == created.id)
      for id in [created.id + "\u{0}junk", created.id + "\u{0}", "{\(created.id)}", " \(created.id)"] {
        let message = await expectStatus(.invalidArgument) {
          try await fixture.client.getPersona(.with { $0.id = id }, options: fixture.asAlice)
        }
        #expect(message.contains("id"), "\(message)")
        await expectStatus(.invalidArgument) {
          try await fixture.client.ratePersona(.with { $0.personaID = id; $0.score = 5 }, options: fixture.asAlice)
        }
      }
    }
  }
}
