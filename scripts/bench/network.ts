// Shared helpers for the benchmarks that run networks of real daemons (registry-spread.ts, scale.ts,
// soak.ts): one temp root for every daemon (TMPDIR is pointed there), cleanup on success, failure,
// SIGINT/SIGTERM and exit (daemons killed by PID), batch starting, waiting until every node hears every
// other, polling a node's routing, /proc readings (RSS, CPU, open fds), /metrics scraping and a bounded
// HTTP load generator. Everything listens on 127.0.0.1 only; every loop has a maximum count and a deadline.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { TestNode, type NodeSpec } from '../../test/integration/harness.ts'

// ---------------------------------------------------------------------------------------------------
// Small helpers

export interface Summary { n: number, min: number, mean: number, median: number, p90: number, p99: number, max: number }

export function summarize (samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (q: number): number => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
  const mean = sorted.length === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / sorted.length
  return { n: sorted.length, min: sorted.length === 0 ? NaN : sorted[0]!, mean, median: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]! }
}

/** Least-squares slope of y over x (NaN with fewer than 2 points). */
export function slope (xs: number[], ys: number[]): number {
  const n = Math.min(xs.length, ys.length)
  if (n < 2) return NaN
  const mx = xs.slice(0, n).reduce((a, b) => a + b, 0) / n
  const my = ys.slice(0, n).reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) { num += (xs[i]! - mx) * (ys[i]! - my); den += (xs[i]! - mx) ** 2 }
  return den === 0 ? NaN : num / den
}

export const log = (line: string): void => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`) }

export async function loadAverage (): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
}

export async function cpuCount (): Promise<number> {
  return (await readFile('/proc/cpuinfo', 'utf8')).split('\n').filter((l) => l.startsWith('processor')).length
}

// ---------------------------------------------------------------------------------------------------
// Cleanup: everything a run started, whatever happens

/** Every daemon the run started and has not destroyed yet. */
export const nodes = new Set<TestNode>()
const closers: Array<() => Promise<void>> = []
let root: string | undefined
let cleaning: Promise<void> | undefined

/** Something else to close at cleanup (in-process servers, agents). */
export function onCleanup (close: () => Promise<void>): void {
  closers.push(close)
}

/** Direct children of this process (daemons whose start failed are not known to the harness). */
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

export async function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...nodes].map(async (node) => { await node.destroy().catch(() => {}) }))
    nodes.clear()
    for (const pid of childPids()) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
    for (const close of closers.splice(0)) await close().catch(() => {})
    if (root !== undefined) await rm(root, { recursive: true, force: true }).catch(() => {})
  })()
  await cleaning
}

/**
 * Makes the temp root (every daemon's folder goes under it: the harness uses os.tmpdir(), and TMPDIR is
 * pointed here), installs the SIGINT/SIGTERM/exit handlers and the watchdog, runs `main`, and cleans up
 * whatever happens. Sets process.exitCode to 1 when `main` throws.
 */
export async function runBench (prefix: string, watchdogMs: number, main: () => Promise<void>): Promise<void> {
  root = await mkdtemp(join(tmpdir(), prefix))
  process.env.TMPDIR = root
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: cleaning up`)
    void cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  // A last resort if the process dies some other way: kill the children we know of, synchronously.
  process.once('exit', () => {
    for (const pid of childPids()) { try { process.kill(pid, 'SIGKILL') } catch {} }
    if (root !== undefined) { try { rmSync(root, { recursive: true, force: true }) } catch {} }
  })
  const watchdog = setTimeout(() => {
    log(`watchdog: the run took longer than ${(watchdogMs / 60_000).toFixed(0)} min; cleaning up`)
    void cleanup().finally(() => process.exit(2))
  }, watchdogMs)
  try {
    await main()
  } catch (err) {
    process.exitCode = 1
    log(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  } finally {
    clearTimeout(watchdog)
    await cleanup()
  }
}

// ---------------------------------------------------------------------------------------------------
// Daemons

export async function call (node: TestNode, path: string, body?: unknown, timeoutMs = 2_000): Promise<{ status: number, body: any }> {
  const response = await fetch(node.api + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs)
  })
  const text = await response.text()
  let parsed: unknown = text
  try { parsed = JSON.parse(text) } catch {}
  return { status: response.status, body: parsed }
}

