internal import Foundation
#if canImport(Glibc)
internal import Glibc
#endif

/// A plain HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`): the status code and
/// body. For the admin port.
public func httpRequest(port: Int, path: String, method: String = "GET") throws -> (status: Int, body: String) {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { throw RedisTestServerError(message: "socket() failed") }
  defer { close(fd) }
  var timeout = timeval(tv_sec: 10, tv_usec: 0)
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = in_port_t(UInt16(port).bigEndian)
  let connected = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
  }
  guard connected else { throw RedisTestServerError(message: "cannot connect to port \(port)") }
  let request = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
  _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
  var response: [UInt8] = []
  var chunk = [UInt8](repeating: 0, count: 65536)
  while true {
    let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    if count <= 0 { break }
    response += chunk[0..<count]
  }
  let text = String(decoding: response, as: UTF8.self)
  guard let statusLine = text.split(separator: "\r\n", maxSplits: 1).first,
    let status = Int(statusLine.split(separator: " ").dropFirst().first ?? ""),
    let bodyStart = text.range(of: "\r\n\r\n")
  else { throw RedisTestServerError(message: "not an HTTP response: \(text.prefix(100))") }
  return (status, String(text[bodyStart.upperBound...]))
}
