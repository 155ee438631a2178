// The RPC protocol (/aicn/rpc/1.0.0) as a libp2p service: node-to-node queries, one request and one
// answer per stream (rpc-service.ts). Queries register their handlers with `handle()` before the node
// starts (src/protocols/queries.ts, src/protocols/network.ts); libp2p starts and stops the service.
//
//   services: { rpc: rpc({ agentVersion, log }) }   →   host.services.rpc.request(peer, type, body)
import { RpcService, type RpcComponents, type RpcOptions } from './rpc-service.ts'

export { RPC_PROTOCOL, RpcService, type RpcCallOptions, type RpcComponents, type RpcHandler, type RpcOptions } from './rpc-service.ts'

export type RpcInit = RpcOptions

export function rpc (init: RpcInit): (components: RpcComponents) => RpcService {
  return (components) => new RpcService(components, init)
}
