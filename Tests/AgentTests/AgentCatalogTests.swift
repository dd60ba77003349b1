import Agent
import Foundation
import GRPCRuntime
import Persona
import PlatformCore
import PlatformProtos
import PlatformTesting
import PostgresNIO
import SwiftProtobuf
import Testing

typealias AgentClient = Platform_Agent_V1_AgentServiceClient
typealias PersonaClient = Platform_Persona_V1_PersonaServiceClient

/// Persona, then the agent service pointed at it (with a bootstrap admin), over real gRPC.
struct AgentWorld {
  let agentService: PlatformTestService
  let auth: Platform_Agent_V1_AuthServiceClient
  let users: Platform_Agent_V1_UserServiceClient
  let agents: AgentClient
  let personas: PersonaClient
  let admin: CallOptions

  /// A new user with the developer role, signed in.
  func developer() async throws -> (options: CallOptions, id: String) {
    let email = uniqueEmail("dev")
    let user = try await self.auth.register(.with {
      $0.email = email
      $0.password = goodPassword
      $0.name = "Dev"
    })
    _ = try await self.users.updateUserRoles(.with {
      $0.userID = user.id
      $0.roles = [.developer]
    }, options: self.admin)
    let login = try await self.auth.login(.with {
      $0.email = email
      $0.password = goodPassword
    })
    return (bearer(login.tokens.accessToken), user.id)
  }

  func persona(_ options: CallOptions, name: String = "Pirate", isPublic: Bool = false) async throws -> String {
    try await self.personas.createPersona(.with {
      $0.persona = .with {
        $0.name = name
        $0.template = "You are {{role}}."
        $0.isPublic = isPublic
      }
    }, options: options).id
  }

  func agentCount() async throws -> Int {
    var count = 0
    let rows = try await self.agentService.database.query("SELECT count(*)::int FROM agents", logger: TestPostgres.quietLogger)
    for try await (value,) in rows.decode((Int,).self) { count = value }
    return count
  }
}

func withAgentWorld(
  _ settings: [String: String] = [:], personaAddress: String? = nil, peers: [PlatformServiceName: String] = [:],
  _ body: (AgentWorld) async throws -> Void
) async throws {
  try await PlatformTestService.run(PersonaService()) { personaService in
    let admin = uniqueEmail("admin")
    try await PlatformTestService.run(
      AgentService(passwordParameters: testHashing),
      configure: { configuration in
        configuration.environment = Environment(
          ["AGENT_LOGIN_ATTEMPTS_PER_PEER": "100000", "BOOTSTRAP_ADMIN_EMAIL": admin, "BOOTSTRAP_ADMIN_PASSWORD": goodPassword]
            .merging(settings) { $1 })
        configuration.peers[.persona] = personaAddress ?? "127.0.0.1:\(personaService.port)"
        configuration.peers.merge(peers) { $1 }
      }
    ) { agentService in
      let auth = Platform_Agent_V1_AuthServiceClient(channel: agentService.client)
      let login = try await auth.login(.with {
        $0.email = admin
        $0.password = goodPassword
      })
      try await body(
        AgentWorld(
          agentService: agentService, auth: auth, users: Platform_Agent_V1_UserServiceClient(channel: agentService.client),
          agents: AgentClient(channel: agentService.client), personas: PersonaClient(channel: personaService.client),
          admin: bearer(login.tokens.accessToken)))
    }
  }
}

func newAgent(_ personaID: String, name: String = "Helper", description: String = "") -> Platform_Agent_V1_CreateAgentRequest {
  .with {
    $0.agent = .with {
      $0.personaID = personaID
      $0.name = name
      $0.description_p = description
    }
  }
}

