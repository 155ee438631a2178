// The node-control queries that travel between nodes on the RPC protocol: a node's PeerInfo
// (PEER_IDENTITY) and its machine information (HOST_INFO), in the Go node's protobuf bodies.
import type { PeerId } from '@libp2p/interface'
import { protocol } from '../proto/index.ts'
import { AicnError, ErrorCode } from '../errors.ts'
import type { HostInfo } from '../hostinfo/index.ts'
import type { PeerInfo } from '../p2p/peer-info.ts'
import type { RpcCallOptions, RpcService } from './rpc.ts'
import type { QueryRequester } from './transport.ts'

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

export function hostInfoToProto (info: HostInfo): protocol.IHostInfoResponse {
  return {
    os: info.os,
    cpu: info.cpu,
    memory: info.memory,
    disk: info.disk,
    gpu: info.gpu.map((g) => ({
      vendor: g.vendor,
      product: g.product,
      memory_bytes: g.memory_bytes,
      driver_version: g.driver_version,
      utilization_percent: g.utilization_percent,
      memory_used_bytes: g.memory_used_bytes
    })),
    errors: info.errors ?? []
  }
}

export function hostInfoFromProto (res: protocol.IHostInfoResponse): HostInfo {
  const os = res.os ?? {}
  const info: HostInfo = {
    os: {
      os: os.os ?? '',
      platform: os.platform ?? '',
      platform_family: os.platform_family ?? '',
      platform_version: os.platform_version ?? '',
      kernel_version: os.kernel_version ?? '',
      kernel_arch: os.kernel_arch ?? ''
    },
    cpu: (res.cpu ?? []).map((c) => ({ model_name: c.model_name ?? '', total_cores: Number(c.total_cores ?? 0), total_threads: Number(c.total_threads ?? 0) })),
    memory: { total_physical_bytes: Number(res.memory?.total_physical_bytes ?? 0), total_usable_bytes: Number(res.memory?.total_usable_bytes ?? 0) },
    disk: (res.disk ?? []).map((d) => ({ drive_type: d.drive_type ?? '', size_bytes: Number(d.size_bytes ?? 0), model: d.model ?? '', serial_number: d.serial_number ?? '' })),
    gpu: (res.gpu ?? []).map((g) => {
      const gpu: HostInfo['gpu'][number] = { vendor: g.vendor ?? '', product: g.product ?? '' }
      // Our extension fields are absent in answers from Go nodes; show them only when a node sent them.
      if (Number(g.memory_bytes ?? 0) > 0) gpu.memory_bytes = Number(g.memory_bytes)
      if ((g.driver_version ?? '') !== '') gpu.driver_version = g.driver_version ?? ''
      if (g.utilization_percent != null && g.utilization_percent !== 0) gpu.utilization_percent = g.utilization_percent
      if (Number(g.memory_used_bytes ?? 0) > 0) gpu.memory_used_bytes = Number(g.memory_used_bytes)
      return gpu
    })
  }
  if ((res.errors ?? []).length > 0) info.errors = res.errors ?? []
  return info
}
