// Benchmark of the model registry's gossip (src/protocols/heartbeat/heartbeats.ts) on real daemons, plus the sizes
// and query costs around it.
//
//   npm run build && node dist/scripts/bench/registry-spread.js [--sizes 5,20] [--rounds 12]
//        [--routers gossipsub,floodsub] [--skip-view]
//
// Run from dist/ (test/integration/harness.ts finds bin/aicn.js relative to its compiled location).
// Everything listens on 127.0.0.1 only. What it measures:
//   1. Spread: from a `POST /api/v0/ai/model/register` returning on one worker until every other node lists
//      that worker for the model in `/api/v0/ai/projects/peers` (and the same for unregister → gone
//      everywhere), in networks of 5 and 20 daemons (one input node as bootstrap, workers bootstrapping
//      to it, one pre-shared key, the default 180 s HeartbeatInterval: only the publish-on-change is
//      measured). Every other node is polled concurrently every 10 ms, at most 10 s per registration.
//      Each size runs with the default router (gossipsub) and again with Pubsub.Router = floodsub for
//      comparison. A network whose nodes do not all hear each other in time is reported as such, with
//      what each node heard, and measured over 3 rounds anyway.
//   2. Bytes: encodeHeartbeat() for 1 project × 1 model and 3 projects × 5 models, and the gossipsub
//      envelope around one (a real signed RPC, encoded with gossipsub's own codec).
//   3. Query cost with a 1,000-node view: view.candidates() + NetworkRegistry.rank() in-process, and
//      `/api/v0/ai/projects/peers` over HTTP on an in-process HttpServer with the real registry routes;
//      and the same HTTP call on a real daemon (small view) for comparison.
//   4. RSS (VmRSS) of every daemon at the end of each network's run.
// Prints a human-readable summary and Markdown tables for docs/benchmarks.md.
//
// Bounded: every wait has a deadline, every loop a maximum count, the whole run a watchdog. Every daemon
// lives under one temp folder (TMPDIR is pointed there) that is removed at the end, on failure and on
// SIGINT/SIGTERM; daemons are killed by PID (the harness's destroy(), then any child of this process left).
// The daemon-network helpers are shared with scale.ts and soak.ts in ./network.ts.
import '../../src/core/polyfill.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { generateKeyPair, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { RPC } from '@libp2p/gossipsub/message'
import { Registry } from 'prom-client'
import { startFakeModelServer, type FakeModelServer } from '../fake-model.ts'
import type { TestNode } from '../../test/integration/harness.ts'
import { call, cpuCount, destroyAll, loadAverage, log, onCleanup, pollListed, rssMb, runBench, startNetwork, summarize, waitAllHearAll, type Summary } from './network.ts'
import { encodeHeartbeat } from '../../src/protocols/heartbeat-codec.ts'
import { NetworkView } from '../../src/registry/view.ts'
import type { NodeEntry, ViewProject } from '../../src/registry/view-types.ts'
import { NetworkRegistry } from '../../src/protocols/network.ts'
import { HttpServer } from '../../src/api/index.ts'
import { registryRoutes } from '../../src/api/routes/registry.ts'
import { silentLogger } from '../../src/core/logger.ts'
import { AGENT_VERSION } from '../../src/core/version.ts'
import { DEFAULT_TOPIC_NAME } from '../../src/config/defaults.ts'
import type { Host } from '../../src/p2p/host.ts'
import type { LatencyTracker } from '../../src/p2p/latency/index.ts'
import type { RpcService } from '../../src/protocols/rpc/index.ts'
import type { LocalRegistry } from '../../src/registry/local.ts'

// ---------------------------------------------------------------------------------------------------
// Settings

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '5,20' },
    rounds: { type: 'string', default: '12' },
    routers: { type: 'string', default: 'gossipsub,floodsub' },
    'skip-view': { type: 'boolean', default: false }
  }
})
const SIZES = args.sizes.split(',').map(Number)
const ROUNDS = Number(args.rounds)
const ROUTERS = args.routers.split(',') as Array<'gossipsub' | 'floodsub'>
if (ROUTERS.some((r) => r !== 'gossipsub' && r !== 'floodsub')) throw new Error('--routers: gossipsub and/or floodsub')
if (SIZES.some((n) => !Number.isInteger(n) || n < 2 || n > 40)) throw new Error('--sizes: integers from 2 to 40')
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 100) throw new Error('--rounds: an integer from 1 to 100')