@Suite("Agents and plugins")
struct AgentCatalogTests {
  @Test("Create, get, list (full text, status, pages), update with a mask and a version, soft delete")
  func lifecycle() async throws {
    try await withAgentWorld { world in
      let (me, myID) = try await world.developer()
      let personaID = try await world.persona(me)
      let created = try await world.agents.createAgent(newAgent(personaID, name: "Sea captain", description: "Answers questions about pirates"), options: me)
      #expect(created.userID == myID && created.personaID == personaID && created.status == .active && created.version == 1)
      #expect(created.settings.temperature == 0.7 && created.settings.maxTokens == 4000 && created.settings.topP == 1.0)
      #expect(created.settings.extra.fields["model"]?.stringValue == ModelCatalog.offline)
      let fetched = try await world.agents.getAgent(.with { $0.id = created.id }, options: me)
      #expect(fetched == created)

      let second = try await world.agents.createAgent(newAgent(personaID, name: "Accountant", description: "Counts the ledger"), options: me)
      let third = try await world.agents.createAgent(newAgent(personaID, name: "Navigator"), options: me)
      // Full text: "pirate" finds "pirates"; a substring finds a word's middle.
      let pirates = try await world.agents.listAgents(.with { $0.query = "pirate" }, options: me)
      #expect(pirates.agents.map(\.id) == [created.id] && pirates.totalSize == 1)
      #expect(try await world.agents.listAgents(.with { $0.query = "ledg" }, options: me).agents.map(\.id) == [second.id])
      // Pages: most recently updated first, each agent once.
      var seen: [String] = []
      var token = ""
      repeat {
        let page = try await world.agents.listAgents(.with {
          $0.pageSize = 1
          $0.pageToken = token
        }, options: me)
        #expect(page.totalSize == 3 && page.agents.count == 1)
        seen += page.agents.map(\.id)
        token = page.nextPageToken
      } while !token.isEmpty
      #expect(seen == [third.id, second.id, created.id])
      let firstToken = try await world.agents.listAgents(.with { $0.pageSize = 1 }, options: me).nextPageToken
      await expectStatus(.invalidArgument) {
        try await world.agents.listAgents(.with {
          $0.pageSize = 1
          $0.pageToken = firstToken
          $0.query = "other filter"
        }, options: me)
      }

      let updated = try await world.agents.updateAgent(.with {
        $0.agent = .with {
          $0.id = created.id
          $0.name = "Old sea captain"
          $0.settings = .with { $0.temperature = 1.5 }
          $0.status = .inactive
        }
        $0.updateMask = .with { $0.paths = ["name", "settings.temperature", "status"] }
        $0.version = 1
      }, options: me)
      #expect(updated.name == "Old sea captain" && updated.settings.temperature == 1.5 && updated.settings.maxTokens == 4000)
      #expect(updated.status == .inactive && updated.version == 2 && updated.description_p == created.description_p)
      await expectStatus(.failedPrecondition) {
        try await world.agents.updateAgent(.with {
          $0.agent = .with {
            $0.id = created.id
            $0.name = "Stale"
          }
          $0.updateMask = .with { $0.paths = ["name"] }
          $0.version = 1
        }, options: me)
      }
      let inactive = try await world.agents.listAgents(.with { $0.status = .inactive }, options: me)
      #expect(inactive.agents.map(\.id) == [created.id])

      _ = try await world.agents.deleteAgent(.with { $0.id = second.id }, options: me)
      await expectStatus(.notFound) { try await world.agents.getAgent(.with { $0.id = second.id }, options: me) }
      await expectStatus(.notFound) { try await world.agents.deleteAgent(.with { $0.id = second.id }, options: me) }
      #expect(try await world.agents.listAgents(.init(), options: me).agents.map(\.id) == [created.id, third.id])
      #expect(try await world.agentCount() == 3)  // soft: the row stays
    }
  }

