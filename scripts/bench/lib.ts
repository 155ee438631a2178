// Helpers shared by the benchmarks that drive real daemons and fake model servers (jobs.ts, gateway.ts):
// the standard workload (a fake model answering 20 tokens, 5 ms apart when streamed), percentiles and
// number formats, /proc readings, starting model servers and daemons (tracked in `nodes` and `models` so
// the caller's cleanup can kill them by PID), a keep-alive HTTP client, and the sequential (interleaved)
// and concurrent load loops, each bounded in count and time.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { request, type Agent } from 'undici'
import { TestNode, type NodeSpec } from '../../test/integration/harness.ts'
import type { Passage } from './residence.ts'

// ---------------------------------------------------------------------------------------------------
// Settings and the workload

export function intArg (value: string | undefined, fallback: number, name: string, max: number): number {
  const n = value === undefined ? fallback : Number(value)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name}: an integer from 1 to ${max}`)
  return n
}

export const MODEL = 'Llama3-70B'
export const TOKEN_COUNT = 20
export const TOKEN_DELAY_MS = 5
export const REPLY = Array.from({ length: TOKEN_COUNT }, (_, i) => `tok${i}`).join(' ')
export const MESSAGES = [{ role: 'user', content: 'Hello' }]

export const PHASE_MS = 5 * 60_000
export const REQUEST_TIMEOUT_MS = 30_000

// ---------------------------------------------------------------------------------------------------
// Small helpers

export interface Summary { n: number, min: number, mean: number, p50: number, p90: number, p99: number, max: number }

export function summarize (samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b)
  const n = sorted.length
  const at = (q: number): number => n === 0 ? NaN : sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!
  const mean = n === 0 ? NaN : sorted.reduce((s, x) => s + x, 0) / n
  return { n, min: n === 0 ? NaN : sorted[0]!, mean, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: n === 0 ? NaN : sorted[n - 1]! }
}

export const f2 = (x: number): string => Number.isNaN(x) ? '–' : x.toFixed(2)
export const f1 = (x: number): string => Number.isNaN(x) ? '–' : x.toFixed(1)
export const f0 = (x: number): string => Number.isNaN(x) ? '–' : x.toFixed(0)
export const signed = (x: number): string => Number.isNaN(x) ? '–' : `${x >= 0 ? '+' : ''}${x.toFixed(2)}`
export const int = (x: number): string => x.toLocaleString('en')
export const log = (line: string): void => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`) }

export function rssMb (pid: number | undefined): number {
  if (pid === undefined) return NaN
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kb === undefined ? NaN : Number(kb) / 1024
  } catch {
    return NaN
  }
}

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/** utime + stime of a process, in ms (clock-tick resolution). */
export function cpuMs (pid: number | undefined): number {
  if (pid === undefined) return NaN
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1000 / CLK_TCK
  } catch {
    return NaN
  }
}

/** write-like and read-like syscalls of a process so far (/proc/<pid>/io). */
export function syscalls (pid: number | undefined): { w: number, r: number } {
  if (pid === undefined) return { w: NaN, r: NaN }
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8')
    return { w: Number(/syscw:\s+(\d+)/.exec(io)?.[1]), r: Number(/syscr:\s+(\d+)/.exec(io)?.[1]) }
  } catch {
    return { w: NaN, r: NaN }
  }
}

/** Direct children of this process (a daemon whose start failed is not known to the harness). */
export function childPids (): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === process.pid) pids.push(Number(name))
    } catch {}
  }
  return pids
}

// ---------------------------------------------------------------------------------------------------
// What this run started (the caller kills them by PID in its cleanup)

export const nodes = new Set<TestNode>()
export const models = new Set<ChildProcess>()

/** Destroys the daemons and kills the model servers this run started (by PID), then any child left. */
export async function stopStarted (): Promise<void> {
  await Promise.all([...nodes].map(async (node) => { await node.destroy().catch(() => {}) }))
  nodes.clear()
  for (const child of models) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try { process.kill(child.pid, 'SIGKILL') } catch {}
    }
  }
  models.clear()
  for (const pid of childPids()) {
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
}

