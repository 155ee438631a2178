// What our libp2p services take from libp2p's components (the `Components` of
// node_modules/libp2p/dist/src/components.d.ts), each piece narrowed to the calls we make, so that a
// service states what it needs and a unit test can hand it stubs (test/helpers/memory-peers.ts).
// libp2p's own Registrar and ConnectionManager satisfy these interfaces.
import type { AbortOptions, Connection, Libp2p, DialProtocolOptions, PeerId, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** Registers protocol handlers: libp2p's registrar. */
export interface ProtocolRegistrar {
  handle: (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
  unhandle: (protocol: string, options?: AbortOptions) => Promise<void>
}

/** Opens streams to peers and closes their connections: libp2p's connection manager. */
export interface StreamDialer {
  openStream: (peer: PeerId, protocol: string | string[], options?: DialProtocolOptions) => Promise<Stream>
  closeConnections: (peer: PeerId, options?: AbortOptions) => Promise<void>
}

/** Lists connections and dials peers: libp2p's connection manager. */
export interface PeerDialer {
  getConnections: (peer?: PeerId) => Connection[]
  openConnection: (peer: PeerId | Multiaddr | Multiaddr[], options?: { signal?: AbortSignal, priority?: number }) => Promise<Connection>
}

/** The priority libp2p gives dials made through `node.dial()` (node_modules/libp2p/dist/src/libp2p.js);
 * services that dial for the node use it too, as they did before they were services. */
export const USER_DIAL_PRIORITY = 75

/** The components a stream protocol service needs. */
export interface ProtocolComponents {
  peerId: PeerId
  registrar: ProtocolRegistrar
  connectionManager: StreamDialer
}

/** Registers a handler under each of `protocols`, as libp2p's `node.handle(protocols, …)` does. */
export async function handleAll (registrar: ProtocolRegistrar, protocols: string[], handler: StreamHandler, options?: StreamHandlerOptions): Promise<void> {
  await Promise.all(protocols.map(async (protocol) => { await registrar.handle(protocol, handler, options) }))
}

/** Removes the handler of each of `protocols`, as libp2p's `node.unhandle(protocols)` does. */
export async function unhandleAll (registrar: ProtocolRegistrar, protocols: string[]): Promise<void> {
  await Promise.all(protocols.map(async (protocol) => { await registrar.unhandle(protocol) }))
}

/** The components of a service, taken from a libp2p node's public API: for code that builds a service
 * outside libp2p's `services` map (tests, benchmarks). src/node/services.ts lets libp2p build them instead. */
export function componentsOf (node: Pick<Libp2p, 'peerId' | 'handle' | 'unhandle' | 'dialProtocol' | 'hangUp'>): ProtocolComponents {
  return {
    peerId: node.peerId,
    registrar: {
      handle: async (protocol, handler, options) => { await node.handle(protocol, handler, options) },
      unhandle: async (protocol) => { await node.unhandle(protocol) }
    },
    connectionManager: {
      openStream: async (peer, protocol, options) => await node.dialProtocol(peer, protocol, options),
      closeConnections: async (peer, options) => { await node.hangUp(peer, options) }
    }
  }
}

/** Each connected peer once, however many connections it has (as libp2p's `node.getPeers()`). */
export function connectedPeers (connections: Connection[]): PeerId[] {
  const peers = new Map<string, PeerId>()
  for (const connection of connections) peers.set(connection.remotePeer.toString(), connection.remotePeer)
  return [...peers.values()]
}
