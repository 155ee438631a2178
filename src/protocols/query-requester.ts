// What the query clients need to reach another node: src/node/peer-transport.ts implements it with the
// native RPC protocol or the Go node's broadcast RPC, whichever the peer speaks.
import type { PeerId } from '@libp2p/interface'
import type { protocol } from '../proto/index.ts'
import type { RpcCallOptions } from './rpc/index.ts'

/** Sends a query (PEER_IDENTITY, HOST_INFO, AI_PROJECT) to a node and returns its answer body. */
export interface QueryRequester {
  request: (peer: PeerId, type: protocol.MessageType, body: Uint8Array, call?: RpcCallOptions) => Promise<Uint8Array>
}