// ---------------------------------------------------------------------------------------------------
// The fake model servers, each in a process of its own (not sharing this client's event loop)

export interface ModelProcess { url: string, child: ChildProcess }

export async function startModelProcess (): Promise<ModelProcess> {
  const args = ['--port', '0', '--host', '127.0.0.1', '--model', MODEL, '--reply', REPLY, '--token-delay', String(TOKEN_DELAY_MS)]
  return await startScript('fake-model', args, /^(http:\/\/127\.0\.0\.1:\d+)$/m, 'fake model server')
}

/** The bench floor (bare-relay.ts): an exit relay in front of the chat endpoint of the model server at
 * `modelUrl` and an entry relay in front of it, each a process of its own; `url` is the entry relay's. */
export async function startBareRelay (modelUrl: string, nodeArgs: string[] = []): Promise<{ url: string, entry: ChildProcess, exit: ChildProcess }> {
  const exit = await startScript('bench/bare-relay', ['--role', 'exit', '--model', `${modelUrl}/v1/chat/completions`], /^(127\.0\.0\.1:\d+)$/m, 'bare exit relay', nodeArgs)
  const entry = await startScript('bench/bare-relay', ['--role', 'entry', '--exit', exit.url], /^(http:\/\/127\.0\.0\.1:\d+)$/m, 'bare entry relay', nodeArgs)
  return { url: entry.url, entry: entry.child, exit: exit.child }
}

/** The Node options that load the residence preload (residence.ts) into a process. */
export function residencePreload (): string[] {
  return ['--import', pathToFileURL(scriptPath('bench/residence')).href]
}

/** scripts/<name>.js when this runs compiled, scripts/<name>.ts under tsx. */
function scriptPath (name: string): string {
  const here = fileURLToPath(import.meta.url)
  return join(here, '..', '..', `${name}${here.endsWith('.ts') ? '.ts' : '.js'}`)
}

/** Runs scripts/<name> in a process of its own (killed by stopStarted) and waits for the address it prints. */
async function startScript (name: string, args: string[], address: RegExp, what: string, nodeArgs: string[] = []): Promise<ModelProcess> {
  const compiled = !fileURLToPath(import.meta.url).endsWith('.ts')
  const child = spawn(process.execPath, [...(compiled ? [] : ['--import', 'tsx']), ...nodeArgs, scriptPath(name), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' }
  })
  models.add(child)
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    const url = address.exec(output)?.[1]
    if (url !== undefined) {
      // The pipes are not read any more (nothing is printed after the address); keep them from holding us.
      child.stdout?.removeAllListeners('data')
      child.stdout?.resume()
      return { url, child }
    }
    if (child.exitCode !== null) break
    await sleep(50)
  }
  throw new Error(`${what} did not start:\n${output}`)
}

/** TestNode.start with extra Node options for the daemon only (TestNode.launch passes process.env on;
 * the edit hook runs between `aicn init` and the launch, so init runs without them). */
export async function startDaemon (spec: NodeSpec, nodeOptions: string): Promise<TestNode> {
  const saved = process.env.NODE_OPTIONS
  try {
    const node = await TestNode.start({
      ...spec,
      edit: (config) => {
        spec.edit?.(config)
        process.env.NODE_OPTIONS = `${saved ?? ''} ${nodeOptions}`.trim()
      }
    })
    nodes.add(node)
    return node
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS
    else process.env.NODE_OPTIONS = saved
  }
}

// ---------------------------------------------------------------------------------------------------
// HTTP client

export interface Target { name: string, url: string, body: string, headers?: Record<string, string>, check: (status: number, text: string, headers: Record<string, unknown>) => string | undefined }

export const JSON_HEADERS = { 'content-type': 'application/json' }

let agent: Agent | undefined

/** The keep-alive Agent `post` uses (undici's global dispatcher until one is given); returns it. */
export function useAgent (a: Agent): Agent {
  agent = a
  return a
}

