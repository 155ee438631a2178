// PeerInfo as the API shows it (`id` and `peer` in README.md, "API"): id, identify versions, addresses, protocols.
import type { Connection, PeerId, PeerStore } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface PeerInfo {
  peer_id: string
  protocol_version: string
  agent_version: string
  addresses: string[]
  protocols: string[]
}

const decoder = new TextDecoder()

/** Addresses without the trailing /p2p/<own id>, as the Go node lists them. */
function withoutPeerSuffix (addr: string): string {
  // A relayed address needs the relay's /p2p part, so only direct addresses are trimmed.
  if (addr.includes('/p2p-circuit')) return addr
  const at = addr.lastIndexOf('/p2p/')
  return at > 0 ? addr.slice(0, at) : addr
}

/** What this node's PeerInfo takes from libp2p (a node satisfies it). */
export interface LocalPeerComponents {
  peerId: PeerId
  peerStore: Pick<PeerStore, 'get'>
  getMultiaddrs: () => Multiaddr[]
  getProtocols: () => string[]
}

/** What a connected peer's PeerInfo takes from libp2p (a node satisfies it). */
export interface IdentifiedPeerComponents {
  getConnections: (peer: PeerId) => Connection[]
  peerStore: Pick<PeerStore, 'get'>
}

export async function localPeerInfo (host: LocalPeerComponents): Promise<PeerInfo> {
  const self = await host.peerStore.get(host.peerId)
  return {
    peer_id: host.peerId.toString(),
    protocol_version: metadataString(self.metadata, 'ProtocolVersion'),
    agent_version: metadataString(self.metadata, 'AgentVersion'),
    addresses: host.getMultiaddrs().map((a) => withoutPeerSuffix(a.toString())),
    protocols: host.getProtocols().slice().sort()
  }
}

/** What identify told us about a connected peer, or undefined when identify has not completed. */
export async function identifiedPeerInfo (host: IdentifiedPeerComponents, peerId: PeerId): Promise<PeerInfo | undefined> {
  if (host.getConnections(peerId).length === 0) return undefined
  let peer
  try {
    peer = await host.peerStore.get(peerId)
  } catch {
    return undefined
  }
  if (peer.protocols.length === 0) return undefined
  return {
    peer_id: peerId.toString(),
    protocol_version: metadataString(peer.metadata, 'ProtocolVersion'),
    agent_version: metadataString(peer.metadata, 'AgentVersion'),
    addresses: peer.addresses.map((a) => a.multiaddr.toString()),
    protocols: peer.protocols.slice().sort()
  }
}

function metadataString (metadata: Map<string, Uint8Array>, key: string): string {
  const value = metadata.get(key)
  return value == null ? '' : decoder.decode(value)
}
