import Foundation
import NIOSSL

/// A self-signed certificate for `localhost` (and 127.0.0.1 unless `ipAddress` is false), made
/// with openssl for one test.
struct TestCertificate {
  let certificate: NIOSSLCertificate
  let privateKey: NIOSSLPrivateKey

  static func make(ipAddress: Bool = true) throws -> TestCertificate {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rpc-tls-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let key = directory.appendingPathComponent("key.pem").path
    let cert = directory.appendingPathComponent("cert.pem").path
    try run("/usr/bin/openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
      "-addext", ipAddress ? "subjectAltName=DNS:localhost,IP:127.0.0.1" : "subjectAltName=DNS:localhost",
    ])
    return TestCertificate(
      certificate: try NIOSSLCertificate.fromPEMFile(cert)[0],
      privateKey: try NIOSSLPrivateKey(file: key, format: .pem))
  }

  var serverConfiguration: TLSConfiguration {
    TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(self.certificate)], privateKey: .privateKey(self.privateKey))
  }

  var clientConfiguration: TLSConfiguration {
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.trustRoots = .certificates([self.certificate])
    return configuration
  }
}

/// Runs a command, throwing when it fails; returns its standard output.
@discardableResult
func run(_ executable: String, _ arguments: [String]) throws -> String {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = arguments
  let output = Pipe()
  process.standardOutput = output
  process.standardError = FileHandle.nullDevice
  try process.run()
  let data = output.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  guard process.terminationStatus == 0 else {
    throw CommandFailure(description: "\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
  }
  return String(decoding: data, as: UTF8.self)
}

struct CommandFailure: Error, CustomStringConvertible {
  var description: String
}