/** Starts `count` daemons in parallel; all are tracked for cleanup; throws if any failed to start. */
export async function startBatch (count: number, spec: NodeSpec): Promise<TestNode[]> {
  const settled = await Promise.allSettled(Array.from({ length: count }, async () => await TestNode.start(spec)))
  const started: TestNode[] = []
  for (const s of settled) if (s.status === 'fulfilled') { nodes.add(s.value); started.push(s.value) }
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed !== undefined) throw new Error(`a daemon did not start: ${String(failed.reason).slice(0, 2000)}`)
  return started
}

/** Kills (SIGKILL) and removes the daemons, waiting for all of them. */
export async function destroyAll (net: TestNode[]): Promise<void> {
  await Promise.all(net.map(async (n) => { await n.destroy().catch(() => {}); nodes.delete(n) }))
}

export interface NetworkSpec {
  name: string
  size: number
  /** input nodes (the first is everybody's bootstrap, later ones bootstrap to the earlier ones) */
  inputs: number
  psk: string
  /** config edit for every node; `index` counts from 0 over inputs then workers */
  edit?: (config: any, index: number) => void
  /** Node options of daemon `index` (e.g. --cpu-prof) */
  nodeArgs?: (index: number) => string[] | undefined
  batch: number
  timeoutMs: number
}

/** Starts the input nodes one by one, then the workers in parallel batches bootstrapping to every input. */
export async function startNetwork (spec: NetworkSpec, net: TestNode[] = []): Promise<{ inputs: TestNode[], workers: TestNode[] }> {
  const deadline = performance.now() + spec.timeoutMs
  const inputs: TestNode[] = []
  const addrs: string[] = []
  const edit = (index: number) => (config: any): void => { spec.edit?.(config, index) }
  for (let i = 0; i < spec.inputs; i++) {
    const [input] = await startBatch(1, { mode: 'input', psk: spec.psk, bootstrap: [...addrs], edit: edit(i), nodeArgs: spec.nodeArgs?.(i) })
    inputs.push(input!)
    net.push(input!)
    addrs.push(await input!.addr())
  }
  log(`${spec.name}: ${inputs.length} input node(s) running`)
  const workers: TestNode[] = []
  for (let batch = 0; net.length < spec.size; batch++) {
    if (performance.now() > deadline || batch > spec.size) throw new Error(`${spec.name}: only ${net.length} daemons started within ${spec.timeoutMs / 1000} s`)
    const count = Math.min(spec.batch, spec.size - net.length)
    const first = net.length
    const started = await Promise.allSettled(Array.from({ length: count }, async (_, j) =>
      await TestNode.start({ mode: 'worker', psk: spec.psk, bootstrap: addrs, edit: edit(first + j), nodeArgs: spec.nodeArgs?.(first + j) })))
    for (const s of started) if (s.status === 'fulfilled') { nodes.add(s.value); net.push(s.value); workers.push(s.value) }
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failed !== undefined) throw new Error(`a daemon did not start: ${String(failed.reason).slice(0, 2000)}`)
    log(`${spec.name}: ${net.length} daemons running`)
  }
  return { inputs, workers }
}

/** Waits until every node's `/api/v0/peers` lists all `net.length` nodes (polled every 250 ms). */
export async function waitAllHearAll (net: TestNode[], name: string, timeoutMs: number): Promise<{ converged: boolean, seconds: number, heard: number[] }> {
  const started = performance.now()
  const deadline = started + timeoutMs
  let heard: number[] = []
  let lastReport = started
  for (let i = 0; i <= timeoutMs / 250; i++) {
    heard = await Promise.all(net.map(async (n) => {
      try { return ((await call(n, '/api/v0/peers', undefined, 5_000)).body.data as string[]).length } catch { return -1 }
    }))
    if (heard.every((h) => h === net.length)) return { converged: true, seconds: (performance.now() - started) / 1000, heard }
    if (performance.now() > deadline) break
    if (performance.now() - lastReport > 10_000) { log(`${name}: nodes hear ${Math.min(...heard)}–${Math.max(...heard)} of ${net.length}`); lastReport = performance.now() }
    await sleep(250)
  }
  return { converged: false, seconds: (performance.now() - started) / 1000, heard }
}

export interface PollCounters { errors: number, polls: number, samples: Set<string> }

