// Connections as the node-control API shows and changes them (README.md, "API").
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { KEEP_ALIVE, type AbortOptions, type Connection, type PeerId, type PeerStore } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../core/errors.ts'
import { formatDuration } from '../core/duration.ts'
import type { LatencyTracker } from './latency/index.ts'

/** Peers connected or added through the API are kept by the connection manager, as in the Go node. */
export const USER_CONNECT_TAG = 'user-connect'
const CONNECT_TIMEOUT_MS = 60_000

export interface NodeAddress { addr: Multiaddr, peerId: PeerId }

/** What the swarm operations take from libp2p (a node satisfies it); each function names its part. */
export interface SwarmComponents {
  peerId: PeerId
  getConnections: (peer?: PeerId) => Connection[]
  dial: (addr: Multiaddr, options?: AbortOptions) => Promise<unknown>
  hangUp: (peer: PeerId, options?: AbortOptions) => Promise<void>
  peerStore: Pick<PeerStore, 'merge' | 'has' | 'all'>
}

type PeerTags = { peerStore: Pick<PeerStore, 'merge' | 'has'> }

/** Parses `node_addr`: a multiaddr that ends in /p2p/<node id>. */
export function parseNodeAddr (text: string): NodeAddress {
  let addr: Multiaddr
  try {
    addr = multiaddr(text)
  } catch (err) {
    throw new AicnError(ErrorCode.PARAM, `"${text}" is not a multiaddr: ${(err as Error).message}`)
  }
  const id = addr.getComponents().findLast((c) => c.name === 'p2p')?.value
  if (id === undefined) throw new AicnError(ErrorCode.PARAM, `"${text}" must end with /p2p/<node id>`)
  try {
    return { addr, peerId: peerIdFromString(id) }
  } catch {
    throw new AicnError(ErrorCode.PARAM, `"${id}" in "${text}" is not a valid node id`)
  }
}

/** `explain` may reword a dial error (src/p2p/psk-watch.ts names a wrong pre-shared key). */
export async function connectTo (host: Pick<SwarmComponents, 'peerId' | 'getConnections' | 'dial'> & { peerStore: Pick<PeerStore, 'merge'> }, target: NodeAddress, tags: Record<string, number>, explain?: (addr: string, message: string) => string): Promise<void> {
  if (target.peerId.equals(host.peerId)) throw new AicnError(ErrorCode.PARAM, 'cannot connect to this node itself')
  if (host.getConnections(target.peerId).length === 0) {
    try {
      await host.dial(target.addr, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) })
    } catch (err) {
      const message = explain?.(target.addr.toString(), (err as Error).message) ?? (err as Error).message
      throw new AicnError(ErrorCode.ROUTING, `cannot connect to ${target.addr.toString()}: ${message}`, { status: 502 })
    }
  }
  await host.peerStore.merge(target.peerId, {
    multiaddrs: [target.addr],
    tags: Object.fromEntries(Object.entries(tags).map(([name, value]) => [name, { value }]))
  })
}

export async function disconnectFrom (host: Pick<SwarmComponents, 'getConnections' | 'hangUp'> & PeerTags, target: NodeAddress): Promise<void> {
  if (host.getConnections(target.peerId).length === 0) {
    throw new AicnError(ErrorCode.PARAM, `not connected to ${target.peerId.toString()}`)
  }
  // Drop the tags first so the connection manager does not dial the peer straight back.
  await forgetTags(host, target.peerId)
  await host.hangUp(target.peerId)
}

export async function forgetTags (host: PeerTags, peerId: PeerId): Promise<void> {
  if (await host.peerStore.has(peerId)) {
    await host.peerStore.merge(peerId, { tags: { [USER_CONNECT_TAG]: undefined, [KEEP_ALIVE]: undefined } })
  }
}

export interface SwarmPeer { id: string, peer: string, addr: string, latency: string, direction: 'Inbound' | 'Outbound' }

export function swarmPeers (host: Pick<SwarmComponents, 'getConnections'>, latency: Pick<LatencyTracker, 'latencyMs'>): SwarmPeer[] {
  return host.getConnections().map((connection, index) => {
    const peer = connection.remotePeer.toString()
    return {
      id: `${peer.slice(0, 10)}-${index + 1}`,
      peer,
      addr: connection.remoteAddr.toString(),
      latency: formatDuration(latency.latencyMs(peer) ?? 0),
      direction: connection.direction === 'inbound' ? 'Inbound' : 'Outbound'
    }
  })
}

export async function swarmAddrs (host: { peerStore: Pick<PeerStore, 'all'> }): Promise<Array<{ peer: string, addrs: string[] }>> {
  const peers = await host.peerStore.all()
  return peers.map((p) => ({ peer: p.id.toString(), addrs: p.addresses.map((a) => a.multiaddr.toString()) }))
}
