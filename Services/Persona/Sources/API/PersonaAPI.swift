internal import Foundation
public import GRPCRuntime
public import PlatformCore
public import PlatformProtos
public import SwiftProtobuf

/// `platform.persona.v1.PersonaService`: translates protobuf to the catalog's calls and back.
public struct PersonaAPI: Platform_Persona_V1_PersonaServiceHandler {
  private let catalog: PersonaCatalog
  /// GetPersona's recent replies, encoded, by persona and revision (with the usage count they
  /// show, which changes without a new revision): a persona read again is not encoded again.
  private let replies: VersionedMemo<UUID, (usageCount: Int, reply: Platform_Persona_V1_Persona)>

  /// - Parameters:
  ///   - catalog: the personas.
  ///   - replyMemo: how many encoded GetPersona replies to keep, and their bytes at most
  ///     (default 10,000 and 32 MiB).
  public init(catalog: PersonaCatalog, replyMemo: (maxEntries: Int, maxBytes: Int) = (10_000, 32 << 20)) {
    self.catalog = catalog
    self.replies = VersionedMemo(maxEntries: replyMemo.maxEntries, maxBytes: replyMemo.maxBytes)
  }

  /// The permission each RPC declares (the contract's comments).
  public static let accessPolicy = AccessPolicy([
    Platform_Persona_V1_PersonaService.Method.createPersona: "persona:write",
    Platform_Persona_V1_PersonaService.Method.getPersona: "persona:read",
    Platform_Persona_V1_PersonaService.Method.listPersonas: "persona:read",
    Platform_Persona_V1_PersonaService.Method.updatePersona: "persona:write",
    Platform_Persona_V1_PersonaService.Method.deletePersona: "persona:write",
    Platform_Persona_V1_PersonaService.Method.renderPersona: "persona:read",
    Platform_Persona_V1_PersonaService.Method.validatePersona: "persona:write",
    Platform_Persona_V1_PersonaService.Method.listPersonaValidations: "persona:read",
    Platform_Persona_V1_PersonaService.Method.ratePersona: "persona:read",
  ])

  public func createPersona(
    _ request: Platform_Persona_V1_CreatePersonaRequest, context: ServerContext
  ) async throws -> Platform_Persona_V1_Persona {
    let caller = try context.requireCaller()
    guard request.hasPersona else { throw PersonaError.invalidArgument(field: "persona", reason: "is required") }
    let requestID = try request.requestID.isEmpty ? nil : Self.uuid(request.requestID, field: "request_id")
    let persona = try await self.catalog.create(Self.draft(request.persona), requestID: requestID, caller: caller)
    return Self.message(persona)
  }

  public func getPersona(
    _ request: Platform_Persona_V1_GetPersonaRequest, context: ServerContext
  ) async throws -> Platform_Persona_V1_Persona {
    let caller = try context.requireCaller()
    let persona = try await self.catalog.get(Self.uuid(request.id, field: "id"), caller: caller)
    if let memo = self.replies.value(for: persona.id, version: persona.revision), memo.usageCount == persona.usageCount {
      return memo.reply
    }
    let message = Self.message(persona)
    guard let encoded = try? message.preEncoded() else { return message }
    self.replies.store((persona.usageCount, encoded.message), version: persona.revision, bytes: encoded.bytes, for: persona.id)
    return encoded.message
  }

  public func listPersonas(
    _ request: Platform_Persona_V1_ListPersonasRequest, context: ServerContext
  ) async throws -> Platform_Persona_V1_ListPersonasResponse {
    let caller = try context.requireCaller()
    let order: PersonaOrder
    switch request.orderBy {
    case .unspecified: order = .updateTime
    case .usageCount: order = .usageCount
    case .rating: order = .rating
    case .createTime: order = .createTime
    case .UNRECOGNIZED(let value): throw PersonaError.invalidArgument(field: "order_by", reason: "unknown value \(value)")
    }
    let page = try await self.catalog.list(
      caller: caller, includePublic: request.includePublic, text: request.query, order: order,
      pageSize: request.pageSize, pageToken: request.pageToken)
    return .with {
      $0.personas = page.personas.map(Self.message)
      $0.nextPageToken = page.nextPageToken
      $0.totalSize = Int32(clamping: page.total)
    }
  }

