// Direct-peer liveness as a libp2p service (direct-peer-liveness.ts): a node whose last connection to us
// closes is left out of routing until it is heard again. It watches from the node's start until just
// before it stops, so our own shutdown says nothing about the peers.
//
//   services: { liveness: directPeerLiveness({ view, log }) }
import { DirectPeerLiveness, type LivenessComponents, type LivenessInit } from './direct-peer-liveness.ts'

export { DirectPeerLiveness, type LivenessComponents, type LivenessInit } from './direct-peer-liveness.ts'

export function directPeerLiveness (init: LivenessInit): (components: LivenessComponents) => DirectPeerLiveness {
  return (components) => new DirectPeerLiveness(components, init)
}
