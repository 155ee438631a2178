// Rendezvous through the DHT as a libp2p service (rendezvous.ts): each node provides its topic's
// namespace from the node's start until just before it stops, and `rendezvous/peers` lists the providers.
// Only with the DHT (Routing.Type other than "none"), which it needs as the service `dht`.
//
//   services: { rendezvous: rendezvous({ namespace: topic, dhtProtocol, log }) }
import { Rendezvous, type RendezvousComponents, type RendezvousInit } from './rendezvous.ts'

export { Rendezvous, namespaceCid, type RendezvousComponents, type RendezvousInit } from './rendezvous.ts'

export function rendezvous (init: RendezvousInit): (components: RendezvousComponents) => Rendezvous {
  return (components) => new Rendezvous(components, init)
}