const PSK = 'be'.repeat(32)
const PROJECT = 'BenchSpread'
const POLL_MS = 10
const SPREAD_TIMEOUT_MS = 10_000
const START_BATCH = 4
const START_TIMEOUT_MS = 120_000
const CONVERGE_TIMEOUT_MS = 120_000
const SETTLE_MS = 3_000
/** Rounds are spaced by this plus a random 0–1 s, so they do not lock onto gossipsub's 1 s heartbeat. */
const PAUSE_BETWEEN_ROUNDS_MS = 200
const WATCHDOG_MS = 30 * 60_000

const VIEW_NODES = 1_000
const VIEW_WARMUP = 200
const VIEW_CALLS = 5_000
const HTTP_WARMUP = 200
const HTTP_CALLS = 2_000
const DAEMON_HTTP_CALLS = 1_000
/** Each in-process measurement stops after this long (but not before MIN_CALLS calls). */
const MEASURE_BUDGET_MS = 15_000
const MIN_CALLS = 20

// ---------------------------------------------------------------------------------------------------
// Small helpers

const ms = (x: number): string => Number.isNaN(x) ? '–' : x < 10 ? x.toFixed(1) : x.toFixed(0)
const us = (x: number): string => Number.isNaN(x) ? '–' : x < 100 ? x.toFixed(1) : x.toFixed(0)