  @Test("Bad settings, names, metadata and personas are INVALID_ARGUMENT naming the field, and create nothing")
  func validation() async throws {
    try await withAgentWorld { world in
      let (me, _) = try await world.developer()
      let (other, _) = try await world.developer()
      let mine = try await world.persona(me)
      let theirsPrivate = try await world.persona(other, name: "Secret")
      let theirsPublic = try await world.persona(other, name: "Shared", isPublic: true)
      var deep = Google_Protobuf_Value(stringValue: "leaf")
      for _ in 0..<12 { deep = Google_Protobuf_Value(structValue: .with { $0.fields = ["a": deep] }) }
      let cases: [(String, (inout Platform_Agent_V1_CreateAgentRequest) -> Void)] = [
        ("agent.settings.temperature", { $0.agent.settings.temperature = 2.5 }),
        ("agent.settings.temperature", { $0.agent.settings.temperature = -0.1 }),
        ("agent.settings.top_p", { $0.agent.settings.topP = 1.01 }),
        ("agent.settings.max_tokens", { $0.agent.settings.maxTokens = 0 }),
        ("agent.settings.max_tokens", { $0.agent.settings.maxTokens = 128_001 }),
        ("agent.settings.extra.model", { $0.agent.settings.extra = .with { $0.fields = ["model": .init(stringValue: "gpt-imaginary")] } }),
        ("agent.settings.extra.model", { $0.agent.settings.extra = .with { $0.fields = ["model": .init(numberValue: 4)] } }),
        ("agent.name", { $0.agent.name = "" }),
        ("agent.name", { $0.agent.name = String(repeating: "n", count: 101) }),
        ("agent.name", { $0.agent.name = "bell\u{7}" }),
        ("agent.description", { $0.agent.description_p = String(repeating: "d", count: 8193) }),
        ("agent.metadata", { $0.agent.metadata = .with { $0.fields = ["blob": .init(stringValue: String(repeating: "m", count: 17_000))] } }),
        ("agent.metadata", { $0.agent.metadata = .with { $0.fields = ["deep": deep] } }),
        ("agent.persona_id", { $0.agent.personaID = "not-a-uuid" }),
        ("agent.persona_id", { $0.agent.personaID = "" }),
        ("agent.persona_id", { $0.agent.personaID = UUID().lowercasedString }),
        ("agent.persona_id", { $0.agent.personaID = theirsPrivate }),
        ("request_id", { $0.requestID = "again" }),
      ]
      for (field, change) in cases {
        var request = newAgent(mine)
        change(&request)
        let error = await expectStatus(.invalidArgument) { try await world.agents.createAgent(request, options: me) }
        #expect(error?.message.hasPrefix(field + ":") == true, "\(field): \(String(describing: error))")
      }
      #expect(try await world.agentCount() == 0)
      // Another user's public persona is readable, so it may be used.
      _ = try await world.agents.createAgent(newAgent(theirsPublic), options: me)
      // A retried request id returns the first agent.
      var once = newAgent(mine, name: "Once")
      once.requestID = UUID().lowercasedString
      let first = try await world.agents.createAgent(once, options: me)
      #expect(try await world.agents.createAgent(once, options: me).id == first.id)
      #expect(try await world.agentCount() == 2)
    }
  }

  @Test("Another user's agent is NOT_FOUND for every call and never listed; a viewer cannot write")
  func ownership() async throws {
    try await withAgentWorld { world in
      let (me, _) = try await world.developer()
      let (other, _) = try await world.developer()
      let agent = try await world.agents.createAgent(newAgent(try await world.persona(me)), options: me)
      await expectStatus(.notFound) { try await world.agents.getAgent(.with { $0.id = agent.id }, options: other) }
      await expectStatus(.notFound) {
        try await world.agents.updateAgent(.with {
          $0.agent = .with {
            $0.id = agent.id
            $0.name = "Mine now"
          }
          $0.updateMask = .with { $0.paths = ["name"] }
          $0.version = 1
        }, options: other)
      }
      await expectStatus(.notFound) { try await world.agents.deleteAgent(.with { $0.id = agent.id }, options: other) }
      await expectStatus(.notFound) {
        try await world.agents.addPlugin(.with {
          $0.agentID = agent.id
          $0.plugin = .with {
            $0.pluginType = .codeExecutor
          }
        }, options: other)
      }
      await expectStatus(.notFound) { try await world.agents.listPlugins(.with { $0.agentID = agent.id }, options: other) }
      #expect(try await world.agents.listAgents(.init(), options: other).agents.isEmpty)
      let (viewer, _) = try await signedInUser(world.auth)
      await expectStatus(.permissionDenied) { try await world.agents.createAgent(newAgent(UUID().lowercasedString), options: viewer) }
      #expect(try await world.agents.getAgent(.with { $0.id = agent.id }, options: me).version == 1)
    }
  }

