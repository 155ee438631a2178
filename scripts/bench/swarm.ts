// Swarm simulator: one real input node (a daemon started through the CLI by test/integration/harness.ts)
// against N simulated workers (./swarm-peer.ts), many per process (./swarm-child.ts), so that 500–1,000
// peers fit on 2 cores. Measures what an input node pays for its peers.
//
//   npm run build && node dist/scripts/bench/swarm.js --peers N [--procs 2] [--rounds 3] [--rest-seconds 30]
//        [--jobs 1000] [--job-seconds 30] [--concurrency 16] [--heartbeat 180s] [--answer-joins auto|true|false]
//        [--join-seconds 300] [--converge-seconds 180] [--profile DIR] [--rest-profile DIR]
// --rest-profile: a CPU profile of the input node over the rest window only, through its inspector; run
// as `node --experimental-websocket dist/scripts/bench/swarm.js … --rest-profile DIR` on Node 20.
//
// Phases: (1) the N peers join (each from its own 127.1.x.y address: libp2p refuses more than 5 new
// connections a second per address; at most 8 dials in flight in all: libp2p's maxIncomingPendingConnections
// is 10), then the run waits until the input node's /api/v0/peers lists N + 1 nodes and every simulated
// peer has heard every other (the join rule of src/protocols/heartbeat/heartbeats.ts makes that happen); the input
// node's CPU over the joins is reported. (2) 10 s settle, then --rest-seconds at rest: the input node's CPU
// (/proc/<pid>/stat) and RSS. (3) --rounds spread rounds: a simulated peer announces a new model; the time
// until the input node lists it (/api/v0/ai/projects/peers polled every 10 ms) and until each other
// simulated peer received it. (4) proxied jobs through the input node's /api/v0/chat/completion/proxy
// (non-stream chat) at --concurrency, at most --jobs requests and --job-seconds.
// The input node's config: Swarm.ConnMgr.HighWater raised to N + 100 (the default 400 would refuse peers
// past it); everything else is the `aicn init input` default (180 s heartbeat interval).
// The last line: `swarm: peers=N spread_p50_ms=… spread_max_ms=… input_idle_cpu_pct=… input_rss_mb=… jobs_per_s=…`.
import '../../src/core/polyfill.ts'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdir, readdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { AGENT_VERSION } from '../../src/core/version.ts'
import { call, closedLoop, cpuMs, loadAverage, log, onCleanup, pollListed, runBench, scrapeMetrics, startBatch, summarize, sumSeries } from './network.ts'
import { MESSAGES, REPLY, intArg, rssMb } from './lib.ts'
import type { ChildCommand, ChildStart } from './swarm-child.ts'
import { topFunctions } from './profile-top.ts'
import { inspectorUrl, startProfile } from './inspector-profile.ts'