/** mulberry32: a small seeded generator, so every run builds the same synthetic view. */
function random (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function varintLength (n: number): number {
  let length = 1
  while (n >= 0x80) { n = Math.floor(n / 0x80); length++ }
  return length
}

// ---------------------------------------------------------------------------------------------------
// Cleanup (daemons, temp root, signals, watchdog: ./network.ts); what this script adds

let fakeModel: FakeModelServer | undefined
let inProcessHttp: HttpServer | undefined
onCleanup(async () => { await inProcessHttp?.close(100) })
onCleanup(async () => { await fakeModel?.close() })

// ---------------------------------------------------------------------------------------------------
// 2. Heartbeat sizes

interface SizeRow { what: string, bytes: number }

async function heartbeatSizes (): Promise<{ rows: SizeRow[], envelope: string[] }> {
  const key = await generateKeyPair('secp256k1') // what `aicn init` generates
  const peerId = peerIdFromPrivateKey(key)
  const nodeId = peerId.toString()
  const cid64 = 'c'.repeat(64)
  const projects = (p: number, m: number, cid: string): ViewProject[] => Array.from({ length: p }, (_, i) => ({
    project: `DecentralGPT-${i}`,
    models: Array.from({ length: m }, (_, j) => ({ model: `Llama3-70B-v${j}`, cid, type: 0, busy: 3, available: true }))
  }))
  const size = (ps: ViewProject[], leaving = false): number =>
    encodeHeartbeat({ nodeId, version: AGENT_VERSION, nodeType: 0x04, projects: ps, leaving }).byteLength
  const rows: SizeRow[] = [
    { what: 'leaving (no projects)', bytes: size([], true) },
    { what: '1 project × 1 model, cid ""', bytes: size(projects(1, 1, '')) },
    { what: '1 project × 1 model, 64-char cid', bytes: size(projects(1, 1, cid64)) },
    { what: '3 projects × 5 models, cid ""', bytes: size(projects(3, 5, '')) },
    { what: '3 projects × 5 models, 64-char cids', bytes: size(projects(3, 5, cid64)) }
  ]

  // The gossipsub envelope, built exactly as @libp2p/gossipsub's buildRawMessage does for StrictSign.
  const data = encodeHeartbeat({ nodeId, version: AGENT_VERSION, nodeType: 0x04, projects: projects(1, 1, ''), leaving: false })
  const seqno = new Uint8Array(8)
  new DataView(seqno.buffer).setBigUint64(0, BigInt(Date.now()) * 1_000_000n, false)
  const unsigned: RPC.Message = { from: peerId.toMultihash().bytes, data, seqno, topic: DEFAULT_TOPIC_NAME }
  const toSign = new Uint8Array([...new TextEncoder().encode('libp2p-pubsub:'), ...RPC.Message.encode(unsigned)])
  const signature = await key.sign(toSign)
  const message: RPC.Message = { ...unsigned, signature, key: publicKeyToProtobuf(key.publicKey) }
  const rpc = RPC.encode({ subscriptions: [], messages: [message] })
  const framed = rpc.byteLength + varintLength(rpc.byteLength)
  const overhead = framed - data.byteLength
  const envelope = [
    `gossipsub RPC around one ${data.byteLength}-byte heartbeat: ${rpc.byteLength} bytes + ${varintLength(rpc.byteLength)}-byte length prefix = ${framed} bytes, i.e. **${overhead} bytes of pubsub overhead**: ` +
      `from ${message.from!.byteLength} (secp256k1 peer id multihash), seqno ${seqno.byteLength}, topic "${DEFAULT_TOPIC_NAME}" ${DEFAULT_TOPIC_NAME.length}, ` +
      `signature ${signature.byteLength} (DER ECDSA), key ${message.key!.byteLength} (protobuf public key), plus protobuf tags/lengths.`,
    `Per hop on the wire add (not measured, from the protocols): yamux frame header 12, noise frame 2 (length) + 16 (Poly1305 tag), pnet 0 ` +
      `(XSalsa20 stream; 24-byte nonce once per connection), TCP/IPv4 ≥ 40 → about ${framed + 12 + 18 + 40} bytes per hop for the 1 × 1 heartbeat. ` +
      `Each node forwards it once to each mesh/direct peer, so one announcement costs roughly that × the number of links in the mesh; small ` +
      `heartbeats are below gossipsub's IDONTWANT threshold, and IHAVE gossip adds message ids (from + seqno) in the 1 s gossipsub heartbeats.`
  ]
  return { rows, envelope }
}

// ---------------------------------------------------------------------------------------------------
// 3. Query cost with a 1,000-node view, in-process

interface ViewBench { lines: string[], candidatesHot: number, candidatesTypical: number }

async function viewBench (): Promise<ViewBench> {
  const rand = random(7)
  const int = (min: number, max: number): number => min + Math.floor(rand() * (max - min + 1))
  const projectNames = Array.from({ length: 20 }, (_, i) => `project-${String(i).padStart(2, '0')}`)
  const modelNames = Array.from({ length: 50 }, (_, i) => `model-${String(i).padStart(2, '0')}`)
  const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)]!

  log(`generating ${VIEW_NODES} secp256k1 peer ids`)
  const ids: string[] = []
  for (let i = 0; i < VIEW_NODES; i++) ids.push(peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString())
  const self = peerIdFromString(ids[0]!)

  const now = Date.now()
  const view = new NetworkView({ routingFreshMs: 24 * 3600_000 })
  for (const nodeId of ids) {
    // Every node serves the "hot" model (the worst case for one query: 1,000 candidates) and 1–3 of 20
    // other projects with 1–5 of 50 models (about 5 candidates per query: the typical case).
    const projects: ViewProject[] = [{ project: 'Hot', models: [{ model: 'hot', cid: '', type: 0, busy: int(0, 9), available: rand() < 0.9 }] }]
    const chosen = new Set<string>()
    const want = int(1, 3)
    for (let tries = 0; chosen.size < want && tries < 100; tries++) chosen.add(pick(projectNames))
    for (const project of chosen) {
      const models = new Set<string>()
      const wantModels = int(1, 5)
      for (let tries = 0; models.size < wantModels && tries < 100; tries++) models.add(pick(modelNames))
      projects.push({ project, models: [...models].map((model) => ({ model, cid: '', type: 0, busy: int(0, 9), available: rand() < 0.9 })) })
    }
    const entry: NodeEntry = { nodeId, projects, nodeType: 0x04, version: AGENT_VERSION, lastHeard: now - int(0, 60_000) }
    view.update(entry)
  }

  // The real NetworkRegistry, with the libp2p parts it touches stubbed: no node is connected (the real
  // getConnections is a map lookup as well) and a quarter of the nodes have a measured latency.
  const latencies = new Map(ids.filter(() => rand() < 0.25).map((id) => [id, 1 + rand() * 50]))
  const host = { peerId: self, getConnections: () => [] } as unknown as Host
  const latency = { latencyMs: (id: string) => latencies.get(id) } as unknown as LatencyTracker
  const rpc = { handle: () => {} } as unknown as RpcService
  const local = { projects: () => [] } as unknown as LocalRegistry
  // Built outside the call so that the extra `queries` (newer NetworkRegistry versions) is no excess property.
  const deps = { host, view, local, rpc, latency, queries: rpc }
  const network = new NetworkRegistry(deps as ConstructorParameters<typeof NetworkRegistry>[0])

  const typical = Array.from({ length: VIEW_CALLS + VIEW_WARMUP }, () => ({ project: pick(projectNames), model: pick(modelNames) }))
  const candidatesHot = view.candidates('Hot', 'hot').length
  let found = 0
  for (const q of typical) found += view.candidates(q.project, q.model).length
  const candidatesTypical = found / typical.length

  // Bounded by count and by time: a slow case stops early (the calls made are reported).
  const time = (calls: number, run: (i: number) => unknown): Summary => {
    const until = performance.now() + MEASURE_BUDGET_MS
    for (let i = 0; i < Math.min(VIEW_WARMUP, calls) && performance.now() < until; i++) run(i)
    const samples: number[] = []
    for (let i = 0; i < calls && (i < MIN_CALLS || performance.now() < until); i++) {
      const start = process.hrtime.bigint()
      run(i)
      samples.push(Number(process.hrtime.bigint() - start) / 1000)
    }
    return summarize(samples)
  }
  const parseId = time(VIEW_CALLS, (i) => peerIdFromString(ids[i % ids.length]!))
  const hotCandidates = time(VIEW_CALLS, () => view.candidates('Hot', 'hot'))
  const hotRanked = time(VIEW_CALLS, () => network.rank(view.candidates('Hot', 'hot')).slice(0, 20))
  const typCandidates = time(VIEW_CALLS, (i) => view.candidates(typical[i]!.project, typical[i]!.model))
  const typRanked = time(VIEW_CALLS, (i) => network.rank(view.candidates(typical[i]!.project, typical[i]!.model)).slice(0, 20))

  // The real HTTP server with the real registry routes, on 127.0.0.1, serving that view.
  inProcessHttp = new HttpServer({ routes: registryRoutes(local, network), logger: silentLogger, registry: new Registry() })
  const { url } = await inProcessHttp.listen('127.0.0.1:0')
  const post = async (path: string, body: unknown): Promise<number> => {
    const start = performance.now()
    const response = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5_000) })
    const text = await response.text()
    if (response.status !== 200) throw new Error(`${path} answered ${response.status}: ${text.slice(0, 200)}`)
    return (performance.now() - start) * 1000
  }
  const timeHttp = async (path: string, body: (i: number) => unknown): Promise<Summary> => {
    const until = performance.now() + MEASURE_BUDGET_MS
    for (let i = 0; i < HTTP_WARMUP && performance.now() < until; i++) await post(path, body(i))
    const samples: number[] = []
    for (let i = 0; i < HTTP_CALLS && (i < MIN_CALLS || performance.now() < until); i++) samples.push(await post(path, body(i)))
    return summarize(samples)
  }
  const httpHot20 = await timeHttp('/api/v0/ai/projects/peers', () => ({ project: 'Hot', model: 'hot' }))
  const httpHot100 = await timeHttp('/api/v0/ai/projects/peers?number=100', () => ({ project: 'Hot', model: 'hot' }))
  const httpTypical = await timeHttp('/api/v0/ai/projects/peers', (i) => typical[i % typical.length])
  const httpEmpty = await timeHttp('/api/v0/ai/projects/peers', () => ({ project: 'Nobody', model: 'nothing' }))
  await inProcessHttp.close(100)
  inProcessHttp = undefined

  const row = (what: string, s: Summary): string => `| ${what} | ${us(s.median)} / ${us(s.p99)} | ${s.n.toLocaleString('en')} |`
  const lines = [
    `| ${VIEW_NODES.toLocaleString('en')}-node view, in-process | µs median / p99 | calls |`,
    '|---|---|---|',
    row('peerIdFromString() of one secp256k1 peer id (what rank() no longer does per candidate)', parseId),
    row(`candidates("hot") (${candidatesHot} candidates)`, hotCandidates),
    row('candidates("hot") + rank() + slice(20)', hotRanked),
    row(`candidates(typical) (${candidatesTypical.toFixed(1)} candidates on average)`, typCandidates),
    row('candidates(typical) + rank() + slice(20)', typRanked),
    row('HTTP POST ai/projects/peers "hot" (20 returned)', httpHot20),
    row('HTTP POST ai/projects/peers?number=100 "hot" (100 returned)', httpHot100),
    row('HTTP POST ai/projects/peers typical', httpTypical),
    row('HTTP POST ai/projects/peers, unknown model (0 returned)', httpEmpty)
  ]
  return { lines, candidatesHot, candidatesTypical }
}

