// Scale benchmark: what one registration, one dead worker, an idle network and one job cost as the
// network grows, on real daemons.
//
//   npm run build && node dist/scripts/bench/scale.js [--nodes 5,20,50] [--rest-seconds 60]
//        [--tput-requests 1000] [--tput-seconds 60] [--rounds 3] [--heartbeat 180s] [--busy-interval 30s]
//
// Run from dist/ (test/integration/harness.ts finds bin/aicn.js relative to its compiled location).
// Everything listens on 127.0.0.1 only. For each N: N separate daemon processes, 2 input nodes when
// N ≥ 20 (else 1; the second bootstraps to the first) and N − inputs workers bootstrapping to every input
// node, started in parallel batches of 5; one pre-shared key; `App.PeersCollect.HeartbeatInterval` =
// --heartbeat on every node (default 180s, the product's default; a node leaves routing 3 × that after it
// was last heard, or when a node directly connected to it sees it die) and, when given,
// `App.PeersCollect.BusyInterval` = --busy-interval (else the default, 30s). Worker i serves project
// i mod 3 and, for even i, also project (i + 1) mod 3 (one model each, from its config's AIProjects),
// backed by 4 fake model servers (scripts/fake-model.ts) in this process, shared round-robin.
// After every node hears every other (`/api/v0/peers`), it measures:
//   (a) registration spread: a worker registers a new model; ms from the register call's return until
//       every other node lists it in `/api/v0/ai/projects/peers` (polled every 25 ms, ≤ 20 s), --rounds times;
//   (c) gossip at rest: `libp2p_data_transfer_bytes_total` from every node's `/metrics` at t0 and
//       t0 + --rest-seconds with nothing else going on; per node per minute: pubsub protocols
//       (meshsub/floodsub streams, sent + received) and everything libp2p carried (the "global" series:
//       raw connection bytes, so pnet/noise/yamux framing, identify, DHT, pings included);
//   (d) proxied jobs: `POST /api/v0/chat/completion/proxy` (non-stream chat, project 0) on the first
//       input node, concurrency 16, ≤ --tput-requests requests / ≤ --tput-seconds after 50 warm-up
//       requests: requests/s, p50/p99 latency, errors, CPU ms the input node spent per job (/proc), both
//       gross and net of what it spends at rest (its rest-window CPU rate × the load's duration);
//   (e) VmRSS of every daemon (/proc/<pid>/status) at rest (before d) and after d: mean and max;
//   (b) leaving: one worker serving project 1 is killed with SIGKILL; s until each input node no longer
//       lists it for project 1 (polled every 100 ms, ≤ 40 s).
// Prints a human-readable log on stderr and Markdown tables on stdout for docs/benchmarks.md.
//
// Bounded: every wait has a deadline, every loop a maximum count, the whole run a watchdog. Every daemon
// lives under one temp folder removed at the end, on failure and on SIGINT/SIGTERM; daemons are killed
// by PID (see ./network.ts, shared with registry-spread.ts and soak.ts).
import '../../src/core/polyfill.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { startFakeModelServer, type FakeModelServer } from '../fake-model.ts'
import type { TestNode } from '../../test/integration/harness.ts'
import {
  call, closedLoop, cpuCount, cpuMs, destroyAll, loadAverage, log, onCleanup, pollListed, rssMb, runBench,
  scrapeMetrics, startNetwork, summarize, sumSeries, waitAllHearAll, type LoadResult, type Summary
} from './network.ts'

// ---------------------------------------------------------------------------------------------------
// Settings

