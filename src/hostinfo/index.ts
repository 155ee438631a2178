// Host information collector: what `/api/v0/host/info` and the HOST_INFO pubsub reply carry.
export { HostInfoCollector, DEFAULT_CACHE_MS, DEFAULT_PROBE_TIMEOUT_MS } from './collect.ts'
export type {
  HostInfo, HostInfoCollectorOptions, HostOsInfo, HostCpuInfo, HostMemoryInfo, HostDiskInfo, HostGpuInfo, Probe, Probes
} from './types.ts'