// ---------------------------------------------------------------------------------------------------
// 1 and 4. Real daemons

type Router = 'gossipsub' | 'floodsub'

interface NetworkResult {
  size: number
  router: Router
  startSeconds: number
  converged: boolean
  convergeSeconds: number
  /** how many nodes (itself included) each node's /api/v0/peers listed when convergence ended */
  heard: number[]
  connections: Summary
  /** the first few distinct poll errors */
  errorSamples: string[]
  register: number[]
  spread: number[]
  perNode: number[]
  /** per round: how many of the other nodes listed the model within the timeout */
  reached: number[]
  unregister: number[]
  gone: number[]
  pollErrors: number
  polls: number
  daemonHttp: Summary
  rssInputMb: number
  rssWorkersMb: Summary
}

async function runNetwork (size: number, router: Router, modelUrl: string): Promise<NetworkResult> {
  const name = `${router} ${size}`
  const edit = (config: any): void => { config.Pubsub.Router = router }
  const started = performance.now()
  log(`${name}: starting the input node`)
  const net: TestNode[] = []
  try {
    const { inputs: [input] } = await startNetwork({ name, size, inputs: 1, psk: PSK, edit, batch: START_BATCH, timeoutMs: START_TIMEOUT_MS }, net)
    const startSeconds = (performance.now() - started) / 1000

    // Every node should hear every other before anything is measured; if that does not happen in time,
    // say so, keep the diagnostics and measure what spreads anyway (fewer rounds).
    const { converged, seconds: convergeSeconds, heard } = await waitAllHearAll(net, name, CONVERGE_TIMEOUT_MS)
    if (converged) {
      log(`${name}: converged in ${convergeSeconds.toFixed(1)} s; settling ${SETTLE_MS} ms`)
    } else {
      log(`${name}: NOT CONVERGED — gave up after ${CONVERGE_TIMEOUT_MS / 1000} s; /api/v0/peers lengths (input node first): ${heard.join(',')}`)
    }
    await sleep(SETTLE_MS)
    const connections = summarize(await Promise.all(net.map(async (n) => ((await call(n, '/api/v0/swarm/peers', undefined, 5_000)).body as unknown[]).length)))

    // 1. Register → listed everywhere, unregister → gone everywhere.
    const workers = net.slice(1)
    const result = { register: [] as number[], spread: [] as number[], perNode: [] as number[], reached: [] as number[], unregister: [] as number[], gone: [] as number[] }
    const counters = { errors: 0, polls: 0, samples: new Set<string>() }
    const rounds = converged ? ROUNDS : Math.min(ROUNDS, 3)
    for (let round = 0; round < rounds; round++) {
      const node = workers[round % workers.length]!
      const others = net.filter((n) => n !== node)
      const model = `spread-${router}-${size}-${round}`

      const sent = performance.now()
      const reg = await call(node, '/api/v0/ai/model/register', { project: PROJECT, model, api: `${modelUrl}/v1/chat/completions` }, 10_000)
      const registered = performance.now()
      if (reg.status !== 200 || reg.body.code !== 0) throw new Error(`register answered ${reg.status} ${JSON.stringify(reg.body)}`)
      result.register.push(registered - sent)
      const arrivals = await Promise.all(others.map(async (n) => await pollListed(n, PROJECT, model, node.peerId, true, registered, registered + SPREAD_TIMEOUT_MS, counters, POLL_MS)))
      const arrived = arrivals.filter((a): a is number => a !== undefined)
      result.perNode.push(...arrived)
      result.reached.push(arrived.length)
      if (arrived.length === others.length) result.spread.push(Math.max(...arrived))

      const unsent = performance.now()
      const unreg = await call(node, '/api/v0/ai/model/unregister', { project: PROJECT, model }, 10_000)
      const unregistered = performance.now()
      if (unreg.status !== 200 || unreg.body.message !== 'ok') throw new Error(`unregister answered ${unreg.status} ${JSON.stringify(unreg.body)}`)
      result.unregister.push(unregistered - unsent)
      // Only the nodes that listed it can lose it.
      const listed = others.filter((_, i) => arrivals[i] !== undefined)
      const departures = await Promise.all(listed.map(async (n) => await pollListed(n, PROJECT, model, node.peerId, false, unregistered, unregistered + SPREAD_TIMEOUT_MS, counters, POLL_MS)))
      if (listed.length > 0 && departures.every((d) => d !== undefined)) result.gone.push(Math.max(...(departures as number[])))
      const missingGone = departures.filter((d) => d === undefined).length
      log(`${name}, round ${round}: listed by ${arrived.length}/${others.length}` +
        (arrived.length > 0 ? ` (last after ${ms(Math.max(...arrived))} ms)` : '') +
        (listed.length > 0 ? `; gone from ${listed.length - missingGone}/${listed.length}` + (missingGone === 0 ? ` (last after ${ms(result.gone.at(-1)!)} ms)` : '') : ''))
      await sleep(PAUSE_BETWEEN_ROUNDS_MS + Math.floor(Math.random() * 1000))
    }

    // 3 (daemon side). The same HTTP query on a real daemon, nothing else polling: the input node asked
    // for a model it serves itself (its own entry is in its view whatever the gossip does).
    const keep = await call(input!, '/api/v0/ai/model/register', { project: PROJECT, model: 'rtt', api: `${modelUrl}/v1/chat/completions` }, 10_000)
    if (keep.body?.code !== 0) throw new Error(`register answered ${JSON.stringify(keep.body)}`)
    const samples: number[] = []
    for (let i = 0; i < DAEMON_HTTP_CALLS + HTTP_WARMUP; i++) {
      const start = performance.now()
      const r = await call(input!, '/api/v0/ai/projects/peers', { project: PROJECT, model: 'rtt' })
      if (r.status !== 200 || r.body.data.length !== 1) throw new Error(`peers answered ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`)
      if (i >= HTTP_WARMUP) samples.push((performance.now() - start) * 1000)
    }

    // 4. Memory at the end.
    const rss = await Promise.all(net.map(async (n) => await rssMb(n.pid)))
    return {
      size,
      router,
      startSeconds,
      converged,
      convergeSeconds,
      heard,
      connections,
      errorSamples: [...counters.samples],
      ...result,
      pollErrors: counters.errors,
      polls: counters.polls,
      daemonHttp: summarize(samples),
      rssInputMb: rss[0]!,
      rssWorkersMb: summarize(rss.slice(1))
    }
  } finally {
    log(`${name}: stopping ${net.length} daemons`)
    await destroyAll(net)
  }
}

