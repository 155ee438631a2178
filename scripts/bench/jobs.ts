// Benchmark of job routing on real daemons, side by side with a direct HTTP call to the same fake model.
//
//   npm run build && node dist/scripts/bench/jobs.js [--quick] [--requests 2000] [--warmup 200]
//        [--streams 200] [--tput-requests 2000] [--tput-seconds 60] [--mem-jobs 10000]
//   npm run build && node dist/scripts/bench/jobs.js --perf [--requests 2000] [--warmup 3000] [--top 40]   (Linux `perf`)
//   npm run build && node dist/scripts/bench/jobs.js --latency [--requests 2000] [--warmup 3000] [--repeat 3]   (phase 1 only)
//   node dist/scripts/bench/jobs.js --help
//
// Run from dist/ (test/integration/harness.ts finds bin/aicn.js relative to its compiled location).
// Everything listens on 127.0.0.1 only. The network: an input node B, workers W1 and W2, each worker with
// its own fake model server (M1, M2: scripts/fake-model.ts in a process of its own, 20 tokens,
// 5 ms between streamed tokens), one pre-shared key. The client is this process, with a keep-alive undici
// Agent so that connection setup is never measured. What it measures:
//   1. Non-stream chat latency, sequential, the four paths interleaved request by request:
//      (a) direct to M1, (b) W1's own API (`node_id` = W1, local path), (c) B's API with `node_id` = W1
//      (client → B → W1 → M1), (d) the floor: the same two process hops through a bare Node relay pair
//      (bare-relay.ts: HTTP → one TCP frame → HTTP, no libp2p, no aicn), i.e. what the machine and Node
//      alone charge for two more processes. Added latency against (a) at p50 / p99, and c − d: what
//      libp2p and aicn cost over that floor. Then each path alone for a while,
//      with the CPU time (/proc/<pid>/stat) and write/read syscalls (/proc/<pid>/io) of every process
//      per request.
//   2. Streamed chat, the same three paths: time to the response head, to the first content token, the
//      gaps between tokens as the client reads them (equal to the model's when nothing is buffered).
//   3. Where the libp2p hop's time goes: a bare libp2p client in this process (same PSK, noise, yamux)
//      connected to W1 measures a 32-byte echo on a stream kept open (what a reused stream costs), the
//      same echo on a new stream each time (what libp2p ping does), opening a job stream alone, and a
//      whole job through the real requester code (src/protocols/job/job-protocol.ts JobProtocol.run), on a kept
//      stream (/aicn/job/1.1.0) and on a new stream for every job (the same code offered only 1.0.0);
//      with the write syscalls (= libp2p frames) each side makes per operation.
//   4. Throughput: `/api/v0/chat/completion/proxy` on B (two workers) at concurrency 1, 16, 64, each at
//      most --tput-requests requests and --tput-seconds; direct to M1/M2 at the same concurrency for
//      reference. Errors are counted (and the first few printed).
//   5. Memory: VmRSS of B, W1, W2 before, sampled during and after 10,000 proxied jobs (concurrency 16),
//      twice; "after" is read after a 5 s settle and again after a forced full GC (the daemons' inspector
//      is switched on with SIGUSR1 on a random 127.0.0.1 port only for this).
//   6. Phase 1's latencies once more at the end, with the JIT warm; then each API path interleaved with the
//      direct call alone, --repeat times (default 3): with all three paths interleaved, W1 switches between
//      its HTTP API and the job protocol on every request, and the two-node path pays for that too.
// With --latency, only phase 1, the pairwise runs of phase 6 and the CPU table, for quick comparisons.
// With --perf, only this instead: `perf record` (CPU-time sampling, 1999 Hz, call graphs; the daemons
// run with --perf-basic-prof --interpreted-frames-native-stack so JS frames have names) on B and W1
// over sequential two-node requests, every sample charged to the innermost frame that belongs to a
// known component (noise, pnet, yamux, peer store, …); node internals are charged to their caller. With
// --top N also each daemon's N hottest JS functions, by their own samples and by everything below them.
// (V8's own --cpu-prof samples wall-clock time: on 2 cores a daemon preempted right after a socket
// write, by the process it woke, shows that wait as time spent in writeBuffer. perf does not.) V8 writes
// the symbol maps to /tmp/perf-<pid>.map, whatever TMPDIR says; they are removed at the end.
// Prints a human-readable summary with Markdown tables for docs/benchmarks.md.
//
// Bounded: every loop has a maximum count and a deadline, the whole run a watchdog. Every daemon lives
// under one temp folder (TMPDIR is pointed there) removed at the end, on failure and on SIGINT/SIGTERM;
// daemons and model servers are killed by PID.
import '../../src/core/polyfill.ts'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { Agent, request, WebSocket } from 'undici'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { ping, type Ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId, Stream, StreamMessageEvent } from '@libp2p/interface'
import type { TestNode, NodeSpec } from '../../test/integration/harness.ts'
import { JobProtocol, JOB_PROTOCOL, JOB_PROTOCOL_1_0 } from '../../src/protocols/job/index.ts'
import { WholeBody } from '../../src/core/iterables.ts'
import { componentsOf } from '../../src/p2p/components.ts'
import { installYamuxWindowHysteresis } from '../../src/p2p/patches/yamux-window.ts'
import { swarmKeyFromHex } from '../../src/p2p/psk.ts'
import { silentLogger } from '../../src/core/logger.ts'
import { JobKind } from '../../src/core/job-types.ts'
import {
  childPids, cpuPerRequest, directTarget, f0, f1, f2, int, interleavedLatency, intArg, JSON_HEADERS, load, log, MESSAGES, MODEL, PHASE_MS,
  post, REPLY, REQUEST_TIMEOUT_MS, residencePreload, rssMb, signed, startBareRelay, startDaemon, startModelProcess, stopStarted, summarize, syscalls, TOKEN_COUNT, TOKEN_DELAY_MS, useAgent,
  type CpuRow, type LatencyResult, type LoadResult, type ResidenceSetup, type Summary, type Target
} from './lib.ts'

// ---------------------------------------------------------------------------------------------------
// Settings

const { values: args } = parseArgs({
  options: {
    help: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    requests: { type: 'string' },
    warmup: { type: 'string' },
    streams: { type: 'string' },
    'tput-requests': { type: 'string' },
    'tput-seconds': { type: 'string' },
    'mem-jobs': { type: 'string' },
    perf: { type: 'boolean', default: false },
    latency: { type: 'boolean', default: false },
    top: { type: 'string' },
    repeat: { type: 'string' }
  }
})
if (args.help) {
  process.stdout.write(`Job routing on real daemons beside a direct HTTP call to the same fake model (what each phase measures: the top of scripts/bench/jobs.ts).

  node dist/scripts/bench/jobs.js [--quick] [--requests 2000] [--warmup 200] [--streams 200]
       [--tput-requests 2000] [--tput-seconds 60] [--mem-jobs 10000]     all phases
  node dist/scripts/bench/jobs.js --latency [--requests 2000] [--warmup 3000] [--repeat 3]
                                                                       phase 1 and the pairwise runs only
  node dist/scripts/bench/jobs.js --perf [--requests 2000] [--warmup 3000] [--top 40]
                                                                       where the CPU goes (Linux perf)
  --quick   smaller counts (200 requests, 10 s of throughput, 1,000 jobs for memory)
`)
  process.exit(0)
}
const QUICK = args.quick
const REQUESTS = intArg(args.requests, QUICK ? 200 : 2_000, 'requests', 100_000)
const WARMUP = intArg(args.warmup, QUICK ? 50 : 200, 'warmup', 10_000)
const STREAMS = intArg(args.streams, QUICK ? 30 : 200, 'streams', 10_000)
const STREAM_WARMUP = Math.min(20, STREAMS)
const TPUT_REQUESTS = intArg(args['tput-requests'], QUICK ? 300 : 2_000, 'tput-requests', 100_000)
const TPUT_MS = intArg(args['tput-seconds'], QUICK ? 10 : 60, 'tput-seconds', 600) * 1000
const MEM_JOBS = intArg(args['mem-jobs'], QUICK ? 1_000 : 10_000, 'mem-jobs', 1_000_000)
const CPU_REQUESTS = Math.min(REQUESTS, 1_000)
/** how often each path is measured beside the direct call alone */
const PAIR_RUNS = intArg(args.repeat, 3, 'repeat', 100)
/** --perf --top N: also list each daemon's N hottest JS functions */
const TOP = args.top === undefined ? 0 : intArg(args.top, 0, 'top', 1_000)
const CONCURRENCY = [1, 16, 64]
const MEM_CONCURRENCY = 16
const MEM_ROUNDS = 2

