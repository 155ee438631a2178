// Host information collector (src/hostinfo/types.ts has the shape). The Go node used gopsutil and ghw; we use systeminformation
// and map its output onto the same JSON shape. Every probe runs concurrently under its own deadline, a
// failed probe only empties its own section, and results are cached because a node can be asked for its
// host information by any peer of the network.
import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { machine, release as osRelease } from 'node:os'
import type { Systeminformation } from 'systeminformation'
import type {
  HostCpuInfo, HostDiskInfo, HostGpuInfo, HostInfo, HostInfoCollectorOptions, HostMemoryInfo, HostOsInfo,
  Probe, Probes
} from './types.ts'

export const DEFAULT_CACHE_MS = 10_000
export const DEFAULT_PROBE_TIMEOUT_MS = 5_000

const MIB = 1024 * 1024

export class HostInfoCollector {
  private readonly cacheMs: number
  private readonly probeTimeoutMs: number
  private readonly probes: Probes
  private cached?: { info: HostInfo, at: number }
  private running?: Promise<HostInfo>

  constructor (options: HostInfoCollectorOptions = {}) {
    this.cacheMs = options.cacheMs ?? DEFAULT_CACHE_MS
    this.probeTimeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS
    this.probes = { ...defaultProbes, ...options.probes }
  }

  /**
   * Never rejects. Within cacheMs the very same object is returned again (treat it as read-only), and
   * callers arriving while a collection runs share it instead of starting their own.
   */
  async collect (): Promise<HostInfo> {
    if (this.cached != null && Date.now() - this.cached.at < this.cacheMs) return this.cached.info
    this.running ??= this.collectNow()
      .then(info => {
        this.cached = { info, at: Date.now() }
        return info
      })
      .finally(() => { this.running = undefined })
    return await this.running
  }

  private async collectNow (): Promise<HostInfo> {
    const run = async <T>(name: string, probe: Probe<T>, empty: T): Promise<{ value: T, error?: string }> => {
      try {
        return { value: await withDeadline(probe, this.probeTimeoutMs) }
      } catch (err) {
        return { value: empty, error: `${name}: ${errorMessage(err)}` }
      }
    }
    const [os, cpu, memory, disk, gpu] = await Promise.all([
      run('os', this.probes.os, emptyOs()),
      run('cpu', this.probes.cpu, []),
      run('memory', this.probes.memory, { total_physical_bytes: 0, total_usable_bytes: 0 }),
      run('disk', this.probes.disk, []),
      run('gpu', this.probes.gpu, [])
    ])
    const info: HostInfo = { os: os.value, cpu: cpu.value, memory: memory.value, disk: disk.value, gpu: gpu.value }
    const errors = [os, cpu, memory, disk, gpu].flatMap(result => result.error ?? [])
    if (errors.length > 0) info.errors = errors
    return info
  }
}

/**
 * Runs a probe but gives up after timeoutMs. Giving up is all we can do for a promise; the abort signal
 * lets the probe kill whatever it spawned.
 */
async function withDeadline<T> (probe: Probe<T>, timeoutMs: number): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`timed out after ${timeoutMs} ms`)
      controller.abort(err)
      reject(err)
    }, timeoutMs)
  })
  try {
    // the extra then() turns a probe that throws synchronously into a rejection
    return await Promise.race([Promise.resolve().then(async () => await probe(controller.signal)), deadline])
  } finally {
    clearTimeout(timer)
  }
}

function errorMessage (err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.split('\n')[0].trim() || 'failed'
}

function emptyOs (): HostOsInfo {
  return { os: '', platform: '', platform_family: '', platform_version: '', kernel_version: '', kernel_arch: '' }
}

// ---------------------------------------------------------------------------------------------------
// Built-in probes

export const defaultProbes: Probes = {
  async os (signal) {
    if (process.platform === 'linux') {
      // systeminformation's osInfo runs `hostname -f`, which can send a DNS query off the machine; on
      // Linux everything we report is in /etc/os-release and uname, so we read those instead.
      const release = await readOsRelease()
      const data = { platform: 'linux', distro: release.NAME ?? 'Linux', release: release.VERSION_ID ?? '', kernel: osRelease(), arch: process.arch, logofile: release.ID ?? '' }
      return mapOs(data as Systeminformation.OsData, machine(), release)
    }
    const data = await siInChild<Systeminformation.OsData>('osInfo', signal)
    return mapOs(data, machine(), {})
  },
  async cpu () {
    const si = await loadSi()
    const [data, model] = await Promise.all([si.cpu(), procCpuModel()])
    return mapCpu(data, model)
  },
  async memory () {
    const si = await loadSi()
    const [data, usable, physical] = await Promise.all([si.mem(), procMemTotal(), sysfsMemoryBytes()])
    return mapMemory(data, usable, physical)
  },
  async disk (signal) {
    return mapDisks(await siInChild<Systeminformation.DiskLayoutData[]>('diskLayout', signal))
  },
  async gpu (signal) {
    return mapGpus((await siInChild<Systeminformation.GraphicsData>('graphics', signal)).controllers)
  }
}