// ---------------------------------------------------------------------------------------------------
// Main

async function main (): Promise<void> {
  const loadBefore = await loadAverage()
  log('heartbeat sizes')
  const sizes = await heartbeatSizes()
  log(`in-process query cost with a ${VIEW_NODES}-node view`)
  const viewResult = args['skip-view'] ? { lines: ['(skipped: --skip-view)'] } : await viewBench()

  fakeModel = await startFakeModelServer()
  const networks: NetworkResult[] = []
  for (const router of ROUTERS) {
    for (const size of SIZES) {
      try {
        networks.push(await runNetwork(size, router, fakeModel.url))
      } catch (err) {
        log(`${router} ${size} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
        process.exitCode = 1
      }
    }
  }
  const loadAfter = await loadAverage()

  const s = (xs: number[]): Summary => summarize(xs)
  const lines: string[] = []
  const cores = await cpuCount()
  lines.push(`Node ${process.version}, ${cores} cores, load average ${loadBefore} before and ${loadAfter} after the run.`, '')
  lines.push('### Spread of a registration (ms after the register/unregister call returned)', '')
  lines.push('| router | nodes | all hear all | connections per node min / med / max | register call med | listed everywhere: median / p90 / max | any one node listed: median / p90 | reached (of others) min | unregister call med | gone everywhere: median / p90 / max | poll errors |')
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of networks) {
    const spread = s(r.spread)
    const perNode = s(r.perNode)
    const gone = s(r.gone)
    const convergence = r.converged ? `yes, ${r.convergeSeconds.toFixed(1)} s` : `**no** after ${r.convergeSeconds.toFixed(0)} s (heard: ${r.heard.join(',')})`
    lines.push(`| ${r.router} | ${r.size} | ${convergence} | ${r.connections.min} / ${r.connections.median} / ${r.connections.max} | ${ms(s(r.register).median)} | ${ms(spread.median)} / ${ms(spread.p90)} / ${ms(spread.max)} (n=${spread.n} of ${r.reached.length}) | ${ms(perNode.median)} / ${ms(perNode.p90)} | ${Math.min(...r.reached)} of ${r.size - 1} | ${ms(s(r.unregister).median)} | ${ms(gone.median)} / ${ms(gone.p90)} / ${ms(gone.max)} (n=${gone.n}) | ${r.pollErrors} of ${r.polls.toLocaleString('en')} |`)
  }
  for (const r of networks) if (r.errorSamples.length > 0) lines.push('', `Poll errors in ${r.router} ${r.size}: ${r.errorSamples.map((e) => `\`${e}\``).join('; ')}`)
  lines.push('', '### Heartbeat size (encodeHeartbeat, secp256k1 node id, version "' + AGENT_VERSION + '")', '')
  lines.push('| heartbeat | bytes |', '|---|---|')
  for (const row of sizes.rows) lines.push(`| ${row.what} | ${row.bytes} |`)
  lines.push('', ...sizes.envelope.map((l) => `- ${l}`))
  lines.push('', '### `ai/projects/peers` cost', '')
  lines.push(...viewResult.lines)
  lines.push('', '| real daemon, small view | µs median / p99 | calls |', '|---|---|---|')
  for (const r of networks) lines.push(`| HTTP POST ai/projects/peers on the input node, ${r.router} ${r.size}-node network (1 candidate: itself) | ${us(r.daemonHttp.median)} / ${us(r.daemonHttp.p99)} | ${r.daemonHttp.n.toLocaleString('en')} |`)
  lines.push('', '### Daemon memory at the end (VmRSS, MB)', '')
  lines.push('| router | nodes | input node | workers min / median / max |', '|---|---|---|---|')
  for (const r of networks) lines.push(`| ${r.router} | ${r.size} | ${r.rssInputMb.toFixed(0)} | ${r.rssWorkersMb.min.toFixed(0)} / ${r.rssWorkersMb.median.toFixed(0)} / ${r.rssWorkersMb.max.toFixed(0)} |`)
  process.stdout.write(lines.join('\n') + '\n')
  process.stdout.write('\nRaw samples (ms):\n' + JSON.stringify(networks.map((r) => ({ router: r.router, size: r.size, spread: r.spread.map(Math.round), gone: r.gone.map(Math.round), reached: r.reached, register: r.register.map(Math.round) }))) + '\n')
}

// The temp root (TMPDIR for every daemon), cleanup on exit/signals and the watchdog: ./network.ts.
await runBench('aicn-bench-spread-', WATCHDOG_MS, main)