const PSK = 'bd'.repeat(32)
const FLOOR = '(d) bare Node relay pair, no libp2p, no aicn (floor)'
const PROJECT = 'BenchJobs'
const SETTLE_MS = 5_000
const RSS_SAMPLE_MS = 250
const WATCHDOG_MS = 40 * 60_000

// ---------------------------------------------------------------------------------------------------
// Cleanup: everything this run started, whatever happens

let client: Libp2p<{ ping: Ping }> | undefined
let agent: Agent | undefined
let root: string | undefined
let cleaning: Promise<void> | undefined
/** daemons started with --perf-basic-prof: V8 writes /tmp/perf-<pid>.map for each (a fixed path) */
const perfMapPids = new Set<number>()
const perfRecorders = new Set<ChildProcess>()

async function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    await Promise.resolve(client?.stop()).catch(() => {})
    await stopStarted()
    for (const child of perfRecorders) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try { process.kill(child.pid, 'SIGKILL') } catch {}
      }
    }
    perfRecorders.clear()
    await agent?.close().catch(() => {})
    for (const pid of perfMapPids) await rm(`/tmp/perf-${pid}.map`, { force: true }).catch(() => {})
    if (root !== undefined) await rm(root, { recursive: true, force: true }).catch(() => {})
  })()
  await cleaning
}

function onSignal (signal: NodeJS.Signals): void {
  log(`${signal}: cleaning up`)
  void cleanup().finally(() => process.exit(130))
}
process.once('SIGINT', onSignal)
process.once('SIGTERM', onSignal)
// A last resort if the process dies some other way: kill the children we know of, synchronously.
process.once('exit', () => {
  for (const pid of childPids()) { try { process.kill(pid, 'SIGKILL') } catch {} }
  for (const pid of perfMapPids) { try { rmSync(`/tmp/perf-${pid}.map`, { force: true }) } catch {} }
  if (root !== undefined) { try { rmSync(root, { recursive: true, force: true }) } catch {} }
})

// ---------------------------------------------------------------------------------------------------
// HTTP client

function apiTarget (api: string, name: string, nodeId: string | undefined, stream = false): Target {
  const proxy = nodeId === undefined
  return {
    name,
    url: `${api}/api/v0/chat/completion${proxy ? '/proxy' : ''}`,
    body: JSON.stringify({ ...(proxy ? {} : { node_id: nodeId }), project: PROJECT, model: MODEL, messages: MESSAGES, ...(stream ? { stream: true } : {}) }),
    check: (status, text, headers) => {
      if (status !== 200) return `HTTP ${status}: ${text.slice(0, 200)}`
      try {
        const body = JSON.parse(text)
        if (body.code !== 0 || body.data?.choices?.[0]?.message?.content !== REPLY) return `unexpected answer ${text.slice(0, 200)}`
        if (!proxy && headers['x-aicn-node'] !== nodeId) return `served by ${String(headers['x-aicn-node'])}, not ${nodeId}`
        return undefined
      } catch { return `not JSON: ${text.slice(0, 200)}` }
    }
  }
}

/** The floor path (d): the same body as the direct call, through the bare relay pair (bare-relay.ts). */
function floorTarget (url: string): Target {
  return {
    name: FLOOR,
    url,
    body: directTarget(url, FLOOR).body,
    check: (status, text) => {
      if (status !== 200) return `HTTP ${status}: ${text.slice(0, 200)}`
      try {
        return JSON.parse(text).data?.choices?.[0]?.message?.content === REPLY ? undefined : `unexpected answer ${text.slice(0, 200)}`
      } catch { return `not JSON: ${text.slice(0, 200)}` }
    }
  }
}

interface StreamSample { headersMs: number, firstEventMs: number, ttftMs: number, totalMs: number, gaps: number[], reads: number }