  @Test("Plugins: configs checked per type with defaults, one enabled per type (even when added at once), ordered, versioned with the agent")
  func plugins() async throws {
    try await withAgentWorld { world in
      let (me, _) = try await world.developer()
      let agent = try await world.agents.createAgent(newAgent(try await world.persona(me)), options: me)
      let kb = UUID().lowercasedString
      func add(_ type: Platform_Agent_V1_PluginType, _ config: [String: Google_Protobuf_Value], order: Int32 = 0, enabled: Bool? = nil)
        async throws -> Platform_Agent_V1_AgentPlugin
      {
        try await world.agents.addPlugin(.with {
          $0.agentID = agent.id
          $0.plugin = .with {
            $0.pluginType = type
            $0.config = .with { $0.fields = config }
            $0.orderIndex = order
            if let enabled { $0.isEnabled = enabled }
          }
        }, options: me)
      }
      let rag = try await add(.knowledgeRag, ["knowledge_base_ids": .init(listValue: .with { $0.values = [.init(stringValue: kb)] })], order: 2)
      #expect(rag.isEnabled && rag.name == "knowledge_rag")
      #expect(rag.config.fields["top_k"]?.numberValue == 5 && rag.config.fields["mode"]?.stringValue == "hybrid")
      let code = try await add(.codeExecutor, ["language": .init(stringValue: "JavaScript")], order: 1)
      #expect(code.config.fields["language"]?.stringValue == "javascript" && code.config.fields["timeout_ms"]?.numberValue == 10_000)

      let bad: [(Platform_Agent_V1_PluginType, [String: Google_Protobuf_Value], String)] = [
        (.knowledgeRag, [:], "plugin.config.knowledge_base_ids"),
        (.knowledgeRag, ["knowledge_base_ids": .init(listValue: .with { $0.values = [.init(stringValue: "x")] })], "plugin.config.knowledge_base_ids"),
        (.knowledgeRag, ["knowledge_base_ids": .init(listValue: .with { $0.values = [.init(stringValue: kb)] }), "top_k": .init(numberValue: 0)], "plugin.config.top_k"),
        (.knowledgeRag, ["knowledge_base_ids": .init(listValue: .with { $0.values = [.init(stringValue: kb)] }), "mode": .init(stringValue: "fuzzy")], "plugin.config.mode"),
        (.textToSql, [:], "plugin.config.database_id"),
        (.textToSql, ["database_id": .init(stringValue: kb), "max_rows": .init(numberValue: 2.5)], "plugin.config.max_rows"),
        (.codeExecutor, ["language": .init(stringValue: "ruby")], "plugin.config.language"),
        (.codeExecutor, ["shell": .init(boolValue: true)], "plugin.config.shell"),
        (.fileUpload, ["target": .init(stringValue: "knowledge")], "plugin.config.knowledge_base_id"),
        (.unspecified, [:], "plugin.plugin_type"),
      ]
      for (type, config, field) in bad {
        let error = await expectStatus(.invalidArgument) { try await add(type, config, order: 9) }
        #expect(error?.message.hasPrefix(field + ":") == true, "\(field): \(String(describing: error))")
      }
      // No web search provider configured here (WEB_SEARCH_URL): refused as not available.
      await expectStatus(.failedPrecondition) { try await add(.webSearch, [:]) }
      // A second enabled plugin of a type is refused; a disabled one may wait, but not be enabled.
      await expectStatus(.alreadyExists) { try await add(.codeExecutor, [:]) }
      let spare = try await add(.codeExecutor, ["language": .init(stringValue: "python")], order: 3, enabled: false)
      let version = try await world.agents.getAgent(.with { $0.id = agent.id }, options: me).version
      #expect(version == 4)  // created, then three plugins added
      await expectStatus(.alreadyExists) {
        try await world.agents.updatePlugin(.with {
          $0.agentID = agent.id
          $0.plugin = .with {
            $0.id = spare.id
            $0.isEnabled = true
          }
          $0.updateMask = .with { $0.paths = ["is_enabled"] }
          $0.version = version
        }, options: me)
      }
      await expectStatus(.failedPrecondition) {
        try await world.agents.updatePlugin(.with {
          $0.agentID = agent.id
          $0.plugin = .with {
            $0.id = spare.id
            $0.orderIndex = 0
          }
          $0.updateMask = .with { $0.paths = ["order_index"] }
          $0.version = version - 1
        }, options: me)
      }
      // Execution order: order_index; disabled ones only when asked for.
      let fetched = try await world.agents.getAgent(.with { $0.id = agent.id }, options: me)
      #expect(fetched.plugins.map(\.id) == [code.id, rag.id, spare.id])
      let enabled = try await world.agents.listPlugins(.with { $0.agentID = agent.id }, options: me)
      #expect(enabled.plugins.map(\.id) == [code.id, rag.id] && enabled.totalSize == 2)
      let firstPage = try await world.agents.listPlugins(.with {
        $0.agentID = agent.id
        $0.includeDisabled = true
        $0.pageSize = 2
      }, options: me)
      let secondPage = try await world.agents.listPlugins(.with {
        $0.agentID = agent.id
        $0.includeDisabled = true
        $0.pageSize = 2
        $0.pageToken = firstPage.nextPageToken
      }, options: me)
      #expect(firstPage.plugins.map(\.id) + secondPage.plugins.map(\.id) == [code.id, rag.id, spare.id] && secondPage.nextPageToken.isEmpty)

      _ = try await world.agents.removePlugin(.with {
        $0.agentID = agent.id
        $0.pluginID = code.id
      }, options: me)
      let moved = try await world.agents.updatePlugin(.with {
        $0.agentID = agent.id
        $0.plugin = .with {
          $0.id = spare.id
          $0.isEnabled = true
          $0.name = "python runner"
        }
        $0.updateMask = .with { $0.paths = ["is_enabled", "name"] }
        $0.version = version + 1
      }, options: me)
      #expect(moved.isEnabled && moved.name == "python runner")

      // Eight concurrent adds of one type to a fresh agent: exactly one is enabled.
      let racing = try await world.agents.createAgent(newAgent(fetched.personaID, name: "Racing"), options: me)
      let outcomes = await withTaskGroup(of: Bool.self) { group in
        for _ in 0..<8 {
          group.addTask {
            (try? await world.agents.addPlugin(.with {
              $0.agentID = racing.id
              $0.plugin = .with { $0.pluginType = .textToSql; $0.config = .with { $0.fields = ["database_id": .init(stringValue: kb)] } }
            }, options: me)) != nil
          }
        }
        return await group.reduce(into: [Bool]()) { $0.append($1) }
      }
      #expect(outcomes.filter { $0 }.count == 1)

      // An archived agent is read-only until it leaves the archive.
      let current = try await world.agents.getAgent(.with { $0.id = agent.id }, options: me)
      let archived = try await world.agents.updateAgent(.with {
        $0.agent = .with {
          $0.id = agent.id
          $0.status = .archived
        }
        $0.updateMask = .with { $0.paths = ["status"] }
        $0.version = current.version
      }, options: me)
      await expectStatus(.failedPrecondition) { try await add(.textToSql, ["database_id": .init(stringValue: kb)]) }
      await expectStatus(.failedPrecondition) {
        try await world.agents.updateAgent(.with {
          $0.agent = .with {
            $0.id = agent.id
            $0.name = "Renamed"
          }
          $0.updateMask = .with { $0.paths = ["name"] }
          $0.version = archived.version
        }, options: me)
      }
      #expect(try await world.agents.listAgents(.init(), options: me).agents.map(\.id) == [racing.id])
      #expect(try await world.agents.listAgents(.with { $0.status = .archived }, options: me).agents.map(\.id) == [agent.id])
    }
  }

  @Test("The persona service down: CreateAgent is UNAVAILABLE and creates nothing")
  func personaDown() async throws {
    // A port nobody listens on.
    try await withAgentWorld(personaAddress: "127.0.0.1:1") { world in
      let (me, _) = try await world.developer()
      await expectStatus(.unavailable) { try await world.agents.createAgent(newAgent(UUID().lowercasedString), options: me) }
      #expect(try await world.agentCount() == 0)
    }
  }
}
