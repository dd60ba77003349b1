public import GRPCRuntime

/// Channels to the platform's other services (`<SERVICE>_ADDR`), each call traced and carrying
/// the credentials of the call being handled. One client per peer (connecting when first used),
/// closed when the service stops.
public final class PeerChannels: Sendable {
  private let tracing: PlatformTracing
  private let clients: [PlatformServiceName: RPCClient]

  /// - Throws: when a peer's address cannot be used.
  public init(_ peers: Set<PlatformServiceName>, configuration: ServiceConfiguration, tracing: PlatformTracing, lifetime: ServiceLifetime) throws {
    self.tracing = tracing
    var clients: [PlatformServiceName: RPCClient] = [:]
    for peer in peers {
      let address = configuration.peers[peer] ?? "127.0.0.1:\(peer.defaultPort)"
      clients[peer] = try RPCClient(
        configuration: .defaults(targets: [address]) { $0.interceptors += [CredentialForwardingInterceptor()] })
    }
    self.clients = clients
    let all = Array(clients.values)
    lifetime.onStop {
      for client in all { await client.close() }
    }
  }

  /// The channel to `peer`, which must be one of those asked for.
  public func channel(_ peer: PlatformServiceName) -> any RPCChannel {
    guard let client = self.clients[peer] else { preconditionFailure("\(peer) is not among the peers this service asked for") }
    return TracedChannel(client, tracing: self.tracing)
  }
}