async function streamOnce (target: Target): Promise<StreamSample> {
  const t0 = performance.now()
  const res = await request(target.url, { method: 'POST', headers: JSON_HEADERS, body: target.body, dispatcher: agent })
  const headersMs = performance.now() - t0
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}`)
  let buffer = ''
  let text = ''
  let firstEvent = NaN
  let reads = 0
  let done = false
  const tokenTimes: number[] = []
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    const t = performance.now()
    reads++
    buffer += chunk.toString('utf8')
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const event = buffer.slice(0, end).trim()
      buffer = buffer.slice(end + 2)
      if (event === '') continue
      if (Number.isNaN(firstEvent)) firstEvent = t
      if (event === 'data: [DONE]') { done = true; continue }
      if (!event.startsWith('data: {')) continue
      const data = JSON.parse(event.slice(6))
      if (data.error !== undefined) throw new Error(`error event: ${event.slice(0, 200)}`)
      const content = data.choices?.[0]?.delta?.content
      if (typeof content === 'string' && content !== '') {
        tokenTimes.push(t)
        text += content
      }
    }
  }
  const totalMs = performance.now() - t0
  if (!done || text !== REPLY || tokenTimes.length !== TOKEN_COUNT) throw new Error(`incomplete stream: ${tokenTimes.length} tokens, done=${done}`)
  return {
    headersMs,
    firstEventMs: firstEvent - t0,
    ttftMs: tokenTimes[0]! - t0,
    totalMs,
    gaps: tokenTimes.slice(1).map((t, i) => t - tokenTimes[i]!),
    reads
  }
}

// ---------------------------------------------------------------------------------------------------
// The daemons' inspector (switched on with SIGUSR1; NODE_OPTIONS=--inspect-port=127.0.0.1:0 picks the port)

class Inspector {
  private readonly ws: WebSocket
  private nextId = 1
  private readonly waiting = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()

  private constructor (ws: WebSocket) {
    this.ws = ws
    ws.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data))
      const waiter = message.id === undefined ? undefined : this.waiting.get(message.id)
      if (waiter === undefined) return
      this.waiting.delete(message.id)
      if (message.error !== undefined) waiter.reject(new Error(JSON.stringify(message.error)))
      else waiter.resolve(message.result)
    })
    ws.addEventListener('close', () => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error('inspector closed'))
      this.waiting.clear()
    })
  }

  static async open (node: TestNode): Promise<Inspector> {
    const find = (): string | undefined => /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(node.output)?.[1]
    if (find() === undefined) {
      if (node.pid === undefined) throw new Error('no daemon pid')
      process.kill(node.pid, 'SIGUSR1')
      const deadline = Date.now() + 10_000
      while (find() === undefined && Date.now() < deadline) await sleep(50)
    }
    const url = find()
    if (url === undefined) throw new Error('the daemon did not open its inspector')
    const ws = new WebSocket(url)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('inspector connect timeout')) }, 10_000)
      ws.addEventListener('open', () => { clearTimeout(timer); resolve() })
      ws.addEventListener('error', () => { clearTimeout(timer); reject(new Error('inspector connect failed')) })
    })
    return new Inspector(ws)
  }

  async call (method: string, params: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<any> {
    const id = this.nextId++
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(id); reject(new Error(`${method} timed out`)) }, timeoutMs)
      this.waiting.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      })
      this.ws.send(JSON.stringify({ id, method, params }))
    })
  }

  async memory (): Promise<{ heapUsed: number, rss: number, external: number, arrayBuffers: number }> {
    const result = await this.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })
    return JSON.parse(result.result.value)
  }

  async gc (): Promise<void> {
    // Twice: the first pass can leave finalizers (weak refs, FinalizationRegistry) for the second.
    await this.call('HeapProfiler.collectGarbage')
    await sleep(200)
    await this.call('HeapProfiler.collectGarbage')
  }

  close (): void {
    this.ws.close()
  }
}

// ---------------------------------------------------------------------------------------------------
// 2. Streams

interface StreamResult { name: string, headers: Summary, firstEvent: Summary, ttft: Summary, total: Summary, gaps: Summary, coalesced: number, reads: Summary, errors: number, firstErrors: string[] }

async function interleavedStreams (targets: Target[], warmup: number, count: number): Promise<StreamResult[]> {
  const samples = targets.map(() => [] as StreamSample[])
  const errors = targets.map(() => 0)
  const firstErrors: string[][] = targets.map(() => [])
  const deadline = performance.now() + PHASE_MS
  for (let i = 0; i < warmup + count && performance.now() < deadline; i++) {
    for (let k = 0; k < targets.length; k++) {
      const j = (i + k) % targets.length
      try {
        const s = await streamOnce(targets[j]!)
        if (i >= warmup) samples[j]!.push(s)
      } catch (err) {
        errors[j]!++
        if (firstErrors[j]!.length < 3) firstErrors[j]!.push((err as Error).message)
      }
    }
  }
  return targets.map((t, j) => {
    const s = samples[j]!
    const gaps = s.flatMap((x) => x.gaps)
    return {
      name: t.name,
      headers: summarize(s.map((x) => x.headersMs)),
      firstEvent: summarize(s.map((x) => x.firstEventMs)),
      ttft: summarize(s.map((x) => x.ttftMs)),
      total: summarize(s.map((x) => x.totalMs)),
      gaps: summarize(gaps),
      coalesced: gaps.length === 0 ? NaN : gaps.filter((g) => g < 1).length / gaps.length,
      reads: summarize(s.map((x) => x.reads)),
      errors: errors[j]!,
      firstErrors: firstErrors[j]!
    }
  })
}

// ---------------------------------------------------------------------------------------------------
// 3. The libp2p hop, from a bare libp2p client in this process

interface HopResult { rows: Array<{ name: string, summary: Summary, errors: number, clientWrites: number, workerWrites: number }>, errors: number, firstErrors: string[] }

async function libp2pHop (workerAddr: string, workerId: string, workerPid: number | undefined, warmup: number, count: number): Promise<HopResult> {
  // Yamux as the daemons run it (src/p2p/host.ts).
  installYamuxWindowHysteresis()
  client = await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionProtector: preSharedKey({ psk: swarmKeyFromHex(PSK) }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The ping protocol's handler is used as an echo server; allow a closing stream next to a new one.
    services: { ping: ping({ maxOutboundStreams: 4 }) }
  })
  const c = client
  const worker: PeerId = peerIdFromString(workerId)
  await c.dial(multiaddr(workerAddr))

  // The requester side of the job protocol as the daemons run it: 1.1.0 with its kept streams, and, for
  // comparison, the same code offered only 1.0.0 (a new stream for every job, closed after it).
  const protocolOn = (oneJobPerStream: boolean): JobProtocol => {
    const components = componentsOf(c)
    const openStream = components.connectionManager.openStream
    components.connectionManager.openStream = async (peer, protocols, options) => await openStream(peer, oneJobPerStream ? [JOB_PROTOCOL_1_0] : protocols, options)
    return new JobProtocol(components, { log: silentLogger })
  }
  const kept = protocolOn(false)
  const fresh = protocolOn(true)
  const body = Buffer.from(JSON.stringify({ model: MODEL, messages: MESSAGES }))

  const job = async (protocol: JobProtocol): Promise<{ headMs: number, endMs: number }> => {
    const t0 = performance.now()
    const head = { requestId: randomUUID(), project: PROJECT, model: MODEL, cid: '', kind: JobKind.CHAT, contentType: 'application/json', stream: false, deadline: Date.now() + 60_000 }
    const response = await protocol.run(worker, { head, body: new WholeBody(body) }, AbortSignal.timeout(REQUEST_TIMEOUT_MS))
    const headMs = performance.now() - t0
    const chunks: Uint8Array[] = []
    for await (const chunk of response.body) chunks.push(chunk)
    const endMs = performance.now() - t0
    if (response.status !== 200 || JSON.parse(Buffer.concat(chunks).toString()).choices[0].message.content !== REPLY) {
      throw new Error(`job answered ${response.status} ${response.error?.message ?? ''}`)
    }
    return { headMs, endMs }
  }

  // The worker's ping handler echoes whatever arrives on a stream, until the stream ends (or 10 s pass).
  const PING = '/ipfs/ping/1.0.0'
  const echoOn = async (stream: Stream): Promise<void> => {
    const data = randomBytes(32)
    await new Promise<void>((resolve, reject) => {
      let got = 0
      const onMessage = (evt: StreamMessageEvent): void => {
        got += evt.data.byteLength
        if (got >= data.byteLength) { done(); resolve() }
      }
      const onClose = (): void => { done(); reject(new Error('echo stream closed')) }
      const timer = setTimeout(() => { done(); reject(new Error('echo timed out')) }, REQUEST_TIMEOUT_MS)
      const done = (): void => {
        clearTimeout(timer)
        stream.removeEventListener('message', onMessage)
        stream.removeEventListener('close', onClose)
      }
      stream.addEventListener('message', onMessage)
      stream.addEventListener('close', onClose)
      stream.send(data)
    })
  }
  const closeStream = async (stream: Stream): Promise<void> => {
    await stream.close({ signal: AbortSignal.timeout(5_000) }).catch((err: Error) => { stream.abort(err) })
  }
  // A stream kept open, replaced (untimed) every 5 s before the handler's 10 s limit ends it.
  let echoStream: Stream | undefined
  let echoOpened = 0
  const reusedEcho = async (): Promise<number> => {
    if (echoStream === undefined || echoStream.status !== 'open' || performance.now() - echoOpened > 5_000) {
      if (echoStream !== undefined) await closeStream(echoStream)
      echoStream = await c.dialProtocol(worker, PING, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
      echoOpened = performance.now()
    }
    const t = performance.now()
    await echoOn(echoStream)
    return performance.now() - t
  }
  // What libp2p's ping does: a new stream for one echo (the close is not timed, but awaited).
  const newStreamEcho = async (): Promise<number> => {
    const t = performance.now()
    const stream = await c.dialProtocol(worker, PING, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    await echoOn(stream)
    const ms = performance.now() - t
    await closeStream(stream)
    return ms
  }

  const names = ['32-byte echo on a stream kept open (reused stream)', 'new stream + 32-byte echo (what libp2p ping does)', 'open a job stream alone (dialProtocol, negotiated)', 'job on a kept stream (1.1.0): start → response head', 'job on a kept stream (1.1.0): whole answer', 'job on a new stream (1.0.0): whole answer']
  const samples: number[][] = names.map(() => [])
  const errors = names.map(() => 0)
  const firstErrors: string[] = []
  const deadline = performance.now() + PHASE_MS
  const steps: Array<() => Promise<void>> = [
    async () => { record(0, await reusedEcho()) },
    async () => { record(1, await newStreamEcho()) },
    async () => {
      const t = performance.now()
      const stream = await c.dialProtocol(worker, JOB_PROTOCOL, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
      record(2, performance.now() - t)
      // A reset, not a close: with a close, streams that never carried a head piled up against the
      // client's limit of 64 outbound job streams in trial runs.
      stream.abort(new Error('benchmark: open only'))
    },
    async () => {
      const r = await job(kept)
      record(3, r.headMs)
      record(4, r.endMs)
    },
    async () => {
      const r = await job(fresh)
      record(5, r.endMs)
    }
  ]
  const stepOf = [0, 1, 2, 3, 5]
  /** the row that shows a step's writes (a whole job on the row of its whole answer) */
  const writesRow = [0, 1, 2, 4, 5]
  const writes = steps.map(() => ({ client: 0, worker: 0, n: 0 }))
  let measuring = false
  function record (k: number, ms: number): void { if (measuring) samples[k]!.push(ms) }
  for (let i = 0; i < warmup + count && performance.now() < deadline; i++) {
    measuring = i >= warmup
    for (let k = 0; k < steps.length; k++) {
      const step = (i + k) % steps.length
      const before = { client: syscalls(process.pid).w, worker: syscalls(workerPid).w }
      try {
        await steps[step]!()
        // Let the operation's tail (closing frames, window updates) finish before the next one starts,
        // so that every operation is timed alone and its writes are counted on its own row.
        await sleep(2)
        if (measuring) {
          // Write syscalls of each side for the whole operation (a libp2p frame is one write here).
          writes[step]!.client += syscalls(process.pid).w - before.client
          writes[step]!.worker += syscalls(workerPid).w - before.worker
          writes[step]!.n++
        }
      } catch (err) {
        errors[stepOf[step]!]!++
        if (firstErrors.length < 3) firstErrors.push(`${names[stepOf[step]!]!}: ${(err as Error).message}`)
      }
    }
  }
  if (echoStream !== undefined) await closeStream(echoStream)
  await c.stop()
  client = undefined
  const rows = names.map((name, k) => {
    const step = writesRow.indexOf(k)
    const w = step < 0 ? undefined : writes[step]!
    return { name, summary: summarize(samples[k]!), errors: errors[k]!, clientWrites: w === undefined ? NaN : w.client / Math.max(1, w.n), workerWrites: w === undefined ? NaN : w.worker / Math.max(1, w.n) }
  })
  return { rows, errors: errors.reduce((x, y) => x + y, 0), firstErrors }
}

// ---------------------------------------------------------------------------------------------------
// 4./5. Load

interface MemRound { jobs: number, errors: number, seconds: number, rps: number, before: number[], peak: number[], settled: number[], afterGc: number[], heapBefore: number[], heapAfterGc: number[] }

// ---------------------------------------------------------------------------------------------------
// --perf: where each daemon's CPU time goes, from `perf record` call graphs

/** Component of one stack frame (perf script: "addr symbol (dso)"); undefined = look at the caller. */
function component (symbol: string, dso: string): string | undefined {
  if (dso.includes('kernel')) return undefined
  if (/Scavenge|MarkCompact|Heap::|GCTracer|Sweeper|ConcurrentMarking|MinorMC|MemoryAllocator/.test(symbol)) return 'V8 GC'
  if (/OptimizingCompile|compiler::|Maglev|Baseline.*Compil|Compiler::|Parser::Parse|PreParser/.test(symbol) && !symbol.startsWith('JS:')) return 'V8 compiler'
  const url = /^JS:[*^~+-]?\S*\s+(\S+?)(?::\d+:\d+)?$/.exec(symbol)?.[1] ?? (symbol.startsWith('JS:wasm') ? 'wasm' : undefined)
  if (url === undefined) return undefined
  if (url === 'wasm') return 'noise (chacha20-poly1305)'
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const parts = url.slice(nm + 14).split('/')
    const pkg = parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!
    switch (pkg) {
      case '@chainsafe/libp2p-noise': case '@chainsafe/as-chacha20poly1305': case '@chainsafe/as-sha256': return 'noise (chacha20-poly1305)'
      case '@libp2p/pnet': case 'xsalsa20': return 'pnet (PSK, xsalsa20)'
      case '@chainsafe/libp2p-yamux': return 'yamux'
      case '@libp2p/multistream-select': return 'multistream-select'
      case '@libp2p/peer-store': case 'datastore-level': case 'datastore-core': case 'level': case 'classic-level': case 'abstract-level': case 'interface-datastore': return 'peer store (merge per stream)'
      case '@libp2p/peer-id': case '@libp2p/crypto': case '@noble/curves': case '@noble/hashes': return 'peer id / keys (secp256k1)'
      case '@libp2p/prometheus-metrics': case 'prom-client': return 'metrics'
      case '@libp2p/gossipsub': case '@libp2p/kad-dht': case '@libp2p/identify': case '@libp2p/ping': case '@libp2p/floodsub': case '@libp2p/autonat': case '@libp2p/circuit-relay-v2': case '@libp2p/dcutr': case '@libp2p/bootstrap': return 'libp2p services (gossip, DHT, …)'
      case 'undici': return 'undici (model client)'
      case 'pino': case 'sonic-boom': case 'thread-stream': return 'logging'
      case 'protobufjs': case 'protons-runtime': return 'protobuf'
      case 'libp2p': return 'libp2p connection (newStream, incoming streams, registrar)'
      case '@libp2p/tcp': return 'libp2p tcp (socket glue)'
      default: return 'libp2p stream plumbing (@libp2p/utils, main-event, uint8arraylist, …)'
    }
  }
  const src = url.indexOf('/dist/src/')
  if (src >= 0) return `aicn ${url.slice(src + 10).replace(/\.js$/, '')}`
  if (/^node:(_http_|http$|internal\/http)/.test(url)) return 'HTTP server (node:http)'
  return undefined // other node internals (streams, events, net, timers, crypto) are charged to their caller
}

interface PerfSummary { samples: number, cpuMs: number, components: Array<[string, number]>, jsFunctions: Array<[string, number]>, inclusive: Array<[string, number]> }

async function summarizePerf (dataFile: string): Promise<PerfSummary> {
  const script = spawn('perf', ['script', '-i', dataFile, '-F', 'tid,ip,sym,dso'], { stdio: ['ignore', 'pipe', 'ignore'] })
  perfRecorders.add(script)
  const counts = new Map<string, number>()
  /** main-thread user-space samples by their innermost JS function (--top) */
  const jsCounts = new Map<string, number>()
  /** main-thread samples (kernel time included) with each JS function anywhere on the stack (--top) */
  const inclusiveCounts = new Map<string, number>()
  let samples = 0
  let frames: string[] = []
  let mainThread = true
  const flush = (): void => {
    if (frames.length === 0) return
    samples++
    let name: string | undefined
    if (!mainThread) name = /OptimizingCompile|compiler::|Compil/.test(frames.join(' ')) ? 'V8 compiler (background threads)' : /Scaveng|Mark|Sweep|Heap|GC/.test(frames.join(' ')) ? 'V8 GC (background threads)' : 'other threads (libuv pool: LevelDB peer-store reads, fs)'
    else if (/\(\[kernel/.test(frames[0]!)) name = 'kernel (syscalls, network stack, scheduling)'
    for (const frame of frames) {
      if (name !== undefined) break
      const m = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)\s*$/.exec(frame)
      if (m !== null) name = component(m[1]!, m[2]!)
    }
    name ??= 'node / V8 runtime (event loop, streams, builtins)'
    counts.set(name, (counts.get(name) ?? 0) + 1)
    const names = mainThread ? frames.map((f) => /\sJS:[*^~+-]?(.+?)\s+\([^()]*\)\s*$/.exec(f)?.[1]) : []
    const js = /\(\[kernel/.test(frames[0]!) ? undefined : names.find((f) => f !== undefined)
    if (js !== undefined) jsCounts.set(js, (jsCounts.get(js) ?? 0) + 1)
    for (const name of new Set(names)) if (name !== undefined) inclusiveCounts.set(name, (inclusiveCounts.get(name) ?? 0) + 1)
    frames = []
  }
  let pid = 0
  let buffer = ''
  const handle = (line: string): void => {
    const header = /^\s*(\d+)\s*$/.exec(line)
    if (header !== null) {
      flush()
      mainThread = pid === 0 || Number(header[1]) === pid
      return
    }
    if (line.trim() === '') { flush(); return }
    frames.push(line)
  }
  // perf script prints thread ids; the main thread's is the process id, which names the data file.
  pid = Number(/perf-(\d+)\.data$/.exec(dataFile)?.[1] ?? 0)
  for await (const chunk of script.stdout as AsyncIterable<Buffer>) {
    buffer += chunk.toString('utf8')
    let nl = buffer.indexOf('\n')
    while (nl >= 0) {
      handle(buffer.slice(0, nl))
      buffer = buffer.slice(nl + 1)
      nl = buffer.indexOf('\n')
    }
  }
  handle(buffer)
  flush()
  perfRecorders.delete(script)
  const sorted = (m: Map<string, number>): Array<[string, number]> => [...m].sort((a, b) => b[1] - a[1])
  return { samples, cpuMs: samples * 1000 / PERF_HZ, components: sorted(counts), jsFunctions: sorted(jsCounts), inclusive: sorted(inclusiveCounts) }
}

const PERF_HZ = 1999

/** B and W1 (with its model M1 registered), for the modes that need no second worker. */
async function startPair (start: (spec: NodeSpec) => Promise<TestNode>): Promise<{ m1: Awaited<ReturnType<typeof startModelProcess>>, b: TestNode, w1: TestNode }> {
  const m1 = await startModelProcess()
  const b = await start({ mode: 'input', psk: PSK })
  const w1 = await start({ psk: PSK, bootstrap: [await b.addr()] })
  const r = await w1.call('/api/v0/ai/project/register', { project: PROJECT, models: [{ model: MODEL, api: `${m1.url}/v1/chat/completions`, type: 0 }] })
  if (r.body?.code !== 0) throw new Error(`register failed: ${JSON.stringify(r.body)}`)
  return { m1, b, w1 }
}

/** --latency: phase 1 (the three paths interleaved), the pairwise runs and the CPU per request, for quick comparisons. */
async function latencyMode (): Promise<void> {
  root = await mkdtemp(join(tmpdir(), 'aicn-bench-jobs-'))
  process.env.TMPDIR = root
  agent = useAgent(new Agent({ connections: 16, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS }))
  const residenceDir = await useResidence()
  const { m1, b, w1 } = await startPair(async (spec) => await startDaemon(spec, residencePreload().join(' ')))
  const relay = await startBareRelay(m1.url, residencePreload())
  const floor = floorTarget(relay.url)
  const residence: ResidenceSetup = { dir: residenceDir, processes: ['B', 'W1'], apiPorts: [b.api, w1.api, relay.url].map(portOf), modelPorts: [portOf(m1.url)] }
  const paths = [directTarget(m1.url, '(a) direct to the model'), apiTarget(w1.api, '(b) W1 API, node_id = W1 (local)', w1.peerId), apiTarget(b.api, '(c) B API, node_id = W1 (two nodes)', w1.peerId), floor]
  log(`non-stream latency: ${WARMUP} warm-up + ${REQUESTS} requests per path, the four interleaved, then each beside the direct call`)
  const latency = await interleavedLatency(paths, WARMUP, REQUESTS)
  const pairs = await pairwiseLatency(paths[0]!, [paths[2]!, floor, paths[1]!])
  const cpuRows: CpuRow[] = []
  for (const target of paths.slice(0, 3)) cpuRows.push(await cpuPerRequest(target, CPU_REQUESTS, { client: process.pid, B: b.pid, W1: w1.pid, M1: m1.child.pid }, residence))
  cpuRows.push(await cpuPerRequest(floor, CPU_REQUESTS, { client: process.pid, B: relay.entry.pid, W1: relay.exit.pid, M1: m1.child.pid }, residence))
  const lines = [`Node ${process.version}; load average ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}`, '']
  lines.push('The four paths interleaved request by request:', '', ...latencyTable(latency), '', ...pairwiseTable(pairs), '', ...cpuTable(cpuRows))
  process.stdout.write(lines.join('\n') + '\n')
}

async function perfMode (): Promise<void> {
  if (spawnSync('perf', ['--version']).status !== 0) throw new Error('--perf needs the Linux perf tool')
  root = await mkdtemp(join(tmpdir(), 'aicn-bench-jobs-'))
  process.env.TMPDIR = root
  agent = useAgent(new Agent({ connections: 16, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS }))
  const { b, w1 } = await startPair(async (spec) => {
    const node = await startDaemon(spec, '--perf-basic-prof --interpreted-frames-native-stack')
    if (node.pid !== undefined) perfMapPids.add(node.pid)
    return node
  })
  const paths = [apiTarget(w1.api, '(b) W1 API, node_id = W1 (local)', w1.peerId), apiTarget(b.api, '(c) B API, node_id = W1 (two nodes)', w1.peerId)]
  const lines: string[] = [`Node ${process.version}; perf record -F ${PERF_HZ} -g on each daemon; ${int(REQUESTS)} sequential requests per path after ${WARMUP} warm-up.`]
  for (const target of paths) {
    log(`${target.name}: ${WARMUP} warm-up requests`)
    for (let i = 0; i < WARMUP; i++) await post(target)
    const recorded = [['B', b], ['W1', w1]] as const
    const files = recorded.map(([name, node]) => ({ name, node, file: join(root!, `perf-${node.pid!}.data`) }))
    const recorders = files.map((f) => {
      const child = spawn('perf', ['record', '-F', String(PERF_HZ), '-g', '-o', f.file, '-p', String(f.node.pid)], { stdio: 'ignore' })
      perfRecorders.add(child)
      return child
    })
    await sleep(1_000)
    log(`${target.name}: ${REQUESTS} requests under perf`)
    const samples: number[] = []
    const deadline = performance.now() + PHASE_MS
    for (let i = 0; i < REQUESTS && performance.now() < deadline; i++) {
      const result = await post(target)
      if (result.error === undefined) samples.push(result.ms)
    }
    for (const child of recorders) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      if (child.pid !== undefined) process.kill(child.pid, 'SIGINT')
      await Promise.race([exited, sleep(30_000)])
      perfRecorders.delete(child)
    }
    const n = Math.max(1, samples.length)
    lines.push('', `### ${target.name}: latency p50 ${f2(summarize(samples).p50)} ms under perf`, '')
    const summaries: PerfSummary[] = []
    for (const f of files) summaries.push(await summarizePerf(f.file))
    const names = [...new Set(summaries.flatMap((x) => x.components.map(([c]) => c)))]
    names.sort((x, y) => summaries.reduce((t, s) => t + (s.components.find(([c]) => c === y)?.[1] ?? 0), 0) - summaries.reduce((t, s) => t + (s.components.find(([c]) => c === x)?.[1] ?? 0), 0))
    lines.push(`| component (CPU µs per request) | ${files.map((f) => f.name).join(' | ')} |`, `|---|${files.map(() => '---').join('|')}|`)
    const perRequest = (s: PerfSummary, samplesOf: number): string => f0(samplesOf * 1e6 / PERF_HZ / n)
    for (const name of names) lines.push(`| ${name} | ${summaries.map((s) => perRequest(s, s.components.find(([c]) => c === name)?.[1] ?? 0)).join(' | ')} |`)
    lines.push(`| **total** | ${summaries.map((s) => `**${perRequest(s, s.samples)}**`).join(' | ')} |`)
    for (const [k, s] of summaries.entries()) {
      if (TOP === 0) break
      lines.push('', `${files[k]!.name}: the ${TOP} innermost JS functions with the most user-space samples (µs per request, node internals included, kernel time not)`, '')
      for (const [fn, count] of s.jsFunctions.slice(0, TOP)) lines.push(`    ${perRequest(s, count).padStart(5)}  ${fn}`)
      lines.push('', `${files[k]!.name}: the ${TOP} JS functions of aicn and libp2p with the most samples anywhere below them (inclusive µs per request, kernel included)`, '')
      const ours = s.inclusive.filter(([fn]) => /\/dist\/src\/|@libp2p|libp2p-|uint8arraylist|undici|node:_http/.test(fn))
      for (const [fn, count] of ours.slice(0, TOP)) lines.push(`    ${perRequest(s, count).padStart(5)}  ${fn}`)
    }
  }
  process.stdout.write(lines.join('\n') + '\n')
}

