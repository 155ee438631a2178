// Round-trip times to connected peers as a libp2p service (latency-tracker.ts): it pings each peer when
// it connects and then every minute, from the node's start until just before it stops. Needs the ping
// service under the name `ping` (src/p2p/host.ts).
//
//   services: { latency: latencyTracker({ log }) }   →   host.services.latency.latencyMs(peerId)
import { LatencyTracker, type LatencyComponents, type LatencyInit } from './latency-tracker.ts'

export { LatencyTracker, type LatencyComponents, type LatencyInit } from './latency-tracker.ts'

export function latencyTracker (init: LatencyInit): (components: LatencyComponents) => LatencyTracker {
  return (components) => new LatencyTracker(components, init)
}
