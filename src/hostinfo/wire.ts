// HostInfo in the Go node's HOST_INFO protobuf body, both ways; used by the native query protocol
// (src/protocols/queries.ts) and the Go node's broadcast RPC (src/compat/broadcast-rpc/broadcast-rpc.ts).
import type { protocol } from '../proto/index.ts'
import type { HostInfo } from './types.ts'

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
