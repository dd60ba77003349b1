public import Foundation

/// One numbered SQL migration, shipped as a resource `NNNN_name.sql`.
public struct Migration: Sendable, Hashable {
  public var version: Int
  public var name: String
  public var sql: String
  /// SHA-256 of the SQL text, lowercase hex: what `schema_migrations` records.
  public var checksum: String

  public init(version: Int, name: String, sql: String) {
    self.version = version
    self.name = name
    self.sql = sql
    self.checksum = sql.sha256Hex
  }

  /// Loads every `NNNN_name.sql` file of `directory`, ordered by version.
  /// - Throws: `MigrationError` for a misnamed file or a repeated version.
  public static func load(directory: URL) throws -> [Migration] {
    let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
      .filter { $0.hasSuffix(".sql") }
    var migrations: [Migration] = []
    for file in files {
      let stem = file.dropLast(4)
      guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]), version > 0,
        stem[stem.index(after: underscore)...].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" })
      else { throw MigrationError.badFileName(file) }
      let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
      migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
    }
    migrations.sort { $0.version < $1.version }
    for (previous, next) in zip(migrations, migrations.dropFirst()) where previous.version == next.version {
      throw MigrationError.duplicateVersion(next.version)
    }
    return migrations
  }

  /// Loads the `Migrations` folder a target ships as a resource (`.copy("Migrations")`).
  public static func load(bundle: Bundle, folder: String = "Migrations") throws -> [Migration] {
    guard let directory = bundle.url(forResource: folder, withExtension: nil) else {
      throw MigrationError.missingResources(bundle.bundlePath + "/" + folder)
    }
    return try Self.load(directory: directory)
  }
}

/// Why migrations could not be applied. Start-up stops with this message.
public enum MigrationError: Error, Equatable, CustomStringConvertible {
  case badFileName(String)
  case duplicateVersion(Int)
  case missingResources(String)
  /// A migration already applied has changed since: the database and the code disagree.
  case changedAfterApplied(version: Int, name: String, recorded: String, current: String)
  case failed(version: Int, name: String, reason: String)
  /// Another session held the migration lock for the whole wait.
  case lockTimeout(waited: Duration, holder: String)

  public var description: String {
    switch self {
    case .badFileName(let file):
      "Migration file \(file) is not named NNNN_name.sql"
    case .duplicateVersion(let version):
      "Two migrations have version \(version)"
    case .missingResources(let path):
      "Migrations not found at \(path) (the *.resources folder must sit beside the executable)"
    case .changedAfterApplied(let version, let name, let recorded, let current):
      "Migration \(version) (\(name)) was changed after it was applied: recorded checksum \(recorded.prefix(12))…, "
        + "this build has \(current.prefix(12))…. Restore the original file and add a new migration instead."
    case .failed(let version, let name, let reason):
      "Migration \(version) (\(name)) failed: \(reason)"
    case .lockTimeout(let waited, let holder):
      "Another process held the migration lock for \(waited) (\(holder)): a replica still migrating, or one stuck "
        + "mid-migration. Start again once it is done, or end that session (pg_terminate_backend)."
    }
  }
}