// ---------------------------------------------------------------------------------------------------
// Main

async function main (): Promise<void> {
  root = await mkdtemp(join(tmpdir(), 'aicn-bench-jobs-'))
  process.env.TMPDIR = root
  agent = useAgent(new Agent({ connections: 256, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS, connectTimeout: 10_000 }))
  const loadBefore = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
  const cores = (await readFile('/proc/cpuinfo', 'utf8')).split('\n').filter((l) => l.startsWith('processor')).length

  log('starting two fake model servers, B and two workers')
  const m1 = await startModelProcess()
  const m2 = await startModelProcess()
  // The daemons may open their inspector later (SIGUSR1, for the memory phase), on a random loopback port.
  const residenceDir = await useResidence()
  const start = async (spec: NodeSpec): Promise<TestNode> => await startDaemon(spec, ['--inspect-port=127.0.0.1:0', ...residencePreload()].join(' '))
  const b = await start({ mode: 'input', psk: PSK })
  const bAddr = await b.addr()
  const w1 = await start({ psk: PSK, bootstrap: [bAddr] })
  const w2 = await start({ psk: PSK, bootstrap: [bAddr] })
  for (const [w, m] of [[w1, m1], [w2, m2]] as const) {
    const r = await w.call('/api/v0/ai/project/register', { project: PROJECT, models: [{ model: MODEL, api: `${m.url}/v1/chat/completions`, type: 0 }] })
    if (r.body?.code !== 0) throw new Error(`register failed: ${JSON.stringify(r.body)}`)
  }
  {
    const deadline = Date.now() + 30_000
    let seen = 0
    while (Date.now() < deadline) {
      const peers = await b.call('/api/v0/ai/projects/peers', { project: PROJECT, model: MODEL })
      seen = (peers.body?.data ?? []).filter((p: any) => p.connectivity === 1).length
      if (seen === 2) break
      await sleep(100)
    }
    if (seen !== 2) throw new Error(`B sees ${seen} of 2 workers`)
  }
  const pids = { client: process.pid, B: b.pid, W1: w1.pid, W2: w2.pid, M1: m1.child.pid, M2: m2.child.pid }
  const rssTimeline: Array<{ when: string, B: number, W1: number, W2: number }> = []
  const rssNow = (when: string): void => { rssTimeline.push({ when, B: rssMb(b.pid), W1: rssMb(w1.pid), W2: rssMb(w2.pid) }) }
  rssNow('started')

  // 1. Non-stream latency
  const direct = directTarget(m1.url, '(a) direct to the model')
  const local = apiTarget(w1.api, '(b) W1 API, node_id = W1 (local)', w1.peerId)
  const twoNodes = apiTarget(b.api, '(c) B API, node_id = W1 (two nodes)', w1.peerId)
  const relay = await startBareRelay(m1.url, residencePreload())
  const floor = floorTarget(relay.url)
  const residence: ResidenceSetup = { dir: residenceDir, processes: ['B', 'W1'], apiPorts: [b.api, w1.api, relay.url].map(portOf), modelPorts: [portOf(m1.url)] }
  log(`non-stream latency: ${WARMUP} warm-up + ${REQUESTS} requests per path, interleaved`)
  const latency = await interleavedLatency([direct, local, twoNodes, floor], WARMUP, REQUESTS)
  rssNow('after non-stream latency')
  log(`CPU per request: ${CPU_REQUESTS} requests per path, one path at a time`)
  const cpuRows: CpuRow[] = []
  for (const target of [direct, local, twoNodes]) cpuRows.push(await cpuPerRequest(target, CPU_REQUESTS, { client: pids.client, B: pids.B, W1: pids.W1, M1: pids.M1 }, residence))
  cpuRows.push(await cpuPerRequest(floor, CPU_REQUESTS, { client: pids.client, B: relay.entry.pid, W1: relay.exit.pid, M1: pids.M1 }, residence))

  // 2. Streams
  log(`streamed chat: ${STREAM_WARMUP} warm-up + ${STREAMS} streams per path, interleaved`)
  const streams = await interleavedStreams([
    directTarget(m1.url, '(a) direct to the model', true),
    apiTarget(w1.api, '(b) W1 API (local)', w1.peerId, true),
    apiTarget(b.api, '(c) B API → W1 (two nodes)', w1.peerId, true)
  ], STREAM_WARMUP, STREAMS)
  rssNow('after streams')

  // 3. The libp2p hop
  log(`libp2p hop from a bare client to W1: ${WARMUP} warm-up + ${REQUESTS} rounds`)
  const hop = await libp2pHop(await w1.addr(), w1.peerId, w1.pid, WARMUP, REQUESTS)

  // 4. Throughput
  const proxy = apiTarget(b.api, 'proxy', undefined)
  const directBoth = [directTarget(m1.url, 'direct M1'), directTarget(m2.url, 'direct M2')]
  const tput: LoadResult[] = []
  for (const concurrency of CONCURRENCY) {
    log(`throughput at concurrency ${concurrency}: at most ${TPUT_REQUESTS} requests / ${TPUT_MS / 1000} s each`)
    tput.push(await load('direct to M1/M2', directBoth, concurrency, TPUT_REQUESTS, TPUT_MS))
    tput.push(await load('B /chat/completion/proxy', [proxy], concurrency, TPUT_REQUESTS, TPUT_MS))
  }
  rssNow('after throughput')

  // 5. Memory
  const daemons = [b, w1, w2]
  let inspectors: Inspector[] | undefined
  try {
    inspectors = []
    for (const d of daemons) inspectors.push(await Inspector.open(d))
  } catch (err) {
    log(`inspector unavailable (${(err as Error).message}): memory is reported without a forced GC`)
    for (const i of inspectors ?? []) i.close()
    inspectors = undefined
  }
  const forceGc = async (): Promise<number[]> => {
    if (inspectors === undefined) return daemons.map(() => NaN)
    await Promise.all(inspectors.map(async (i) => { await i.gc() }))
    return await Promise.all(inspectors.map(async (i) => (await i.memory()).heapUsed / 1024 / 1024))
  }
  const rssAll = (): number[] => daemons.map((d) => rssMb(d.pid))
  const memRounds: MemRound[] = []
  const memStart = { heap: await forceGc(), rss: rssAll() }
  rssNow('before memory rounds (after GC)')
  for (let round = 0; round < MEM_ROUNDS; round++) {
    log(`memory round ${round + 1}: ${MEM_JOBS} proxied jobs at concurrency ${MEM_CONCURRENCY}`)
    const heapBefore = round === 0 ? memStart.heap : memRounds[round - 1]!.heapAfterGc
    const before = round === 0 ? memStart.rss : memRounds[round - 1]!.afterGc
    const peak = [...before]
    const sampler = setInterval(() => {
      rssAll().forEach((mb, k) => { if (mb > peak[k]!) peak[k] = mb })
    }, RSS_SAMPLE_MS)
    let result: LoadResult
    try {
      result = await load('memory', [proxy], MEM_CONCURRENCY, MEM_JOBS, 10 * 60_000)
    } finally {
      clearInterval(sampler)
    }
    rssAll().forEach((mb, k) => { if (mb > peak[k]!) peak[k] = mb })
    await sleep(SETTLE_MS)
    const settled = rssAll()
    const heapAfterGc = await forceGc()
    const afterGc = rssAll()
    memRounds.push({ jobs: result.ok, errors: result.errors, seconds: result.seconds, rps: result.rps, before, peak, settled, afterGc, heapBefore, heapAfterGc })
    if (result.errors > 0) log(`memory round errors: ${result.errors}: ${result.firstErrors.join(' | ')}`)
    rssNow(`after memory round ${round + 1} (settled, GC)`)
  }

  for (const i of inspectors ?? []) i.close()

  // 6. Non-stream latency again, now that every code path has run tens of thousands of times (V8 keeps
  // optimising the libp2p code long after the 200 warm-up requests).
  log(`non-stream latency once more, warm: ${REQUESTS} requests per path, interleaved`)
  const warmLatency = await interleavedLatency([direct, local, twoNodes, floor], Math.min(WARMUP, 50), REQUESTS)
  const warmPairs = await pairwiseLatency(direct, [twoNodes, floor, local])
  const loadAfter = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')

  // ---- Report
  const lines: string[] = []
  lines.push(`Node ${process.version}, ${cores} cores, load average before ${loadBefore}, after ${loadAfter}. Fake model: ${TOKEN_COUNT} tokens, ${TOKEN_DELAY_MS} ms between streamed tokens.`, '')
  lines.push(`### Non-stream chat latency (ms; ${int(REQUESTS)} sequential requests per path after ${WARMUP} warm-up, paths interleaved)`, '')
  lines.push(...latencyTable(latency))
  lines.push('', `The same at the end of the run, after the throughput and memory phases (JIT warm; ${int(REQUESTS)} requests per path):`, '')
  lines.push(...latencyTable(warmLatency))
  lines.push('', ...pairwiseTable(warmPairs), '', ...cpuTable(cpuRows))

  const [sa] = streams
  lines.push('', `### Streamed chat (ms; ${int(STREAMS)} streams per path after ${STREAM_WARMUP} warm-up, interleaved)`, '')
  lines.push('| path | head p50 | first token p50 / p99 | added TTFT p50 / p99 | token gap mean / p50 / p99 | gaps < 1 ms | reads per stream p50 | whole stream p50 | errors |', '|---|---|---|---|---|---|---|---|---|')
  for (const r of streams) {
    const added = r === sa ? '–' : `${signed(r.ttft.p50 - sa!.ttft.p50)} / ${signed(r.ttft.p99 - sa!.ttft.p99)}`
    lines.push(`| ${r.name} | ${f2(r.headers.p50)} | ${f2(r.ttft.p50)} / ${f2(r.ttft.p99)} | ${added} | ${f2(r.gaps.mean)} / ${f2(r.gaps.p50)} / ${f2(r.gaps.p99)} | ${f1(r.coalesced * 100)} % | ${f0(r.reads.p50)} | ${f1(r.total.p50)} | ${r.errors} |`)
  }

  lines.push('', `### The libp2p hop (ms; bare libp2p client in the bench process → W1, ${int(REQUESTS)} rounds after ${WARMUP} warm-up)`, '')
  lines.push('| step | p50 | p90 | p99 | writes per op: client / W1 | errors |', '|---|---|---|---|---|---|')
  for (const r of hop.rows) lines.push(`| ${r.name} | ${f2(r.summary.p50)} | ${f2(r.summary.p90)} | ${f2(r.summary.p99)} | ${Number.isNaN(r.clientWrites) ? '' : `${f1(r.clientWrites)} / ${f1(r.workerWrites)}`} | ${r.errors} |`)
  if (hop.errors > 0) lines.push('', `Errors: ${hop.errors} (${hop.firstErrors.join(' | ')})`)

  lines.push('', `### Throughput (non-stream chat; each run at most ${int(TPUT_REQUESTS)} requests and ${TPUT_MS / 1000} s)`, '')
  lines.push('| concurrency | target | requests/s | latency p50 / p99 ms | ok | errors | served by |', '|---|---|---|---|---|---|---|')
  for (const r of tput) {
    const served = r.servedBy.size === 0 ? '–' : [...r.servedBy.entries()].map(([id, n]) => `${id === w1.peerId ? 'W1' : id === w2.peerId ? 'W2' : id.slice(-6)} ${n}`).join(', ')
    lines.push(`| ${r.concurrency} | ${r.name} | ${f0(r.rps)} | ${f2(r.latency.p50)} / ${f2(r.latency.p99)} | ${int(r.ok)} | ${r.errors} | ${served} |`)
  }
  for (const r of tput.filter((x) => x.errors > 0)) lines.push('', `Errors at concurrency ${r.concurrency} (${r.name}): ${r.firstErrors.join(' | ')}`)

  lines.push('', `### Memory (VmRSS MB; ${int(MEM_JOBS)} proxied jobs per round at concurrency ${MEM_CONCURRENCY}; "settled" after ${SETTLE_MS / 1000} s idle; "GC" after a forced full GC)`, '')
  lines.push('| round | jobs (errors) | req/s | node | before | peak during | settled | after GC | growth after GC | heap used before → after GC |', '|---|---|---|---|---|---|---|---|---|---|')
  for (const [r, m] of memRounds.entries()) {
    for (const [k, name] of ['B', 'W1', 'W2'].entries()) {
      lines.push(`| ${r + 1} | ${int(m.jobs)} (${m.errors}) | ${f0(m.rps)} | ${name} | ${f1(m.before[k]!)} | ${f1(m.peak[k]!)} | ${f1(m.settled[k]!)} | ${f1(m.afterGc[k]!)} | ${signed(m.afterGc[k]! - m.before[k]!)} | ${f1(m.heapBefore[k]!)} → ${f1(m.heapAfterGc[k]!)} |`)
    }
  }
  lines.push('', '| when | B | W1 | W2 |', '|---|---|---|---|')
  for (const t of rssTimeline) lines.push(`| ${t.when} | ${f1(t.B)} | ${f1(t.W1)} | ${f1(t.W2)} |`)

  const errorsSeen = [...latency, ...warmLatency, ...warmPairs.flatMap((p) => p.results)].some((r) => r.errors > 0) || streams.some((r) => r.errors > 0) || tput.some((r) => r.errors > 0) || memRounds.some((m) => m.errors > 0)
  if (errorsSeen) {
    lines.push('', 'First errors:')
    for (const r of [...latency, ...warmLatency, ...warmPairs.flatMap((p) => p.results), ...streams]) if (r.errors > 0) lines.push(`- ${r.name}: ${r.firstErrors.join(' | ')}`)
  }
  process.stdout.write(lines.join('\n') + '\n')
}

