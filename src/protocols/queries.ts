// The node-control queries that travel between nodes on the RPC protocol: a node's PeerInfo
// (PEER_IDENTITY) and its machine information (HOST_INFO), in the Go node's protobuf bodies.
import type { PeerId } from '@libp2p/interface'
import { protocol } from '../proto/index.ts'
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { HostInfo } from '../hostinfo/index.ts'
import type { PeerInfo } from '../p2p/peer-info.ts'
import type { RpcCallOptions, RpcService } from './rpc/index.ts'
import type { QueryRequester } from './query-requester.ts'
import { hostInfoFromProto, hostInfoToProto } from '../hostinfo/wire.ts'

export interface QuerySources {
  localPeerInfo: () => Promise<PeerInfo>
  localHostInfo: () => Promise<HostInfo>
}

export function registerQueryHandlers (rpc: RpcService, sources: QuerySources): void {
  rpc.handle(protocol.MessageType.PEER_IDENTITY, async () => {
    const info = await sources.localPeerInfo()
    return protocol.PeerIdentityBody.encode({
      res: {
        protocol_version: info.protocol_version,
        agent_version: info.agent_version,
        listen_addrs: info.addresses,
        protocols: info.protocols
      }
    }).finish()
  })
  rpc.handle(protocol.MessageType.HOST_INFO, async () => {
    return protocol.HostInfoBody.encode({ res: hostInfoToProto(await sources.localHostInfo()) }).finish()
  })
}

export async function queryPeerInfo (rpc: QueryRequester, peerId: PeerId, call: RpcCallOptions): Promise<PeerInfo> {
  const body = await rpc.request(peerId, protocol.MessageType.PEER_IDENTITY, protocol.PeerIdentityBody.encode({ req: {} }).finish(), call)
  const res = decodeBody(() => protocol.PeerIdentityBody.decode(body)).res
  if (res == null) throw new AicnError(ErrorCode.PROTOBUF, `node ${peerId.toString()} sent no identity`)
  return {
    peer_id: peerId.toString(),
    protocol_version: res.protocol_version ?? '',
    agent_version: res.agent_version ?? '',
    addresses: res.listen_addrs ?? [],
    protocols: res.protocols ?? []
  }
}

export async function queryHostInfo (rpc: QueryRequester, peerId: PeerId, call: RpcCallOptions): Promise<HostInfo> {
  const body = await rpc.request(peerId, protocol.MessageType.HOST_INFO, protocol.HostInfoBody.encode({ req: {} }).finish(), call)
  const res = decodeBody(() => protocol.HostInfoBody.decode(body)).res
  if (res == null) throw new AicnError(ErrorCode.PROTOBUF, `node ${peerId.toString()} sent no host info`)
  return hostInfoFromProto(res)
}

function decodeBody<T> (decode: () => T): T {
  try {
    return decode()
  } catch (err) {
    throw new AicnError(ErrorCode.PROTOBUF, `malformed body: ${(err as Error).message}`)
  }
}

