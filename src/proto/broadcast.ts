// Which topic messages are broadcasts (heartbeats) rather than the Go node's broadcast RPC; used by the
// heartbeats (src/protocols/heartbeat/heartbeats.ts) and the Go compatibility layer (src/compat/broadcast-rpc/broadcast-rpc.ts).
import type { protocol } from './aicn.js'

/** A topic message is a heartbeat when it is a broadcast: no request id and no receiver, as the Go node tells them apart. */
export function isBroadcast (message: protocol.Message): boolean {
  return (message.header?.id ?? '') === '' && (message.header?.receiver ?? '') === ''
}