interface Pair { run: number, results: LatencyResult[] }

/** Each path interleaved with the direct call and nothing else, PAIR_RUNS times: a third path on the same
 * worker (the local API beside the job protocol) makes that worker switch between two code paths on
 * every request, which the two-node path then pays for too. */
async function pairwiseLatency (direct: Target, paths: Target[]): Promise<Pair[]> {
  const pairs: Pair[] = []
  for (let run = 1; run <= PAIR_RUNS; run++) {
    for (const path of paths) {
      log(`${path.name} beside the direct call, run ${run} of ${PAIR_RUNS}: ${REQUESTS} requests each`)
      pairs.push({ run, results: await interleavedLatency([direct, path], 50, REQUESTS) })
    }
  }
  return pairs
}

function pairwiseTable (pairs: Pair[]): string[] {
  const lines = [`Each path interleaved with the direct call alone (${int(REQUESTS)} requests each, ${PAIR_RUNS} runs):`, '']
  lines.push('| run | path | direct p50 | path p50 | **added p50** | direct p99 | path p99 | added p99 | errors |', '|---|---|---|---|---|---|---|---|---|')
  const added = new Map<string, number[]>()
  for (const { run, results: [a, x] } of pairs) {
    const list = added.get(x!.name) ?? []
    list.push(x!.summary.p50 - a!.summary.p50)
    added.set(x!.name, list)
    lines.push(`| ${run} | ${x!.name} | ${f2(a!.summary.p50)} | ${f2(x!.summary.p50)} | **${signed(x!.summary.p50 - a!.summary.p50)}** | ${f2(a!.summary.p99)} | ${f2(x!.summary.p99)} | ${signed(x!.summary.p99 - a!.summary.p99)} | ${a!.errors + x!.errors} |`)
  }
  for (const [name, list] of added) {
    const sorted = [...list].sort((p, q) => p - q)
    lines.push('', `${name}: added p50 median ${signed(sorted[sorted.length >> 1]!)} ms over ${list.length} runs (min ${signed(sorted[0]!)}, max ${signed(sorted[sorted.length - 1]!)}).`)
  }
  return lines
}