  public func updatePersona(
    _ request: Platform_Persona_V1_UpdatePersonaRequest, context: ServerContext
  ) async throws -> Platform_Persona_V1_Persona {
    let caller = try context.requireCaller()
    guard request.hasPersona else { throw PersonaError.invalidArgument(field: "persona", reason: "is required") }
    let id = try Self.uuid(request.persona.id, field: "persona.id")
    var fields = Set<PersonaField>()
    for path in request.updateMask.paths {
      guard let field = PersonaField(rawValue: path) else {
        throw PersonaError.invalidArgument(
          field: "update_mask", reason: "unknown path `\(path)` (allowed: \(PersonaField.allCases.map(\.rawValue).joined(separator: ", ")))")
      }
      fields.insert(field)
    }
    let persona = try await self.catalog.update(
      id, fields: fields, to: Self.draft(request.persona), expectedVersion: Int(request.version), caller: caller)
    return Self.message(persona)
  }

  public func deletePersona(
    _ request: Platform_Persona_V1_DeletePersonaRequest, context: ServerContext
  ) async throws -> Google_Protobuf_Empty {
    let caller = try context.requireCaller()
    guard request.version >= 0 else { throw PersonaError.invalidArgument(field: "version", reason: "must not be negative") }
    try await self.catalog.delete(
      Self.uuid(request.id, field: "id"), expectedVersion: request.version == 0 ? nil : Int(request.version), caller: caller)
    return Google_Protobuf_Empty()
  }

  public func renderPersona(
    _ request: Platform_Persona_V1_RenderPersonaRequest, context: ServerContext
  ) async throws -> Platform_Persona_V1_RenderPersonaResponse {
    let caller = try context.requireCaller()
    guard request.version >= 0 else { throw PersonaError.invalidArgument(field: "version", reason: "must not be negative") }
    let rendering = try await self.catalog.render(
      Self.uuid(request.personaID, field: "persona_id"), variables: JSONValue(request.variables),
      maxCharacters: Int(request.maxChars), version: request.version == 0 ? nil : Int(request.version), caller: caller)
    return .with {
      $0.text = rendering.text
      $0.personaVersion = Int32(rendering.personaVersion)
      $0.defaultedVariables = rendering.defaultedVariables
    }
  }

  public func validatePersona(
    _ request: Platform_Persona_V1_ValidatePersonaRequest, context: ServerContext
  ) async throws -> Platform_Persona_V1_ValidatePersonaResponse {
    let caller = try context.requireCaller()
    let id = try Self.uuid(request.personaID, field: "persona_id")
    var validators: [PersonaValidatorKind] = []
    for (index, validator) in request.validators.enumerated() {
      guard let kind = Self.validatorKind(validator) else {
        throw PersonaError.invalidArgument(field: "validators[\(index)]", reason: "must be TEMPLATE_SYNTAX, VARIABLE_SCHEMA or GPT4_JUDGE")
      }
      validators.append(kind)
    }
    if validators.isEmpty { validators = [.templateSyntax, .variableSchema] }
    guard validators.count <= 10 else { throw PersonaError.invalidArgument(field: "validators", reason: "at most 10 per call") }
    let recorded = try await self.catalog.validate(
      id, validators: validators, sampleVariables: request.hasSampleVariables ? JSONValue(request.sampleVariables) : nil,
      caller: caller)
    return .with {
      $0.validations = recorded.map(Self.message)
      $0.isValid = recorded.allSatisfy(\.isValid)
    }
  }