/** Polls `node` every `pollMs` until it lists (want=true) or no longer lists (want=false) `serving` for
 * the project's model in `/api/v0/ai/projects/peers`; returns ms since `from`, or undefined at the
 * deadline. Bounded in count and time. */
export async function pollListed (node: TestNode, project: string, model: string, serving: string, want: boolean, from: number, deadline: number, counters: PollCounters, pollMs = 10, requestTimeoutMs = 2_000): Promise<number | undefined> {
  const maxPolls = Math.ceil((deadline - performance.now()) / pollMs) + 10
  for (let i = 0; i < maxPolls && performance.now() < deadline; i++) {
    counters.polls++
    try {
      const result = await call(node, '/api/v0/ai/projects/peers', { project, model }, Math.max(1, Math.ceil(Math.min(requestTimeoutMs, deadline - performance.now()))))
      if (result.status !== 200) {
        counters.errors++
        if (counters.samples.size < 5) counters.samples.add(`HTTP ${result.status}: ${JSON.stringify(result.body).slice(0, 200)}`)
      } else if (result.body.data.some((p: { node_id: string }) => p.node_id === serving) === want) return performance.now() - from
    } catch (err) {
      // The last request before the deadline is cut short on purpose: not an error.
      if (performance.now() < deadline) {
        counters.errors++
        const e = err as Error & { cause?: { code?: string, message?: string } }
        if (counters.samples.size < 5) counters.samples.add(`${e.name}: ${e.message}${e.cause !== undefined ? ` (${e.cause.code ?? ''} ${e.cause.message ?? ''})` : ''}`)
      }
    }
    await sleep(pollMs)
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------
// /proc and /metrics

/** VmRSS in MB (NaN when the process is gone). */
export async function rssMb (pid: number | undefined): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid ?? 0}/status`, 'utf8')
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
    return kb === null ? NaN : Number(kb[1]) / 1024
  } catch { return NaN }
}

/** Open file descriptors (entries of /proc/<pid>/fd; NaN when unreadable). */
export async function fdCount (pid: number | undefined): Promise<number> {
  try { return (await readdir(`/proc/${pid ?? 0}/fd`)).length } catch { return NaN }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/** User + system CPU time of a process in ms (NaN when gone). */
export function cpuMs (pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid ?? 0}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1000 / CLK_TCK
  } catch { return NaN }
}

/** A node's `/metrics` as series (name plus labels, as written) → value. */
export async function scrapeMetrics (node: TestNode, timeoutMs = 5_000): Promise<Map<string, number>> {
  const response = await fetch(node.api + '/metrics', { signal: AbortSignal.timeout(timeoutMs) })
  const text = await response.text()
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}: ${text.slice(0, 200)}`)
  const series = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    if (space > 0) series.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return series
}

/** Sum of the series whose name (before any labels) is `name` and whose labels match `labels`. */
export function sumSeries (series: Map<string, number>, name: string, labels: (l: string) => boolean = () => true): number {
  let sum = 0
  for (const [key, value] of series) {
    const brace = key.indexOf('{')
    const metric = brace < 0 ? key : key.slice(0, brace)
    if (metric === name && labels(brace < 0 ? '' : key.slice(brace))) sum += value
  }
  return sum
}

// ---------------------------------------------------------------------------------------------------
// Load

export interface LoadResult { ok: number, errors: number, firstErrors: string[], seconds: number, rps: number, latency: Summary, servedBy: Map<string, number> }

/** `concurrency` lanes each sending `send()` until `maxRequests` were issued or `maxMs` passed. `send`
 * resolves with an error text (or undefined on success) and the node that served, if known. */
export async function closedLoop (send: () => Promise<{ error?: string, node?: string }>, concurrency: number, maxRequests: number, maxMs: number): Promise<LoadResult> {
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
      issued++
      const t0 = performance.now()
      try {
        const r = await send()
        if (r.error !== undefined) {
          errors++
          if (firstErrors.length < 5) firstErrors.push(r.error)
          continue
        }
        ok++
        latencies.push(performance.now() - t0)
        if (r.node !== undefined) servedBy.set(r.node, (servedBy.get(r.node) ?? 0) + 1)
      } catch (err) {
        errors++
        if (firstErrors.length < 5) firstErrors.push((err as Error).message)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  const seconds = (performance.now() - started) / 1000
  return { ok, errors, firstErrors, seconds, rps: ok / seconds, latency: summarize(latencies), servedBy }
}