const { values: args } = parseArgs({
  options: {
    peers: { type: 'string', default: '100' },
    procs: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    'rest-seconds': { type: 'string', default: '30' },
    jobs: { type: 'string', default: '1000' },
    'job-seconds': { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '16' },
    heartbeat: { type: 'string', default: '180s' },
    'answer-joins': { type: 'string', default: 'auto' },
    'join-seconds': { type: 'string', default: '300' },
    'converge-seconds': { type: 'string', default: '180' },
    profile: { type: 'string' },
    'rest-profile': { type: 'string' }
  }
})
const PEERS = intArg(args.peers, 100, 'peers', 2000)
const PROCS = intArg(args.procs, 2, 'procs', 16)
const ROUNDS = intArg(args.rounds, 3, 'rounds', 50)
const REST_MS = intArg(args['rest-seconds'], 30, 'rest-seconds', 600) * 1000
const JOBS = intArg(args.jobs, 1000, 'jobs', 100_000)
const JOB_MS = intArg(args['job-seconds'], 30, 'job-seconds', 600) * 1000
const CONCURRENCY = intArg(args.concurrency, 16, 'concurrency', 256)
const JOIN_MS = intArg(args['join-seconds'], 300, 'join-seconds', 3600) * 1000
const CONVERGE_MS = intArg(args['converge-seconds'], 180, 'converge-seconds', 3600) * 1000
const ANSWER_JOINS = args['answer-joins'] === 'auto' ? 'auto' : args['answer-joins'] !== 'false'
const PSK = 'c5'.repeat(32)
const PROJECTS = [{ project: 'SwarmP0', model: 'SwarmM0' }, { project: 'SwarmP1', model: 'SwarmM1' }, { project: 'SwarmP2', model: 'SwarmM2' }]
const ROUND_MS = 10_000
const ANSWER = JSON.stringify({
  id: 'chatcmpl-swarm',
  object: 'chat.completion',
  created: 0,
  model: PROJECTS[0]!.model,
  choices: [{ index: 0, message: { role: 'assistant', content: REPLY }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 20, total_tokens: 21 }
})

/** A simulated-worker process and its pending IPC calls. */
class Child {
  readonly proc: ChildProcess
  private nextId = 1
  private readonly pending = new Map<number, (body: any) => void>()
  readonly started: Promise<number>

  constructor () {
    this.proc = fork(fileURLToPath(new URL('./swarm-child.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let resolveStarted!: (n: number) => void
    this.started = new Promise((resolve) => { resolveStarted = resolve })
    this.proc.on('message', (m: any) => {
      if (m.error !== undefined) log(`child ${this.proc.pid}: ${String(m.error).slice(0, 500)}`)
      if (m.id === 0) { if (m.started !== undefined) resolveStarted(m.started); return }
      this.pending.get(m.id)?.(m)
      this.pending.delete(m.id)
    })
  }

  send (command: ChildStart): void { this.proc.send(command) }

  async call (command: Record<string, unknown> & { type: ChildCommand['type'] }, timeoutMs = JOIN_MS + 60_000): Promise<any> {
    const id = this.nextId++
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`child: ${command.type} timed out`)) }, timeoutMs)
      this.pending.set(id, (body) => { clearTimeout(timer); resolve(body) })
      this.proc.send({ ...command, id })
    })
  }
}

const sum = (statuses: any[], key: string): number => statuses.reduce((s, c) => s + Number(c[key] ?? 0), 0)
const q = (x: number): string => Number.isFinite(x) ? x.toFixed(0) : '–'

const FORWARD_KINDS = ['first', 'changed', 'leaving', 'refreshes', 'refreshes_to_all', 'sends_skipped']

/** The input node's aicn_heartbeat_forward_<kind>_total counters (src/protocols/heartbeat/refresh-forwarding.ts). */
async function forwardingCounts (node: Parameters<typeof scrapeMetrics>[0]): Promise<Map<string, number>> {
  const series = await scrapeMetrics(node)
  return new Map(FORWARD_KINDS.map((k) => [k, sumSeries(series, `aicn_heartbeat_forward_${k}_total`)]))
}