/** Latency per path, added against the first (direct) path, the second node alone (c − b) and, when the
 * floor path is there, what libp2p and aicn cost over it (c − d). */
function latencyTable (rows: Array<{ name: string, summary: Summary, errors: number }>): string[] {
  const [a, b, c, d] = rows
  const lines = ['| path | p50 | p90 | p99 | max | added p50 | added p99 | errors |', '|---|---|---|---|---|---|---|---|']
  for (const r of rows) {
    const added = r === a ? ['–', '–'] : [signed(r.summary.p50 - a!.summary.p50), signed(r.summary.p99 - a!.summary.p99)]
    lines.push(`| ${r.name} | ${f2(r.summary.p50)} | ${f2(r.summary.p90)} | ${f2(r.summary.p99)} | ${f2(r.summary.max)} | ${added[0]} | ${added[1]} | ${r.errors} |`)
  }
  lines.push('', `Second node alone (c − b): p50 ${signed(c!.summary.p50 - b!.summary.p50)} ms, p99 ${signed(c!.summary.p99 - b!.summary.p99)} ms.`)
  if (d !== undefined) lines.push('', `libp2p and aicn over the bare relay floor (c − d): p50 ${signed(c!.summary.p50 - d.summary.p50)} ms, p99 ${signed(c!.summary.p99 - d.summary.p99)} ms.`)
  return lines
}

