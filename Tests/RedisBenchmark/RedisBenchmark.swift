import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import PlatformRedis

/// Runs GET or SET the way `redis-benchmark -c C -P P -n N -d D -t T` does (C clients, each
/// with P commands in flight, N commands in all, on the key `key:__rand_int__`) through our
/// client, and prints one line: commands, seconds, commands per second and the client's CPU
/// time per command.
@main
struct RedisBenchmark: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "redis-bench")

  @Option(help: "Redis URL") var url = "redis://127.0.0.1:6379"
  @Option(name: .customShort("c"), help: "concurrent clients") var clients = 50
  @Option(name: .customShort("P"), help: "commands each client sends together (pipeline)") var pipeline = 1
  @Option(name: .customShort("n"), help: "commands in all") var requests = 100_000
  @Option(name: .customShort("d"), help: "SET value size in bytes") var dataSize = 3
  @Option(name: .customShort("t"), help: "get or set") var test = "get"
  @Option(help: "connections in the client's pool") var poolSize = 1
  @Option(help: "event loop threads") var threads = 1

  func run() async throws {
    guard ["get", "set"].contains(self.test) else { throw ValidationError("-t must be get or set") }
    var configuration = try RedisConfiguration(url: self.url)
    configuration.poolSize = self.poolSize
    configuration.commandTimeout = .seconds(10)
    let group = MultiThreadedEventLoopGroup(numberOfThreads: self.threads)
    let client = try RedisClient(configuration: configuration, group: group, logger: Logger(label: "redis-bench"))
    let key = "key:__rand_int__"
    let value = String(repeating: "x", count: self.dataSize)
    try await client.set(key, to: .string(value))
    let command =
      self.test == "get" ? RedisCommand("GET", .string(key)) : RedisCommand("SET", .string(key), .string(value))
    let batch = Array(repeating: command, count: self.pipeline)
    let rounds = max(self.requests / (self.clients * self.pipeline), 1)

    let cpuBefore = Self.cpuSeconds()
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
      for _ in 0..<self.clients {
        group.addTask {
          for _ in 0..<rounds {
            if batch.count == 1 {
              _ = try await client.send(command)
            } else {
              for reply in try await client.pipeline(batch) {
                if case .error(let message) = reply { throw RedisError(.server, message) }
              }
            }
          }
        }
      }
      try await group.waitForAll()
    }
    let seconds = Double((ContinuousClock.now - start).components.attoseconds) / 1e18
      + Double((ContinuousClock.now - start).components.seconds)
    let cpu = Self.cpuSeconds() - cpuBefore
    let total = rounds * self.clients * self.pipeline
    print(
      String(
        format: "%@ commands=%d seconds=%.3f rps=%.0f cpu_us_per_command=%.2f", self.test.uppercased(), total,
        seconds, Double(total) / seconds, cpu / Double(total) * 1e6))
    await client.close()
    try await group.shutdownGracefully()
  }

  /// User and system CPU time of this process.
  static func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
      + Double(usage.ru_stime.tv_usec) / 1e6
  }
}
