// The connection history as a libp2p service (peer-history.ts): records the dialable addresses of the
// peers we connect to from the node's start; redial() dials the known ones again, called by
// src/node/node.ts once `host.start()` has resolved (the node listens then; afterStart does not promise it:
// see peer-history.ts).
//
//   services: { peerHistory: peerHistory({ history, skip, log }) }   →   await host.services.peerHistory.redial()
import { PeerHistory, type PeerHistoryComponents, type PeerHistoryInit } from './peer-history.ts'

export { PeerHistory, type PeerHistoryComponents, type PeerHistoryInit, type RedialResult } from './peer-history.ts'

export function peerHistory (init: PeerHistoryInit): (components: PeerHistoryComponents) => PeerHistory {
  return (components) => new PeerHistory(components, init)
}