export async function post (target: Target): Promise<{ ms: number, error?: string, node?: string }> {
  const t0 = performance.now()
  const res = await request(target.url, { method: 'POST', headers: target.headers === undefined ? JSON_HEADERS : { ...JSON_HEADERS, ...target.headers }, body: target.body, dispatcher: agent })
  const text = await res.body.text()
  const ms = performance.now() - t0
  const node = res.headers['x-aicn-node']
  return { ms, error: target.check(res.statusCode, text, res.headers), node: typeof node === 'string' ? node : undefined }
}

export function directTarget (modelUrl: string, name: string, stream = false): Target {
  return {
    name,
    url: `${modelUrl}/v1/chat/completions`,
    body: JSON.stringify({ model: MODEL, messages: MESSAGES, ...(stream ? { stream: true } : {}) }),
    check: (status, text) => {
      if (status !== 200) return `HTTP ${status}: ${text.slice(0, 200)}`
      try {
        return JSON.parse(text).choices[0].message.content === REPLY ? undefined : `unexpected answer ${text.slice(0, 200)}`
      } catch { return `not JSON: ${text.slice(0, 200)}` }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Sequential latency (the paths interleaved request by request) and CPU per request (one path alone)

export interface LatencyResult { name: string, summary: Summary, errors: number, firstErrors: string[] }

/** `warmup` + `count` sequential requests per path, the paths taking turns request by request (rotating
 * which goes first), so that every path sees the same moments of a noisy machine. */
export async function interleavedLatency (targets: Target[], warmup: number, count: number): Promise<LatencyResult[]> {
  const samples = targets.map(() => [] as number[])
  const errors = targets.map(() => 0)
  const firstErrors: string[][] = targets.map(() => [])
  const deadline = performance.now() + PHASE_MS
  for (let i = 0; i < warmup + count && performance.now() < deadline; i++) {
    for (let k = 0; k < targets.length; k++) {
      const j = (i + k) % targets.length
      const error = await timed(targets[j]!, i >= warmup ? samples[j]! : undefined)
      if (error === undefined) continue
      errors[j]!++
      if (firstErrors[j]!.length < 3) firstErrors[j]!.push(error)
    }
  }
  return targets.map((t, j) => ({ name: t.name, summary: summarize(samples[j]!), errors: errors[j]!, firstErrors: firstErrors[j]! }))
}

/** One request; its time goes into `samples` (if given) when it succeeded; returns the error if not. */
async function timed (target: Target, samples: number[] | undefined): Promise<string | undefined> {
  try {
    const r = await post(target)
    if (r.error !== undefined) return r.error
    samples?.push(r.ms)
  } catch (err) {
    return (err as Error).message
  }
}

export interface CpuRow {
  name: string
  latency: Summary
  perRequestUs: Record<string, number>
  writes: Record<string, number>
  reads: Record<string, number>
  /** with `residence`: each process's own time per request (p50 µs), on the way to the model and back */
  ownUs?: Record<string, { toward: number, back: number }>
}

/** Where the residence preload (residence.ts) reports, which of cpuPerRequest's processes run it (only
 * those may get SIGUSR2, which ends any other Node process), and the ports that tell its passages'
 * direction: bytes from a client to an API (or relay) port go towards the model, as do writes to a
 * model's port. */
export interface ResidenceSetup { dir: string, processes: string[], apiPorts: number[], modelPorts: number[] }

/** One path alone, sequentially: latency, and CPU µs and syscalls per request of every process; with
 * `residence`, also the own time per request of the processes that run the preload. */
export async function cpuPerRequest (target: Target, count: number, pids: Record<string, number | undefined>, residence?: ResidenceSetup): Promise<CpuRow> {
  for (let i = 0; i < 50; i++) await post(target)
  const entries = Object.entries(pids)
  const preloaded = Object.fromEntries(entries.filter(([name]) => residence?.processes.includes(name) === true))
  if (residence !== undefined) await collectPassages(residence.dir, preloaded)
  const before = Object.fromEntries(entries.map(([k, pid]) => [k, { cpu: cpuMs(pid), io: syscalls(pid) }]))
  const samples: number[] = []
  const deadline = performance.now() + PHASE_MS
  for (let i = 0; i < count && performance.now() < deadline; i++) {
    const r = await post(target)
    if (r.error === undefined) samples.push(r.ms)
  }
  const n = Math.max(1, samples.length)
  const after = Object.fromEntries(entries.map(([k, pid]) => [k, { cpu: cpuMs(pid), io: syscalls(pid) }]))
  return {
    name: target.name,
    latency: summarize(samples),
    perRequestUs: Object.fromEntries(entries.map(([k]) => [k, (after[k]!.cpu - before[k]!.cpu) * 1000 / n])),
    writes: Object.fromEntries(entries.map(([k]) => [k, (after[k]!.io.w - before[k]!.io.w) / n])),
    reads: Object.fromEntries(entries.map(([k]) => [k, (after[k]!.io.r - before[k]!.io.r) / n])),
    ownUs: residence === undefined ? undefined : ownTimes(await collectPassages(residence.dir, preloaded), residence)
  }
}

/** Asks each process (all run the preload) for its passages since the last call, with SIGUSR2, and waits
 * for their reports; a process that is gone reports nothing. */
async function collectPassages (dir: string, pids: Record<string, number | undefined>): Promise<Record<string, Passage[]>> {
  const out: Record<string, Passage[]> = {}
  for (const [name, pid] of Object.entries(pids)) {
    if (pid === undefined) continue
    const file = join(dir, `${pid}.json`)
    rmSync(file, { force: true })
    try { process.kill(pid, 'SIGUSR2') } catch { continue }
    for (let i = 0; i < 50 && !existsSync(file); i++) await sleep(20)
    // The file is written in one writeFileSync call; a report still being written is retried once.
    try { out[name] = JSON.parse(readFileSync(file, 'utf8')) } catch { await sleep(100); try { out[name] = JSON.parse(readFileSync(file, 'utf8')) } catch {} }
  }
  return out
}

function ownTimes (passages: Record<string, Passage[]>, setup: ResidenceSetup): Record<string, { toward: number, back: number }> {
  const api = new Set(setup.apiPorts)
  const model = new Set(setup.modelPorts)
  const out: Record<string, { toward: number, back: number }> = {}
  for (const [name, list] of Object.entries(passages)) {
    const toward = list.filter(([, inLocal, , , outRemote]) => api.has(inLocal) || model.has(outRemote)).map(([us]) => us)
    const back = list.filter(([, , inRemote, outLocal]) => api.has(outLocal) || model.has(inRemote)).map(([us]) => us)
    if (toward.length > 0 || back.length > 0) out[name] = { toward: summarize(toward).p50, back: summarize(back).p50 }
  }
  return out
}

// ---------------------------------------------------------------------------------------------------
// Load at a fixed concurrency

export interface LoadResult { name: string, concurrency: number, ok: number, errors: number, firstErrors: string[], seconds: number, rps: number, latency: Summary, servedBy: Map<string, number> }

export async function load (name: string, targets: Target[], concurrency: number, maxRequests: number, maxMs: number): Promise<LoadResult> {
  let issued = 0
  let ok = 0
  let errors = 0
  const firstErrors: string[] = []
  const latencies: number[] = []
  const servedBy = new Map<string, number>()
  const started = performance.now()
  const deadline = started + maxMs
  const lane = async (): Promise<void> => {
    while (issued < maxRequests && performance.now() < deadline) {
      const target = targets[issued++ % targets.length]!
      try {
        const r = await post(target)
        if (r.error !== undefined) {
          errors++
          if (firstErrors.length < 5) firstErrors.push(r.error)
          continue
        }
        ok++
        latencies.push(r.ms)
        if (r.node !== undefined) servedBy.set(r.node, (servedBy.get(r.node) ?? 0) + 1)
      } catch (err) {
        errors++
        if (firstErrors.length < 5) firstErrors.push((err as Error).message)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  const seconds = (performance.now() - started) / 1000
  return { name, concurrency, ok, errors, firstErrors, seconds, rps: ok / seconds, latency: summarize(latencies), servedBy }
}