// Loaded on first use: most nodes are never asked for their host information.
async function loadSi (): Promise<typeof import('systeminformation')> {
  return (await import('systeminformation')).default
}

/**
 * systeminformation runs some commands synchronously (hostname -f in osInfo, dmidecode and nvidia-smi in
 * graphics, cat in diskLayout). A hung driver would then freeze our whole event loop, where no timeout can
 * fire, so those calls run in a short-lived child process that the deadline can kill.
 */
async function siInChild<T> (fn: 'osInfo' | 'diskLayout' | 'graphics', signal: AbortSignal): Promise<T> {
  const modulePath = createRequire(import.meta.url).resolve('systeminformation')
  const script = `require(${JSON.stringify(modulePath)}).${fn}().then(r => process.stdout.write(JSON.stringify(r)))`
  // NODE_OPTIONS is dropped so that e.g. an --inspect meant for the daemon does not apply to the child
  const env = { ...process.env, NODE_OPTIONS: '' }
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { signal, env, maxBuffer: 16 * MIB, windowsHide: true },
      (err, out, stderr) => {
        if (err != null) reject(new Error(`systeminformation.${fn} failed: ${stderr.trim() || err.message}`))
        else resolve(out)
      })
  })
  return JSON.parse(stdout) as T
}

async function readText (path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch {
    return undefined
  }
}

/** /etc/os-release as key/value pairs (quotes removed); empty when missing. */
async function readOsRelease (): Promise<Record<string, string>> {
  const text = await readText('/etc/os-release') ?? await readText('/usr/lib/os-release') ?? ''
  const result: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())
    if (match != null) result[match[1]] = match[2].replace(/^["']|["']$/g, '')
  }
  return result
}

/** The unabridged CPU name ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz") that ghw reported; si shortens it. */
async function procCpuModel (): Promise<string | undefined> {
  const text = await readText('/proc/cpuinfo')
  return text === undefined ? undefined : /^model name\s*:\s*(.+)$/m.exec(text)?.[1].trim()
}

async function procMemTotal (): Promise<number | undefined> {
  const text = await readText('/proc/meminfo')
  const kib = text === undefined ? undefined : /^MemTotal:\s*(\d+)\s*kB/m.exec(text)?.[1]
  return kib === undefined ? undefined : Number(kib) * 1024
}

/**
 * Installed memory as the sum of the online memory blocks in sysfs (what ghw reports as physical
 * memory). MemTotal is smaller because the kernel keeps some memory for itself.
 */
async function sysfsMemoryBytes (): Promise<number | undefined> {
  const base = '/sys/devices/system/memory'
  const blockSize = Number.parseInt((await readText(`${base}/block_size_bytes`))?.trim() ?? '', 16)
  if (!(blockSize > 0)) return undefined
  let entries: string[]
  try {
    entries = (await readdir(base)).filter(name => /^memory\d+$/.test(name))
  } catch {
    return undefined
  }
  const states = await Promise.all(entries.map(async name => await readText(`${base}/${name}/online`)))
  // a block without an `online` file cannot be taken offline, so it is online
  const online = states.filter(state => state === undefined || state.trim() === '1').length
  return online > 0 ? online * blockSize : undefined
}

// ---------------------------------------------------------------------------------------------------
// Mapping systeminformation's output onto the reference shape (pure, exported for tests)

/** A finite non-negative integer, 0 for anything else, so the result is always JSON/protobuf clean. */
function count (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.round(value) : 0
}

function str (value: unknown): string {
  return typeof value === 'string' ? value.trim() : ''
}

const GOOS: Record<string, string> = { win32: 'windows', sunos: 'solaris' }

/** node's process.arch → `uname -m`, used when os.machine() gives nothing */
const UNAME_ARCH: Record<string, string> = {
  x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7l', loong64: 'loongarch64', ppc64: 'ppc64le'
}

/** gopsutil's platform families, keyed by /etc/os-release IDs (and words of the distro name). */
const FAMILIES: Record<string, string[]> = {
  debian: ['debian', 'ubuntu', 'linuxmint', 'raspbian', 'pop', 'elementary', 'kali', 'deepin', 'zorin', 'neon'],
  fedora: ['fedora'],
  rhel: ['rhel', 'redhat', 'centos', 'rocky', 'almalinux', 'ol', 'oracle', 'scientific', 'amzn', 'amazon', 'cloudlinux'],
  suse: ['suse', 'opensuse', 'sles', 'sled'],
  arch: ['arch', 'archarm', 'manjaro', 'endeavouros'],
  gentoo: ['gentoo'],
  alpine: ['alpine'],
  slackware: ['slackware']
}

