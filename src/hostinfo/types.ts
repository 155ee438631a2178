// Host information as served by `/api/v0/host/info` and carried in the HostInfoResponse protobuf
// (proto/aicn.proto). Field names are the JSON names; every number is a finite non-negative integer so
// the object can go straight into JSON or protobuf (uint32/uint64/int64) without further checks.

export interface HostOsInfo {
  /** Go's runtime.GOOS spelling: linux, windows, darwin, ... */
  os: string
  /** distribution or product name, e.g. "Debian GNU/Linux", "Microsoft Windows 11 Pro" */
  platform: string
  /** e.g. "debian", "rhel", "Standalone Workstation"; empty when unknown */
  platform_family: string
  platform_version: string
  kernel_version: string
  /** `uname -m` spelling, e.g. x86_64, aarch64 */
  kernel_arch: string
}

/** One physical processor (socket). */
export interface HostCpuInfo {
  model_name: string
  total_cores: number
  total_threads: number
}

export interface HostMemoryInfo {
  total_physical_bytes: number
  /** what the kernel can hand out (MemTotal), a little less than the installed memory */
  total_usable_bytes: number
}

export interface HostDiskInfo {
  /** HDD, SSD, FDD, ODD, virtual or Unknown */
  drive_type: string
  size_bytes: number
  model: string
  serial_number: string
}

export interface HostGpuInfo {
  vendor: string
  product: string
  /** the optional fields are present only when the driver reports them (e.g. through nvidia-smi) */
  memory_bytes?: number
  driver_version?: string
  utilization_percent?: number
  memory_used_bytes?: number
}

export interface HostInfo {
  os: HostOsInfo
  cpu: HostCpuInfo[]
  memory: HostMemoryInfo
  disk: HostDiskInfo[]
  gpu: HostGpuInfo[]
  /** one line per failed probe, e.g. "gpu: timed out after 5000 ms"; omitted when every probe succeeded */
  errors?: string[]
}

/**
 * A probe fills one section of HostInfo. The signal is aborted when the probe's time is up, so a probe
 * that started a child process can kill it.
 */
export type Probe<T> = (signal: AbortSignal) => Promise<T>

export interface Probes {
  os: Probe<HostOsInfo>
  cpu: Probe<HostCpuInfo[]>
  memory: Probe<HostMemoryInfo>
  disk: Probe<HostDiskInfo[]>
  gpu: Probe<HostGpuInfo[]>
}

export interface HostInfoCollectorOptions {
  /** how long a collected result is reused; default 10 000 ms, 0 disables the cache */
  cacheMs?: number
  /** time each probe gets before it is abandoned and reported in `errors`; default 5 000 ms */
  probeTimeoutMs?: number
  /** replaces some of the built-in probes (tests) */
  probes?: Partial<Probes>
}
