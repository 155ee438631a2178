// The Go node's broadcast RPC as a libp2p service (broadcast-rpc.ts): requests and answers published on
// the pubsub topic, encrypted per peer. Give it the handlers that answer Go nodes (go-jobs.ts) with
// `serveWith()` before the node starts; it listens once pubsub runs (afterStart) and stops before pubsub
// does (beforeStop). Needs the pubsub service under the name `pubsub` (src/p2p/host.ts).
//
//   services: { broadcast: broadcastRpc({ topic, privateKey, agentVersion, log }) }
import { BroadcastRpc, type BroadcastComponents, type BroadcastRpcOptions } from './broadcast-rpc.ts'

export { BroadcastRpc, BUSY_MESSAGE, type BroadcastCallOptions, type BroadcastComponents, type BroadcastHandlers, type BroadcastRpcOptions } from './broadcast-rpc.ts'
export { makeBroadcastHandlers } from './go-jobs.ts'

export type BroadcastRpcInit = BroadcastRpcOptions

export function broadcastRpc (init: BroadcastRpcInit): (components: BroadcastComponents) => BroadcastRpc {
  return (components) => new BroadcastRpc(components, init)
}