function cpuTable (rows: CpuRow[]): string[] {
  const lines = [`### CPU time and syscalls per request (utime+stime from /proc/<pid>/stat, syscw/syscr from /proc/<pid>/io; ${int(CPU_REQUESTS)} sequential requests, one path at a time; for (d), the entry relay is under B and the exit relay under W1)`, '']
  lines.push('"own µs": p50 of the time a request stays in the process, from its bytes coming off one socket to the write on the next (residence.ts), towards the model → and back ←.', '')
  lines.push('| path | latency p50 ms | CPU µs: client | B | W1 | M1 | writes: B | W1 | reads: B | W1 | own µs: B → / ← | W1 → / ← |', '|---|---|---|---|---|---|---|---|---|---|---|---|')
  const own = (r: CpuRow, name: string): string => r.ownUs?.[name] === undefined ? '–' : `${f0(r.ownUs[name].toward)} / ${f0(r.ownUs[name].back)}`
  for (const r of rows) lines.push(`| ${r.name} | ${f2(r.latency.p50)} | ${f0(r.perRequestUs.client!)} | ${f0(r.perRequestUs.B!)} | ${f0(r.perRequestUs.W1!)} | ${f0(r.perRequestUs.M1!)} | ${f1(r.writes.B!)} | ${f1(r.writes.W1!)} | ${f1(r.reads.B!)} | ${f1(r.reads.W1!)} | ${own(r, 'B')} | ${own(r, 'W1')} |`)
  return lines
}

/** The folder the residence preload reports into (under this run's temp folder, which the daemons inherit
 * through the environment). */
async function useResidence (): Promise<string> {
  const dir = join(root!, 'residence')
  await mkdir(dir, { recursive: true })
  process.env.AICN_RESIDENCE_DIR = dir
  return dir
}

function portOf (url: string): number {
  return Number(new URL(url.includes('://') ? url : `http://${url}`).port)
}

const watchdog = setTimeout(() => {
  log(`watchdog: the run took longer than ${WATCHDOG_MS / 60_000} min; cleaning up`)
  void cleanup().finally(() => process.exit(2))
}, WATCHDOG_MS)

try {
  await (args.perf ? perfMode() : args.latency ? latencyMode() : main())
} catch (err) {
  log(`failed: ${(err as Error).stack ?? String(err)}`)
  process.exitCode = 1
} finally {
  clearTimeout(watchdog)
  await cleanup()
}
