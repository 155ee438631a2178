// Peer logging as a libp2p service (peer-log.ts): "peer connected" / "peer disconnected" info lines from
// the node's start until just before it stops.
//
//   services: { peerLog: peerLog({ log }) }
import { PeerLog, type PeerLogComponents, type PeerLogInit } from './peer-log.ts'

export { PeerLog, type PeerLogComponents, type PeerLogInit } from './peer-log.ts'

export function peerLog (init: PeerLogInit): (components: PeerLogComponents) => PeerLog {
  return (components) => new PeerLog(components, init)
}