  public func listPersonaValidations(
    _ request: Platform_Persona_V1_ListPersonaValidationsRequest, context: ServerContext
  ) async throws -> Platform_Persona_V1_ListPersonaValidationsResponse {
    let caller = try context.requireCaller()
    let validator: PersonaValidatorKind?
    if request.validator == .unspecified {
      validator = nil
    } else {
      guard let kind = Self.validatorKind(request.validator) else {
        throw PersonaError.invalidArgument(field: "validator", reason: "unknown validator")
      }
      validator = kind
    }
    let page = try await self.catalog.validations(
      of: Self.uuid(request.personaID, field: "persona_id"), validator: validator, pageSize: request.pageSize,
      pageToken: request.pageToken, caller: caller)
    return .with {
      $0.validations = page.validations.map(Self.message)
      $0.nextPageToken = page.nextPageToken
      $0.totalSize = Int32(clamping: page.total)
    }
  }

  public func ratePersona(
    _ request: Platform_Persona_V1_RatePersonaRequest, context: ServerContext
  ) async throws -> Platform_Persona_V1_Persona {
    let caller = try context.requireCaller()
    let persona = try await self.catalog.rate(Self.uuid(request.personaID, field: "persona_id"), score: Int(request.score), caller: caller)
    return Self.message(persona)
  }
}

// MARK: - Conversions

extension PersonaAPI {
  static func uuid(_ text: String, field: String) throws(PersonaError) -> UUID {
    guard !text.isEmpty else { throw .invalidArgument(field: field, reason: "is required") }
    guard let uuid = UUID(strict: text) else { throw .invalidArgument(field: field, reason: "is not a UUID") }
    return uuid
  }

  static func draft(_ message: Platform_Persona_V1_Persona) -> PersonaDraft {
    PersonaDraft(
      name: message.name, description: message.description_p, template: message.template,
      variables: message.hasVariables ? JSONValue(message.variables) : .object([:]), isPublic: message.isPublic)
  }

  static func message(_ persona: Persona) -> Platform_Persona_V1_Persona {
    .with {
      $0.id = persona.id.lowercasedString
      $0.userID = persona.ownerID.lowercasedString
      $0.name = persona.name
      $0.description_p = persona.description
      $0.template = persona.template
      $0.variables = persona.variables.protobufStruct
      $0.isPublic = persona.isPublic
      $0.usageCount = Int32(clamping: persona.usageCount)
      if let rating = persona.rating { $0.rating = rating }
      $0.ratingCount = Int32(clamping: persona.ratingCount)
      $0.version = Int32(clamping: persona.version)
      $0.createTime = Google_Protobuf_Timestamp(date: persona.createdAt)
      $0.updateTime = Google_Protobuf_Timestamp(date: persona.updatedAt)
      if let deletedAt = persona.deletedAt { $0.deleteTime = Google_Protobuf_Timestamp(date: deletedAt) }
      $0.etag = persona.etag
    }
  }

  static func message(_ validation: PersonaValidation) -> Platform_Persona_V1_PersonaValidation {
    .with {
      $0.id = validation.id.lowercasedString
      $0.personaID = validation.personaID.lowercasedString
      $0.personaVersion = Int32(clamping: validation.personaVersion)
      $0.validator =
        switch validation.validator {
        case .templateSyntax: .templateSyntax
        case .variableSchema: .variableSchema
        case .gpt4Judge: .gpt4Judge
        }
      $0.isValid = validation.isValid
      $0.issues = validation.issues
      $0.result = validation.result.protobufStruct
      $0.validateTime = Google_Protobuf_Timestamp(date: validation.validatedAt)
    }
  }

  static func validatorKind(_ validator: Platform_Persona_V1_PersonaValidator) -> PersonaValidatorKind? {
    switch validator {
    case .templateSyntax: .templateSyntax
    case .variableSchema: .variableSchema
    case .gpt4Judge: .gpt4Judge
    case .unspecified, .UNRECOGNIZED: nil
    }
  }
}
