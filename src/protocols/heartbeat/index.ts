// Heartbeats as a libp2p service (heartbeats.ts): this node's models announced on the pubsub topic, the
// others' received into the network view, the leaving heartbeat at stop. It reads what it announces from
// the local registry given in its init, so libp2p runs its whole lifecycle: afterStart subscribes and
// publishes the first heartbeat, beforeStop publishes the leaving one while pubsub still runs. Needs the
// pubsub service under the name `pubsub` (src/p2p/host.ts) and, unless `viewSync: false`, the view sync
// service under the name `viewSync`, listed before it (src/registry/view-sync/).
//
//   services: { viewSync: viewSync({ … }), heartbeats: heartbeats({ topic, registry, view, intervalMs, … }) }
import { Heartbeats, type HeartbeatComponents, type HeartbeatInit } from './heartbeats.ts'

export { Heartbeats, MAX_TOPIC_MESSAGE_BYTES, MIN_PUBLISH_GAP_MS, checkTopicMessage, type HeartbeatComponents, type HeartbeatInit, type TopicCheck } from './heartbeats.ts'
export { RefreshForwarding, registerRefreshForwardingMetrics } from './refresh-forwarding.ts'

export function heartbeats (init: HeartbeatInit): (components: HeartbeatComponents) => Heartbeats {
  return (components) => new Heartbeats(components, init)
}