const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '5,20' },
    'rest-seconds': { type: 'string', default: '60' },
    'tput-requests': { type: 'string', default: '1000' },
    'tput-seconds': { type: 'string', default: '60' },
    rounds: { type: 'string', default: '3' },
    heartbeat: { type: 'string', default: '180s' },
    'busy-interval': { type: 'string' }
  }
})
function intArg (value: string, name: string, min: number, max: number): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name}: an integer from ${min} to ${max}`)
  return n
}
const SIZES = args.nodes.split(',').map((n) => intArg(n, 'nodes', 3, 100))
const REST_MS = intArg(args['rest-seconds'], 'rest-seconds', 5, 600) * 1000
const TPUT_REQUESTS = intArg(args['tput-requests'], 'tput-requests', 1, 100_000)
const TPUT_MS = intArg(args['tput-seconds'], 'tput-seconds', 1, 600) * 1000
const ROUNDS = intArg(args.rounds, 'rounds', 1, 20)

const PSK = 'bf'.repeat(32)
const HEARTBEAT = args.heartbeat
const BUSY_INTERVAL = args['busy-interval']
const PROJECTS = ['ScaleA', 'ScaleB', 'ScaleC']
const MODELS = ['model-a', 'model-b', 'model-c']
const FRESH_PROJECT = 'ScaleFresh'
const MODEL_SERVERS = 4
const REPLY_TOKENS = Array.from({ length: 20 }, (_, i) => `tok${i} `)
const REPLY = REPLY_TOKENS.join('')
const MESSAGES = [{ role: 'user', content: 'Hello' }]
const CONCURRENCY = 16
const WARMUP = 50
const START_BATCH = 5
const CONVERGE_TIMEOUT_MS = 180_000
const SPREAD_TIMEOUT_MS = 20_000
const SPREAD_POLL_MS = 25
const LEAVE_TIMEOUT_MS = 40_000
const LEAVE_POLL_MS = 100
const REQUEST_TIMEOUT_MS = 30_000
const SETTLE_MS = 3_000
const WATCHDOG_MS = 90 * 60_000

// ---------------------------------------------------------------------------------------------------
// Pieces

const servers: FakeModelServer[] = []
onCleanup(async () => { await Promise.all(servers.map(async (s) => { await s.close() })) })

/** The projects worker `i` (counting workers from 0) serves. */
function projectsOf (i: number): number[] {
  return i % 2 === 0 ? [i % 3, (i + 1) % 3] : [i % 3]
}

/** One proxied non-stream chat through `node`; an error text unless the fake model's answer came back. */
async function proxiedChat (node: TestNode, project: number): Promise<{ error?: string, node?: string }> {
  const response = await fetch(`${node.api}/api/v0/chat/completion/proxy`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ project: PROJECTS[project], model: MODELS[project], messages: MESSAGES }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  const text = await response.text()
  if (response.status !== 200) return { error: `HTTP ${response.status}: ${text.slice(0, 200)}` }
  try {
    const body = JSON.parse(text)
    if (body.code !== 0 || body.data?.choices?.[0]?.message?.content !== REPLY) return { error: `unexpected answer ${text.slice(0, 200)}` }
  } catch { return { error: `not JSON: ${text.slice(0, 200)}` } }
  return { node: response.headers.get('x-aicn-node') ?? undefined }
}

const isPubsub = (labels: string): boolean => /meshsub|floodsub|gossipsub/.test(labels)
const isGlobal = (labels: string): boolean => labels.includes('"global ')

interface ScaleResult {
  size: number
  inputs: number
  startSeconds: number
  converged: boolean
  convergeSeconds: number
  heard: number[]
  /** per round: ms until every other node listed the new model (undefined: not all within the timeout) */
  spreadAll: Array<number | undefined>
  spreadPerNode: number[]
  spreadReached: number[]
  pollErrors: number
  restSeconds: number
  /** CPU all daemons together used at rest, in cores */
  restCores: number
  /** CPU ms per second the first input node spent at rest */
  inputRestMsPerSec: number
  pubsubPerNodeMin: Summary
  pubsubSentPerNodeMin: Summary
  globalPerNodeMin: Summary
  inputPubsubPerMin: number
  tput?: LoadResult
  inputCpuMsPerJob: number
  /** the same, less the input node's CPU rate at rest over the load's duration */
  inputNetCpuMsPerJob: number
  servedBy: number
  rssRest: Summary
  rssAfter: Summary
  rssInputs: number[]
  /** per input node: s until the killed worker was gone (undefined: not within the timeout) */
  leave: Array<number | undefined>
  killedWorker: string
  errors: string[]
}

async function runScale (size: number): Promise<ScaleResult> {
  const name = `N=${size}`
  const inputsWanted = size >= 20 ? 2 : 1
  const workerProjects = new Map<number, number[]>()
  const edit = (config: any, index: number): void => {
    config.App.PeersCollect.HeartbeatInterval = HEARTBEAT
    if (BUSY_INTERVAL !== undefined) config.App.PeersCollect.BusyInterval = BUSY_INTERVAL
    if (index < inputsWanted) return
    const w = index - inputsWanted
    const projects = projectsOf(w)
    workerProjects.set(w, projects)
    const api = `${servers[w % servers.length]!.url}/v1/chat/completions`
    config.AIProjects = projects.map((p) => ({ Project: PROJECTS[p], Models: [{ Model: MODELS[p], API: api, Type: 0, CID: '' }] }))
  }
  const errors: string[] = []
  const net: TestNode[] = []
  const started = performance.now()
  try {
    log(`${name}: starting ${inputsWanted} input node(s) and ${size - inputsWanted} workers in batches of ${START_BATCH}`)
    const { inputs, workers } = await startNetwork({ name, size, inputs: inputsWanted, psk: PSK, edit, batch: START_BATCH, timeoutMs: Math.max(180_000, size * 8_000) }, net)
    const startSeconds = (performance.now() - started) / 1000
    const { converged, seconds: convergeSeconds, heard } = await waitAllHearAll(net, name, CONVERGE_TIMEOUT_MS)
    log(converged
      ? `${name}: every node hears every other after ${convergeSeconds.toFixed(1)} s more (started in ${startSeconds.toFixed(0)} s)`
      : `${name}: NOT CONVERGED after ${convergeSeconds.toFixed(0)} s; /api/v0/peers lengths: ${heard.join(',')}`)
    await sleep(SETTLE_MS)
    // Routing sanity: the first input node lists every worker for each of its projects.
    for (let p = 0; p < PROJECTS.length; p++) {
      const expected = workers.filter((_, w) => projectsOf(w).includes(p)).length
      const listed = (await call(inputs[0]!, '/api/v0/ai/projects/peers', { project: PROJECTS[p], model: MODELS[p] }, 10_000)).body?.data?.length ?? 0
      if (listed !== expected) { errors.push(`input lists ${listed} of ${expected} workers for ${PROJECTS[p]}`); log(`${name}: ${errors.at(-1)!}`) }
    }

    // (a) Registration spread.
    const spreadAll: Array<number | undefined> = []
    const spreadPerNode: number[] = []
    const spreadReached: number[] = []
    const counters = { errors: 0, polls: 0, samples: new Set<string>() }
    for (let round = 0; round < ROUNDS; round++) {
      const node = workers[(round * 7) % workers.length]!
      const others = net.filter((n) => n !== node)
      const model = `fresh-${size}-${round}`
      const reg = await call(node, '/api/v0/ai/model/register', { project: FRESH_PROJECT, model, api: `${servers[0]!.url}/v1/chat/completions` }, 10_000)
      const registered = performance.now()
      if (reg.status !== 200 || reg.body?.code !== 0) throw new Error(`register answered ${reg.status} ${JSON.stringify(reg.body)}`)
      const arrivals = await Promise.all(others.map(async (n) => await pollListed(n, FRESH_PROJECT, model, node.peerId, true, registered, registered + SPREAD_TIMEOUT_MS, counters, SPREAD_POLL_MS)))
      const arrived = arrivals.filter((a): a is number => a !== undefined)
      spreadPerNode.push(...arrived)
      spreadReached.push(arrived.length)
      spreadAll.push(arrived.length === others.length ? Math.max(...arrived) : undefined)
      log(`${name}, spread round ${round}: listed by ${arrived.length}/${others.length}${arrived.length > 0 ? `, last after ${Math.max(...arrived).toFixed(0)} ms` : ''}`)
      await call(node, '/api/v0/ai/model/unregister', { project: FRESH_PROJECT, model }, 10_000)
      await sleep(1_000 + Math.floor(Math.random() * 1_000))
    }
    for (const sample of counters.samples) errors.push(`poll: ${sample}`)

    // (c) Gossip at rest. Let the unregister announcements pass first.
    await sleep(3_000)
    log(`${name}: ${REST_MS / 1000} s at rest`)
    const before = await Promise.all(net.map(async (n) => await scrapeMetrics(n)))
    const restCpuBefore = net.map((n) => cpuMs(n.pid))
    const restStart = performance.now()
    await sleep(REST_MS)
    const restCpuAfter = net.map((n) => cpuMs(n.pid))
    const restSeconds = (performance.now() - restStart) / 1000
    const after = await Promise.all(net.map(async (n) => await scrapeMetrics(n)))
    const restCores = net.reduce((sum, _, i) => sum + restCpuAfter[i]! - restCpuBefore[i]!, 0) / (restSeconds * 1000)
    const inputRestMsPerSec = (restCpuAfter[0]! - restCpuBefore[0]!) / restSeconds
    const perMin = (i: number, pick: (l: string) => boolean): number =>
      (sumSeries(after[i]!, 'libp2p_data_transfer_bytes_total', pick) - sumSeries(before[i]!, 'libp2p_data_transfer_bytes_total', pick)) * 60 / restSeconds
    const pubsub = net.map((_, i) => perMin(i, isPubsub))
    const pubsubSent = net.map((_, i) => perMin(i, (l) => isPubsub(l) && l.includes(' sent"')))
    const global = net.map((_, i) => perMin(i, isGlobal))
    if (sumSeries(after[0]!, 'libp2p_data_transfer_bytes_total', isPubsub) === 0) errors.push('no pubsub series in libp2p_data_transfer_bytes_total')

    // (e) Memory at rest.
    const rssRest = await Promise.all(net.map(async (n) => await rssMb(n.pid)))

    // (d) Proxied jobs through the first input node.
    const input = inputs[0]!
    log(`${name}: ${WARMUP} warm-up jobs, then ≤ ${TPUT_REQUESTS} jobs / ≤ ${TPUT_MS / 1000} s at concurrency ${CONCURRENCY}`)
    const warm = await closedLoop(async () => await proxiedChat(input, 0), CONCURRENCY, WARMUP, 30_000)
    if (warm.errors > 0) errors.push(`warm-up: ${warm.errors} errors, e.g. ${warm.firstErrors[0] ?? ''}`)
    const cpuBefore = cpuMs(input.pid)
    const tput = await closedLoop(async () => await proxiedChat(input, 0), CONCURRENCY, TPUT_REQUESTS, TPUT_MS)
    const inputCpuMs = cpuMs(input.pid) - cpuBefore
    const inputCpuMsPerJob = inputCpuMs / Math.max(1, tput.ok + tput.errors)
    const inputNetCpuMsPerJob = (inputCpuMs - inputRestMsPerSec * tput.seconds) / Math.max(1, tput.ok + tput.errors)
    log(`${name}: ${tput.ok} ok, ${tput.errors} errors, ${tput.rps.toFixed(0)}/s, p50 ${tput.latency.median.toFixed(1)} ms, p99 ${tput.latency.p99.toFixed(1)} ms, served by ${tput.servedBy.size} workers (${[...tput.servedBy.values()].sort((x, y) => y - x).join(', ')} jobs); input node ${(cpuMs(input.pid) - cpuBefore).toFixed(0)} ms CPU`)
    for (const e of tput.firstErrors) errors.push(`job: ${e}`)
    const rssAfter = await Promise.all(net.map(async (n) => await rssMb(n.pid)))

    // (b) A worker serving project 1 dies (SIGKILL); how long until the input nodes stop routing to it.
    const victimIndex = workers.findIndex((_, w) => projectsOf(w).includes(1))
    const victim = workers[victimIndex]!
    const listedBefore = await Promise.all(inputs.map(async (n) => (await call(n, '/api/v0/ai/projects/peers', { project: PROJECTS[1], model: MODELS[1] }, 10_000)).body.data.some((p: { node_id: string }) => p.node_id === victim.peerId)))
    if (listedBefore.some((l) => !l)) errors.push(`the worker to kill was not listed on every input node before: ${listedBefore.join(',')}`)
    log(`${name}: SIGKILL ${victim.peerId.slice(-8)}; polling ${inputs.length} input node(s) every ${LEAVE_POLL_MS} ms`)
    await victim.kill()
    const killed = performance.now()
    const leaveCounters = { errors: 0, polls: 0, samples: new Set<string>() }
    const leave = (await Promise.all(inputs.map(async (n) => await pollListed(n, PROJECTS[1]!, MODELS[1]!, victim.peerId, false, killed, killed + LEAVE_TIMEOUT_MS, leaveCounters, LEAVE_POLL_MS, 5_000))))
      .map((ms) => ms === undefined ? undefined : ms / 1000)
    log(`${name}: gone from the input node(s) after ${leave.map((s) => s === undefined ? 'never' : `${s.toFixed(1)} s`).join(', ')}`)

    return {
      size,
      inputs: inputs.length,
      startSeconds,
      converged,
      convergeSeconds,
      heard,
      spreadAll,
      spreadPerNode,
      spreadReached,
      pollErrors: counters.errors,
      restSeconds,
      restCores,
      pubsubPerNodeMin: summarize(pubsub),
      pubsubSentPerNodeMin: summarize(pubsubSent),
      globalPerNodeMin: summarize(global),
      inputPubsubPerMin: pubsub[0]!,
      tput,
      inputCpuMsPerJob,
      inputNetCpuMsPerJob,
      inputRestMsPerSec,
      servedBy: tput.servedBy.size,
      rssRest: summarize(rssRest.filter((x) => !Number.isNaN(x))),
      rssAfter: summarize(rssAfter.filter((x) => !Number.isNaN(x))),
      rssInputs: rssAfter.slice(0, inputs.length),
      leave,
      killedWorker: victim.peerId,
      errors
    }
  } finally {
    log(`${name}: stopping ${net.length} daemons`)
    await destroyAll(net)
  }
}

// ---------------------------------------------------------------------------------------------------
// Main

const kb = (bytes: number): string => Number.isNaN(bytes) ? '–' : (bytes / 1024).toFixed(1)
const f1 = (x: number | undefined): string => x === undefined || Number.isNaN(x) ? '–' : x.toFixed(1)
const f0 = (x: number | undefined): string => x === undefined || Number.isNaN(x) ? '–' : x.toFixed(0)

async function main (): Promise<void> {
  const loadBefore = await loadAverage()
  for (let i = 0; i < MODEL_SERVERS; i++) servers.push(await startFakeModelServer({ tokens: REPLY_TOKENS }))
  const results: ScaleResult[] = []
  for (const size of SIZES) {
    try {
      results.push(await runScale(size))
    } catch (err) {
      log(`N=${size} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
      process.exitCode = 1
    }
    for (const s of servers) s.requests.length = 0
  }
  const loadAfter = await loadAverage()

  const lines: string[] = []
  lines.push(`Node ${process.version}, ${await cpuCount()} cores, load average ${loadBefore} before and ${loadAfter} after the run; HeartbeatInterval ${HEARTBEAT}, BusyInterval ${BUSY_INTERVAL ?? 'default (30s)'}.`, '')
  lines.push('| N (inputs + workers) | started in | all hear all | (a) new registration listed everywhere, ms: per round (median per node) | (b) SIGKILLed worker gone from input routing, s | (c) pubsub KB/node/min at rest: mean (min–max); input node | (c) all libp2p KB/node/min at rest: mean (max) | (d) proxied jobs/s, c=16 | (d) p50 / p99 ms | (d) input CPU ms/job: gross / net of rest | (e) RSS MB/node at rest: mean / max | (e) after jobs: mean / max |')
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of results) {
    const spread = r.spreadAll.map((x, i) => x === undefined ? `not all (${r.spreadReached[i]} of ${r.size - 1})` : f0(x)).join(', ')
    const leave = r.leave.map((s) => s === undefined ? `**not within ${LEAVE_TIMEOUT_MS / 1000} s**` : f1(s)).join('; ')
    const t = r.tput
    lines.push(`| ${r.size} (${r.inputs} + ${r.size - r.inputs}) | ${f0(r.startSeconds)} s | ${r.converged ? `yes, +${f1(r.convergeSeconds)} s` : `**no** (${r.heard.join(',')})`} | ${spread} (${f0(summarize(r.spreadPerNode).median)}) | ${leave} | ${kb(r.pubsubPerNodeMin.mean)} (${kb(r.pubsubPerNodeMin.min)}–${kb(r.pubsubPerNodeMin.max)}); ${kb(r.inputPubsubPerMin)} | ${kb(r.globalPerNodeMin.mean)} (${kb(r.globalPerNodeMin.max)}) | ${t === undefined ? '–' : `${f0(t.rps)} (${t.ok} ok, ${t.errors} err, ${r.servedBy} workers served)`} | ${t === undefined ? '–' : `${f1(t.latency.median)} / ${f1(t.latency.p99)}`} | ${f1(r.inputCpuMsPerJob)} / ${f1(r.inputNetCpuMsPerJob)} | ${f0(r.rssRest.mean)} / ${f0(r.rssRest.max)} | ${f0(r.rssAfter.mean)} / ${f0(r.rssAfter.max)} |`)
  }
  for (const r of results) {
    lines.push('', `N=${r.size}: pubsub bytes sent per node per minute ${kb(r.pubsubSentPerNodeMin.mean)} KB mean; rest window ${r.restSeconds.toFixed(0)} s, all daemons together used ${r.restCores.toFixed(2)} cores at rest, the first input node ${f1(r.inputRestMsPerSec)} ms/s; input node(s) RSS after jobs ${r.rssInputs.map(f0).join(', ')} MB; spread poll errors ${r.pollErrors}; per-node spread ms median / p90 / max ${f0(summarize(r.spreadPerNode).median)} / ${f0(summarize(r.spreadPerNode).p90)} / ${f0(summarize(r.spreadPerNode).max)}.`)
    if (r.errors.length > 0) lines.push(`N=${r.size} problems: ${r.errors.map((e) => `\`${e.replaceAll('`', "'")}\``).join('; ')}`)
  }
  process.stdout.write(lines.join('\n') + '\n')
}

await runBench('aicn-bench-scale-', WATCHDOG_MS, main)