export function mapOs (data: Systeminformation.OsData, unameMachine: string, osRelease: Record<string, string>): HostOsInfo {
  const platform = str(data.platform).toLowerCase()
  const os = GOOS[platform] ?? platform
  const arch = str(unameMachine) || (UNAME_ARCH[str(data.arch)] ?? str(data.arch))
  return {
    os,
    platform: str(data.distro),
    platform_family: platformFamily(os, str(data.distro), osRelease, str(data.logofile)),
    platform_version: str(data.release),
    kernel_version: str(data.kernel),
    kernel_arch: os === 'darwin' && arch === 'aarch64' ? 'arm64' : arch
  }
}

function platformFamily (os: string, distro: string, osRelease: Record<string, string>, logofile: string): string {
  // gopsutil reports the Windows product type here; desktop macOS is reported the same way
  if (os === 'windows') return /server/i.test(distro) ? 'Server' : 'Standalone Workstation'
  if (os === 'darwin') return 'Standalone Workstation'
  if (os !== 'linux') return ''
  const candidates = [
    str(osRelease.ID).toLowerCase(),
    ...str(osRelease.ID_LIKE).toLowerCase().split(/\s+/),
    logofile.toLowerCase(),
    ...distro.toLowerCase().split(/[^a-z0-9]+/)
  ]
  for (const candidate of candidates) {
    if (candidate === '') continue
    const family = Object.keys(FAMILIES).find(key => FAMILIES[key].includes(candidate))
    if (family !== undefined) return family
  }
  return ''
}

/** One entry per physical processor, as ghw reports it; si gives totals over all sockets. */
export function mapCpu (data: Systeminformation.CpuData, fullModelName?: string): HostCpuInfo[] {
  const sockets = Math.max(1, count(data.processors))
  const entry: HostCpuInfo = {
    model_name: str(fullModelName) || [str(data.manufacturer), str(data.brand)].filter(Boolean).join(' '),
    total_cores: count(count(data.physicalCores) / sockets),
    total_threads: count(count(data.cores) / sockets)
  }
  return Array.from({ length: sockets }, () => ({ ...entry }))
}

export function mapMemory (data: Systeminformation.MemData, memTotal?: number, installed?: number): HostMemoryInfo {
  const usable = count(memTotal) || count(data.total)
  // installed memory can never be less than what the kernel manages
  return { total_physical_bytes: Math.max(count(installed) || count(data.total), usable), total_usable_bytes: usable }
}

export function mapDisks (disks: Systeminformation.DiskLayoutData[]): HostDiskInfo[] {
  return disks
    .filter(disk => !/(^|\/)loop\d*$/.test(str(disk.device)) && count(disk.size) > 0)
    .map(disk => ({
      drive_type: driveType(disk),
      size_bytes: count(disk.size),
      model: str(disk.name),
      serial_number: str(disk.serialNum)
    }))
}

function driveType (disk: Systeminformation.DiskLayoutData): string {
  // compressed-RAM, RAM, network and device-mapper disks are not hardware whatever their rotational flag says
  if (/(^|\/)(zram|ram|nbd|dm-)\d+$/.test(str(disk.device))) return 'virtual'
  const type = str(disk.type).toLowerCase()
  if (type === 'hd') return 'HDD'
  if (type === 'ssd' || type === 'nvme' || type === 'scm') return 'SSD'
  if (type === 'virtual') return 'virtual'
  if (/cd|dvd/.test(type)) return 'ODD'
  return 'Unknown'
}

export function mapGpus (controllers: Systeminformation.GraphicsControllerData[]): HostGpuInfo[] {
  return controllers
    .filter(controller => str(controller.model) !== '')
    .map(controller => {
      const gpu: HostGpuInfo = { vendor: str(controller.vendor), product: str(controller.model) }
      // optional fields are left out rather than set to undefined, to keep the JSON minimal and exact
      const vram = count(controller.vram) || count(controller.memoryTotal)
      if (vram > 0) gpu.memory_bytes = vram * MIB
      if (str(controller.driverVersion) !== '') gpu.driver_version = str(controller.driverVersion)
      if (isNumber(controller.utilizationGpu)) gpu.utilization_percent = count(controller.utilizationGpu)
      if (isNumber(controller.memoryUsed)) gpu.memory_used_bytes = count(controller.memoryUsed * MIB)
      return gpu
    })
}

function isNumber (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}