async function main (): Promise<void> {
  const out: string[] = [`swarm: ${PEERS} simulated peers in ${PROCS} processes; answer joins ${ANSWER_JOINS}; load average before: ${await loadAverage()}`]
  const profileDir = args.profile === undefined ? undefined : resolve(args.profile)
  if (profileDir !== undefined) await mkdir(profileDir, { recursive: true })
  const restProfileDir = args['rest-profile'] === undefined ? undefined : resolve(args['rest-profile'])
  if (restProfileDir !== undefined) await mkdir(restProfileDir, { recursive: true })
  const [input] = await startBatch(1, {
    mode: 'input',
    psk: PSK,
    // --profile: the input node runs with --cpu-prof; it is stopped with SIGTERM at the end so that Node
    // writes the profile, and the top functions are printed (the whole run: joins, rest, spread, jobs).
    nodeArgs: profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : restProfileDir !== undefined ? ['--inspect=127.0.0.1:0'] : undefined,
    edit: (config: any) => {
      config.App.PeersCollect.HeartbeatInterval = args.heartbeat
      config.Swarm.ConnMgr.HighWater = Math.max(config.Swarm.ConnMgr.HighWater, PEERS + 100)
    }
  })
  const node = input!
  const config = JSON.parse(await readFile(node.configPath, 'utf8'))
  const inputAddr = await node.addr()
  const pid = node.pid
  log(`input node ${node.peerId} at ${inputAddr}; RSS ${rssMb(pid).toFixed(0)} MB`)

  const children = Array.from({ length: PROCS }, () => new Child())
  onCleanup(async () => { for (const c of children) { try { c.proc.kill('SIGKILL') } catch {} } })
  const per = Math.ceil(PEERS / PROCS)
  children.forEach((c, k) => {
    c.send({
      type: 'start',
      from: k * per,
      to: Math.min(PEERS, (k + 1) * per),
      settings: { psk: PSK, topic: config.App.TopicName, inputAddr, intervalMs: 180_000, answerJoins: ANSWER_JOINS, answer: ANSWER, version: AGENT_VERSION },
      projects: PROJECTS,
      dialConcurrency: Math.max(1, Math.floor(8 / PROCS)),
      joinTimeoutMs: JOIN_MS
    })
  })
  // The heartbeat interval the simulated peers announce and keep: the daemon's.
  if (args.heartbeat !== '180s') log('note: simulated peers keep a 180 s interval whatever --heartbeat says')
  await Promise.all(children.map(async (c) => await c.started))
  log(`${PEERS} simulated peers created`)

  // (1) Joins.
  const cpu0 = cpuMs(pid)
  const t0 = performance.now()
  const joins = await Promise.all(children.map(async (c) => await c.call({ type: 'join' })))
  const joined = joins.reduce((s, j) => s + j.joined, 0)
  const joinSeconds = (performance.now() - t0) / 1000
  log(`${joined} of ${PEERS} joined in ${joinSeconds.toFixed(1)} s (${joins.reduce((s, j) => s + j.attempts, 0)} dials)`)
  let converged = false
  let inputHears = 0
  let minKnown = 0
  const convergeDeadline = performance.now() + CONVERGE_MS
  let lastLog = performance.now()
  while (performance.now() < convergeDeadline) {
    try { inputHears = ((await call(node, '/api/v0/peers', undefined, 10_000)).body.data as string[]).length } catch {}
    const statuses = await Promise.all(children.map(async (c) => await c.call({ type: 'status' })))
    minKnown = Math.min(...statuses.map((s) => s.minKnown))
    if (inputHears >= PEERS + 1 && minKnown >= PEERS + 1) { converged = true; break }
    if (performance.now() - lastLog > 10_000) { log(`input hears ${inputHears} of ${PEERS + 1}; every peer knows at least ${minKnown}; ${statuses.reduce((s, c) => s + c.knowInput, 0)} peers know the input node`); lastLog = performance.now() }
    await sleep(250)
  }
  const convergeSeconds = (performance.now() - t0) / 1000
  if (!converged) {
    // What the input node sees, to tell a refused connection from a silent pubsub.
    const count = async (path: string): Promise<string> => { try { const b = (await call(node, path, undefined, 10_000)).body; return String(Array.isArray(b) ? b.length : JSON.stringify(b).slice(0, 300)) } catch (err) { return (err as Error).message } }
    log(`input: swarm/peers ${await count('/api/v0/swarm/peers')}, pubsub/peers ${await count('/api/v0/pubsub/peers')}; log tail: ${node.output.slice(-3000)}`)
  }
  const joinCpuMs = cpuMs(pid) - cpu0
  const afterJoin = await Promise.all(children.map(async (c) => await c.call({ type: 'status' })))
  out.push(`joins: ${joined} of ${PEERS} connected in ${joinSeconds.toFixed(1)} s; ${converged ? 'all hear all' : 'NOT all hear all'} after ${convergeSeconds.toFixed(1)} s (input hears ${inputHears} of ${PEERS + 1}, every peer knows at least ${minKnown}); ` +
    `input CPU over the joins ${(joinCpuMs / 1000).toFixed(1)} s; heartbeats published by the peers ${afterJoin.reduce((s, c) => s + c.published, 0)}, messages they received ${afterJoin.reduce((s, c) => s + c.received, 0)}; connections lost (and redialled after 30 s) ${afterJoin.reduce((s, c) => s + c.disconnects, 0)}; view-sync entries received ${afterJoin.reduce((s, c) => s + c.synced, 0)} (failed syncs ${afterJoin.reduce((s, c) => s + c.syncErrors, 0)})${afterJoin.some((c) => c.inputWithoutSync) ? ' (the input node does not speak view sync: peers answer joins)' : ''}`)

  // (2) Idle.
  await sleep(10_000)
  const before = await Promise.all(children.map(async (c) => await c.call({ type: 'status' })))
  const forwardedBefore = await forwardingCounts(node)
  const inspector = restProfileDir === undefined ? undefined : inspectorUrl(node.output)
  if (restProfileDir !== undefined && inspector === undefined) log('--rest-profile: the input node printed no inspector URL')
  const stopProfile = inspector === undefined ? undefined : await startProfile(inspector, join(restProfileDir!, `rest-${PEERS}.cpuprofile`))
  const idle0 = cpuMs(pid)
  const i0 = performance.now()
  await sleep(REST_MS)
  const idleMs = cpuMs(pid) - idle0
  const idleSecs = (performance.now() - i0) / 1000
  const after = await Promise.all(children.map(async (c) => await c.call({ type: 'status' })))
  const forwardedAfter = await forwardingCounts(node)
  const idlePct = idleMs / idleSecs / 10
  if (stopProfile !== undefined) {
    await stopProfile()
    out.push(`profile of the input node at rest (${join(restProfileDir!, `rest-${PEERS}.cpuprofile`)}):`, ...(await topFunctions(join(restProfileDir!, `rest-${PEERS}.cpuprofile`), 25)))
  }
  const inputRss = rssMb(pid)
  const simCpuPct = (after.reduce((s, c) => s + c.cpuMs, 0) - before.reduce((s, c) => s + c.cpuMs, 0)) / idleSecs / 10
  out.push(`idle (${idleSecs.toFixed(0)} s): input node ${idlePct.toFixed(2)} % of a core (${(idleMs / idleSecs).toFixed(1)} ms/s, ${(idleMs / idleSecs / PEERS).toFixed(3)} ms/s per peer), RSS ${inputRss.toFixed(0)} MB; ` +
    `simulated peers ${simCpuPct.toFixed(1)} % of a core in all, RSS ${after.map((c) => c.rssMb.toFixed(0)).join(' + ')} MB; prunes seen ${after.reduce((s, c) => s + c.prunes, 0)}; ` +
    // What the input node sent at rest: every message a simulated peer received came from it (the peers
    // are connected only to the input node), against the heartbeats the peers published meanwhile.
    `at rest the peers published ${sum(after, 'published') - sum(before, 'published')} heartbeats and received ${sum(after, 'received') - sum(before, 'received')} messages`)
  // Why the input node still sent what it sent: its forwarding by kind over the same window.
  out.push(`heartbeats the input node forwarded at rest, by kind (aicn_heartbeat_forward_*): ${FORWARD_KINDS.map((k) => `${k} ${(forwardedAfter.get(k) ?? 0) - (forwardedBefore.get(k) ?? 0)}`).join(', ')}`)

  // (3) Spread rounds.
  const p50s: number[] = []
  const maxes: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const model = `swarm-spread-${r}`
    const index = (r * 7919 + 13) % PEERS
    const owner = children[Math.floor(index / per)]!
    await Promise.all(children.map(async (c) => await c.call({ type: 'watch', model })))
    const reg = await owner.call({ type: 'register', index, model, project: 'SwarmSpread' })
    const from = reg.at - performance.timeOrigin
    const counters = { errors: 0, polls: 0, samples: new Set<string>() }
    const inputMs = await pollListed(node, 'SwarmSpread', model, reg.nodeId, true, from, from + ROUND_MS, counters, 10, 2_000)
    // Wait for the simulated peers (bounded by the round's limit).
    for (;;) {
      const heard = (await Promise.all(children.map(async (c) => await c.call({ type: 'watched', model })))).reduce((a, w) => a + (w.count ?? 0), 0)
      if (heard >= PEERS - 1 || performance.now() > from + ROUND_MS) break
      await sleep(50)
    }
    const arrivals = (await Promise.all(children.map(async (c) => await c.call({ type: 'arrivals', model })))).flatMap((a) => a.arrivals as Array<[number, number]>)
    const samples = arrivals.filter(([i]) => i !== index).map(([, at]) => at - reg.at)
    if (inputMs !== undefined) samples.push(inputMs)
    const s = summarize(samples)
    const reached = samples.length
    p50s.push(reached === PEERS ? s.median : NaN)
    maxes.push(reached === PEERS ? s.max : NaN)
    out.push(`spread round ${r + 1}: input node ${inputMs === undefined ? 'not within 10 s' : `${inputMs.toFixed(0)} ms`}; ${reached - (inputMs === undefined ? 0 : 1)} of ${PEERS - 1} peers; p50 ${q(s.median)} ms, p90 ${q(s.p90)} ms, max ${q(s.max)} ms over all ${reached} receivers`)
    await sleep(500)
  }

  // (4) Jobs.
  const send = async (): Promise<{ error?: string, node?: string }> => {
    const response = await fetch(`${node.api}/api/v0/chat/completion/proxy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ project: PROJECTS[0]!.project, model: PROJECTS[0]!.model, messages: MESSAGES }),
      signal: AbortSignal.timeout(30_000)
    })
    const text = await response.text()
    if (response.status !== 200) return { error: `HTTP ${response.status}: ${text.slice(0, 200)}` }
    try {
      const body = JSON.parse(text)
      if (body.code !== 0 || body.data?.choices?.[0]?.message?.content !== REPLY) return { error: `unexpected answer ${text.slice(0, 200)}` }
    } catch { return { error: `not JSON: ${text.slice(0, 200)}` } }
    return { node: response.headers.get('x-aicn-node') ?? undefined }
  }
  const jobCpu0 = cpuMs(pid)
  const load = await closedLoop(send, CONCURRENCY, JOBS, JOB_MS)
  const jobCpu = cpuMs(pid) - jobCpu0
  out.push(`jobs: ${load.ok} ok, ${load.errors} errors${load.firstErrors.length > 0 ? ` (${load.firstErrors[0]})` : ''} in ${load.seconds.toFixed(1)} s = ${load.rps.toFixed(0)} jobs/s at concurrency ${CONCURRENCY}; p50 ${load.latency.median.toFixed(1)} ms, p99 ${load.latency.p99.toFixed(1)} ms; ` +
    `${load.servedBy.size} peers served; input CPU ${(jobCpu / Math.max(1, load.ok)).toFixed(2)} ms per job; input RSS after ${rssMb(pid).toFixed(0)} MB`)
  // An input node that died (seen once on main at N = 500 and once at N = 1,000 under a load average of
  // 10): what it said last, where the harness kept it.
  if (!Number.isFinite(rssMb(pid))) out.push(`the input node is gone; its last output: ${node.output.slice(-3000)}`)
  out.push(`load average after: ${await loadAverage()}`)

  await Promise.all(children.map(async (c) => await c.call({ type: 'stop' }, 30_000).catch(() => {})))
  if (profileDir !== undefined) {
    await node.stop()
    for (const f of (await readdir(profileDir)).filter((f) => f.endsWith('.cpuprofile'))) out.push(`profile ${join(profileDir, f)}:`, ...(await topFunctions(join(profileDir, f), 30)))
  }
  const p50 = summarize(p50s.filter(Number.isFinite)).median
  const max = maxes.some((m) => !Number.isFinite(m)) ? NaN : Math.max(...maxes)
  out.push(`swarm: peers=${PEERS} spread_p50_ms=${q(p50)} spread_max_ms=${Number.isFinite(max) ? q(max) : 'incomplete'} input_idle_cpu_pct=${idlePct.toFixed(2)} input_rss_mb=${inputRss.toFixed(0)} jobs_per_s=${load.rps.toFixed(0)}`)
  process.stdout.write(out.join('\n') + '\n')
}

await runBench('aicn-bench-swarm-', 60 * 60_000, main)
