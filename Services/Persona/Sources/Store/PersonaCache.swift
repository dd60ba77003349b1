public import CoreMetrics
internal import Foundation
public import Logging
internal import NIOCore
public import PlatformCore
public import PlatformRedis

/// `persona:{id}` in Redis (seed 002 §4.2.2): the persona as of its last write or load, versioned
/// by its revision, one hour by default.
public typealias PersonaCache = VersionedCache<Persona>

extension VersionedCache where Value == Persona {
  public static func personas(
    redis: RedisClient, timeToLive: Duration, logger: Logger, metrics: any MetricsFactory
  ) -> PersonaCache {
    // Recent revisions stay decoded in-process (10,000 personas, 32 MiB of their cached bytes).
    PersonaCache(
      redis: redis, namespace: "persona", timeToLive: timeToLive, logger: logger, metrics: metrics,
      memo: (10_000, 32 << 20), encode: PersonaCacheCoding.encode, decode: PersonaCacheCoding.decode)
  }
}

/// A persona's bytes in the cache: the fields in order, texts and the schema's JSON
/// length-prefixed, numbers big-endian. Cheaper to read than JSON, and a copy written by another
/// layout (a format tag that does not match) reads as a miss.
enum PersonaCacheCoding {
  static let format: UInt8 = 1

  struct Malformed: Error {}

  @Sendable static func encode(_ persona: Persona) -> ByteBuffer {
    var buffer = ByteBuffer()
    let variables = persona.variables.jsonText
    buffer.reserveCapacity(
      128 + persona.name.utf8.count + persona.description.utf8.count + persona.template.utf8.count + variables.utf8.count)
    buffer.writeInteger(Self.format)
    Self.write(persona.id, to: &buffer)
    Self.write(persona.ownerID, to: &buffer)
    for text in [persona.name, persona.description, persona.template, variables] {
      buffer.writeInteger(UInt32(text.utf8.count))
      buffer.writeString(text)
    }
    buffer.writeInteger(UInt8(persona.isPublic ? 1 : 0))
    buffer.writeInteger(Int64(persona.usageCount))
    buffer.writeInteger(UInt8(persona.rating == nil ? 0 : 1))
    buffer.writeInteger((persona.rating ?? 0).bitPattern)
    buffer.writeInteger(Int64(persona.ratingCount))
    buffer.writeInteger(Int64(persona.version))
    // Date's own representation, so a copy compares equal to the original.
    buffer.writeInteger(persona.createdAt.timeIntervalSinceReferenceDate.bitPattern)
    buffer.writeInteger(persona.updatedAt.timeIntervalSinceReferenceDate.bitPattern)
    buffer.writeInteger(persona.revision)
    return buffer
  }

  @Sendable static func decode(_ bytes: ByteBuffer) throws -> Persona {
    var buffer = bytes
    guard buffer.readInteger(as: UInt8.self) == Self.format, let id = Self.readUUID(&buffer),
      let owner = Self.readUUID(&buffer)
    else { throw Malformed() }
    var texts: [String] = []
    for _ in 0..<4 {
      guard let length = buffer.readInteger(as: UInt32.self), let text = buffer.readString(length: Int(length)) else {
        throw Malformed()
      }
      texts.append(text)
    }
    guard let isPublic = buffer.readInteger(as: UInt8.self), let usage = buffer.readInteger(as: Int64.self),
      let hasRating = buffer.readInteger(as: UInt8.self), let rating = buffer.readInteger(as: UInt64.self),
      let ratingCount = buffer.readInteger(as: Int64.self), let version = buffer.readInteger(as: Int64.self),
      let created = buffer.readInteger(as: UInt64.self), let updated = buffer.readInteger(as: UInt64.self),
      let revision = buffer.readInteger(as: Int64.self), buffer.readableBytes == 0
    else { throw Malformed() }
    return Persona(
      id: id, ownerID: owner, name: texts[0], description: texts[1], template: texts[2],
      variables: try JSONValue(jsonText: texts[3]), isPublic: isPublic == 1, usageCount: Int(usage),
      rating: hasRating == 1 ? Double(bitPattern: rating) : nil, ratingCount: Int(ratingCount), version: Int(version),
      createdAt: Date(timeIntervalSinceReferenceDate: Double(bitPattern: created)),
      updatedAt: Date(timeIntervalSinceReferenceDate: Double(bitPattern: updated)), deletedAt: nil, revision: revision)
  }

  private static func write(_ id: UUID, to buffer: inout ByteBuffer) {
    _ = withUnsafeBytes(of: id.uuid) { buffer.writeBytes($0) }
  }

  private static func readUUID(_ buffer: inout ByteBuffer) -> UUID? {
    guard let bytes = buffer.readBytes(length: 16) else { return nil }
    return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                       bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
  }
}
