// Benchmark of the OpenAI-compatible gateway's overhead (issue 5): POST /v1/chat/completions on real
// daemons, side by side with the same request sent straight to the fake model.
//
//   npm run build && node dist/scripts/bench/gateway.js [--quick] [--requests 2000] [--warmup 200]
//        [--cpu-requests 1000] [--concurrency 64] [--tput-requests 2000] [--tput-seconds 60]
//
// Run from dist/ (test/integration/harness.ts finds bin/aicn.js relative to its compiled location).
// Everything listens on 127.0.0.1 only. The network: an input node B (`Gateway.RequireKeys: always`) and a
// worker W1 (`RequireKeys: auto`, i.e. optional, its API being on loopback) with its own fake model server
// M1 (scripts/fake-model.ts in a process of its own: the standard workload of lib.ts, 20 tokens),
// one pre-shared key. B serves no model, so every job B's gateway takes goes to W1. Each gateway has one
// key with every limit on (requests per minute, requests at once, requests per day, a USD balance), set
// high enough never to refuse: what is measured is the cost of checking them, reserving from the balance
// and metering, not of refusing. The client is this process, with a keep-alive undici Agent so that
// connection setup is never measured. The paths:
//   (a)  direct: M1's /v1/chat/completions
//   (b)  W1's own gateway with W1's key: auth, limits, balance reservation, routing, W1's local executor
//        (the model is served by W1 itself: the gateway's own work without a network hop), metering
//   (b1) W1's own gateway with a key that has only rpm and concurrency (in memory): no balance, no daily
//        count (each a LevelDB write on the request path, the balance's with sync)
//   (b0) W1's own gateway without a key (keys optional): no auth, limits or balance; usage still recorded
//   (c)  B's gateway with B's key: the same gateway work on B, plus one libp2p hop B → W1
// What it measures:
//   1. Sequential latency, the five paths interleaved request by request (--warmup, then --requests each).
//   2. CPU time per request of every process (/proc/<pid>/stat), each path alone, sequential.
//   3. At a fixed concurrency (--concurrency, 64), each path alone: at most --tput-requests requests and
//      --tput-seconds: requests/s and latency.
//   4. That metering happened: the usage log's request count for each key against the requests sent.
// Every answer is checked (HTTP 200, the model's reply, and X-AICN-Node = W1 on the gateway paths); an
// error is counted, never retried. Prints Markdown tables for docs/benchmarks.md on stdout.
//
// Bounded: every loop has a maximum count and a deadline, the whole run a watchdog. Every daemon lives
// under one temp folder (TMPDIR is pointed there) removed at the end, on failure and on SIGINT/SIGTERM;
// daemons and model servers are killed by PID.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { Agent } from 'undici'
import type { TestNode } from '../../test/integration/harness.ts'
import {
  childPids, cpuPerRequest, directTarget, f0, f2, int, interleavedLatency, intArg, load, log, MESSAGES, MODEL, REPLY, REQUEST_TIMEOUT_MS,
  signed, startDaemon, startModelProcess, stopStarted, useAgent, type CpuRow, type LatencyResult, type LoadResult, type Target
} from './lib.ts'

// ---------------------------------------------------------------------------------------------------
// Settings

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    requests: { type: 'string' },
    warmup: { type: 'string' },
    'cpu-requests': { type: 'string' },
    concurrency: { type: 'string' },
    'tput-requests': { type: 'string' },
    'tput-seconds': { type: 'string' }
  }
})
const QUICK = args.quick
const REQUESTS = intArg(args.requests, QUICK ? 200 : 2_000, 'requests', 100_000)
const WARMUP = intArg(args.warmup, QUICK ? 50 : 200, 'warmup', 10_000)
const CPU_REQUESTS = intArg(args['cpu-requests'], QUICK ? 200 : 1_000, 'cpu-requests', 100_000)
const CONCURRENCY = intArg(args.concurrency, 64, 'concurrency', 1_000)
const TPUT_REQUESTS = intArg(args['tput-requests'], QUICK ? 300 : 2_000, 'tput-requests', 100_000)
const TPUT_MS = intArg(args['tput-seconds'], QUICK ? 10 : 60, 'tput-seconds', 600) * 1000

const PSK = 'be'.repeat(32)
const PROJECT = 'BenchGateway'
/** Every limit on, none ever reached: the run sends at most a few tens of thousands of requests. */
const KEY_LIMITS = { rpm: 1_000_000, concurrency: 4 * CONCURRENCY, daily: 10_000_000, balance_usd: 10_000 }
const METERING_SETTLE_MS = 2_000
const WATCHDOG_MS = 20 * 60_000

// ---------------------------------------------------------------------------------------------------
// Cleanup: everything this run started, whatever happens

let agent: Agent | undefined
let root: string | undefined
let cleaning: Promise<void> | undefined

async function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    await stopStarted()
    await agent?.close().catch(() => {})
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
  if (root !== undefined) { try { rmSync(root, { recursive: true, force: true }) } catch {} }
})

// ---------------------------------------------------------------------------------------------------
// The gateway paths

function gatewayTarget (api: string, name: string, servedBy: string, secret: string | undefined): Target {
  return {
    name,
    url: `${api}/v1/chat/completions`,
    body: JSON.stringify({ model: MODEL, messages: MESSAGES }),
    headers: secret === undefined ? undefined : { authorization: `Bearer ${secret}` },
    check: (status, text, headers) => {
      if (status !== 200) return `HTTP ${status}: ${text.slice(0, 200)}`
      try {
        if (JSON.parse(text).choices[0].message.content !== REPLY) return `unexpected answer ${text.slice(0, 200)}`
      } catch { return `not JSON: ${text.slice(0, 200)}` }
      if (headers['x-aicn-node'] !== servedBy) return `served by ${String(headers['x-aicn-node'])}, not ${servedBy}`
      return undefined
    }
  }
}

async function createKey (node: TestNode, name: string, limits: Record<string, number>): Promise<{ secret: string, id: string }> {
  const r = await node.call('/api/v0/keys/create', { name, ...limits })
  if (r.body?.code !== 0) throw new Error(`keys/create failed: ${JSON.stringify(r.body)}`)
  return { secret: r.body.data.secret, id: r.body.data.key.id }
}

/** Requests the usage log holds for a key ('' = requests without a key). */
async function meteredRequests (node: TestNode, keyId: string): Promise<number> {
  const r = await node.call('/api/v0/usage', {})
  if (r.body?.code !== 0) throw new Error(`usage failed: ${JSON.stringify(r.body)}`)
  return (r.body.data as Array<{ keyId: string, requests: number }>).filter((u) => u.keyId === keyId).reduce((n, u) => n + u.requests, 0)
}

// ---------------------------------------------------------------------------------------------------
// Main

async function main (): Promise<void> {
  root = await mkdtemp(join(tmpdir(), 'aicn-bench-gateway-'))
  process.env.TMPDIR = root
  agent = useAgent(new Agent({ connections: 4 * CONCURRENCY, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS, connectTimeout: 10_000 }))
  const loadBefore = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')

  log('starting a fake model server, B (keys required) and W1 (keys optional)')
  const m1 = await startModelProcess()
  const b = await startDaemon({ mode: 'input', psk: PSK, edit: (c) => { c.Gateway = { ...c.Gateway, RequireKeys: 'always' } } }, '')
  const w1 = await startDaemon({ psk: PSK, bootstrap: [await b.addr()], edit: (c) => { c.Gateway = { ...c.Gateway, RequireKeys: 'auto' } } }, '')
  const r = await w1.call('/api/v0/ai/project/register', { project: PROJECT, models: [{ model: MODEL, api: `${m1.url}/v1/chat/completions`, type: 0 }] })
  if (r.body?.code !== 0) throw new Error(`register failed: ${JSON.stringify(r.body)}`)
  {
    const deadline = Date.now() + 30_000
    let seen = 0
    while (Date.now() < deadline) {
      const peers = await b.call('/api/v0/ai/projects/peers', { project: PROJECT, model: MODEL })
      seen = (peers.body?.data ?? []).filter((p: any) => p.connectivity === 1).length
      if (seen === 1) break
      await sleep(100)
    }
    if (seen !== 1) throw new Error('B does not see W1 serving the model')
  }
  const keyW = await createKey(w1, 'bench-w1', KEY_LIMITS)
  const keyW1 = await createKey(w1, 'bench-w1-memory-limits', { rpm: KEY_LIMITS.rpm, concurrency: KEY_LIMITS.concurrency })
  const keyB = await createKey(b, 'bench-b', KEY_LIMITS)
  const pids = { client: process.pid, B: b.pid, W1: w1.pid, M1: m1.child.pid }

  const direct = directTarget(m1.url, '(a) direct to the model')
  const own = gatewayTarget(w1.api, '(b) W1 gateway, key + limits + balance (model on W1)', w1.peerId, keyW.secret)
  const ownMemory = gatewayTarget(w1.api, '(b1) W1 gateway, key with rpm + concurrency only', w1.peerId, keyW1.secret)
  const ownNoKey = gatewayTarget(w1.api, '(b0) W1 gateway, keys optional, no key', w1.peerId, undefined)
  const hop = gatewayTarget(b.api, '(c) B gateway, key + limits + balance → W1 (one hop)', w1.peerId, keyB.secret)
  const targets = [direct, own, ownMemory, ownNoKey, hop]
  const sent = new Map<Target, number>(targets.map((t) => [t, 0]))

  // 1. Sequential, interleaved
  log(`sequential: ${WARMUP} warm-up + ${REQUESTS} requests per path, interleaved`)
  const sequential = await interleavedLatency(targets, WARMUP, REQUESTS)
  for (const [k, t] of targets.entries()) sent.set(t, sent.get(t)! + WARMUP + sequential[k]!.summary.n + sequential[k]!.errors)

  // 2. CPU per request, each path alone
  log(`CPU per request: ${CPU_REQUESTS} requests per path, one path at a time`)
  const cpu: CpuRow[] = []
  for (const t of targets) {
    cpu.push(await cpuPerRequest(t, CPU_REQUESTS, pids))
    sent.set(t, sent.get(t)! + 50 + cpu.at(-1)!.latency.n)
  }

  // 3. Concurrency
  const loaded: LoadResult[] = []
  for (const t of targets) {
    log(`${t.name}: concurrency ${CONCURRENCY}, at most ${TPUT_REQUESTS} requests / ${TPUT_MS / 1000} s`)
    loaded.push(await load(t.name, [t], CONCURRENCY, TPUT_REQUESTS, TPUT_MS))
    sent.set(t, sent.get(t)! + loaded.at(-1)!.ok + loaded.at(-1)!.errors)
  }

  // 4. Metering (usage is recorded after the answer is sent: give the last ones a moment)
  await sleep(METERING_SETTLE_MS)
  const metered = {
    own: await meteredRequests(w1, keyW.id),
    ownMemory: await meteredRequests(w1, keyW1.id),
    ownNoKey: await meteredRequests(w1, ''),
    hop: await meteredRequests(b, keyB.id)
  }
  const loadAfter = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')

  // ---- Report
  const cpuModel = cpus()[0]?.model ?? 'unknown CPU'
  const lines: string[] = []
  lines.push(`Node ${process.version}, ${cpus().length} cores (${cpuModel}), load average before ${loadBefore}, after ${loadAfter}. Key limits: rpm ${int(KEY_LIMITS.rpm)}, concurrency ${KEY_LIMITS.concurrency}, daily ${int(KEY_LIMITS.daily)}, balance $${int(KEY_LIMITS.balance_usd)}.`, '')

  const [sa, sb, sb1, sb0, sc] = sequential as [LatencyResult, LatencyResult, LatencyResult, LatencyResult, LatencyResult]
  lines.push(`### Sequential (ms; ${int(REQUESTS)} requests per path after ${WARMUP} warm-up, paths interleaved request by request)`, '')
  lines.push('| path | p50 | p90 | p99 | max | added p50 | added p99 | errors |', '|---|---|---|---|---|---|---|---|')
  for (const x of sequential) {
    const added = x === sa ? ['–', '–'] : [signed(x.summary.p50 - sa.summary.p50), signed(x.summary.p99 - sa.summary.p99)]
    lines.push(`| ${x.name} | ${f2(x.summary.p50)} | ${f2(x.summary.p90)} | ${f2(x.summary.p99)} | ${f2(x.summary.max)} | ${added[0]} | ${added[1]} | ${x.errors} |`)
  }
  const diff = (x: LatencyResult, y: LatencyResult): string => `p50 ${signed(x.summary.p50 - y.summary.p50)} ms, p99 ${signed(x.summary.p99 - y.summary.p99)} ms`
  lines.push('')
  lines.push(`- our gateway's own work (b − a): ${diff(sb, sa)}: p50 **${sb.summary.p50 - sa.summary.p50 < 1 ? 'below' : 'not below'} 1 ms**`)
  lines.push(`- keys, limits and balance (b − b0): ${diff(sb, sb0)}; of which the balance reservation and daily count (b − b1): ${diff(sb, sb1)}`)
  lines.push(`- the gateway without a key (b0 − a): ${diff(sb0, sa)}`)
  lines.push(`- the libp2p hop (c − b): ${diff(sc, sb)}`)

  lines.push('', `### CPU time per request (µs, utime+stime from /proc/<pid>/stat; ${int(CPU_REQUESTS)} sequential requests, one path at a time)`, '')
  lines.push('| path | latency p50 ms | client | B | W1 | M1 |', '|---|---|---|---|---|---|')
  for (const x of cpu) lines.push(`| ${x.name} | ${f2(x.latency.p50)} | ${f0(x.perRequestUs.client!)} | ${f0(x.perRequestUs.B!)} | ${f0(x.perRequestUs.W1!)} | ${f0(x.perRequestUs.M1!)} |`)

  const la = loaded[0]!
  lines.push('', `### Concurrency ${CONCURRENCY} (each path alone; at most ${int(TPUT_REQUESTS)} requests and ${TPUT_MS / 1000} s)`, '')
  lines.push('| path | requests/s | p50 | p99 | added p50 | added p99 | ok | errors | seconds |', '|---|---|---|---|---|---|---|---|---|')
  for (const x of loaded) {
    const added = x === la ? ['–', '–'] : [signed(x.latency.p50 - la.latency.p50), signed(x.latency.p99 - la.latency.p99)]
    lines.push(`| ${x.name} | ${f0(x.rps)} | ${f2(x.latency.p50)} | ${f2(x.latency.p99)} | ${added[0]} | ${added[1]} | ${int(x.ok)} | ${x.errors} | ${x.seconds.toFixed(1)} |`)
  }

  lines.push('', `Metering: usage log requests / requests sent: (b) ${int(metered.own)} / ${int(sent.get(own)!)}, (b1) ${int(metered.ownMemory)} / ${int(sent.get(ownMemory)!)}, (b0) ${int(metered.ownNoKey)} / ${int(sent.get(ownNoKey)!)}, (c) ${int(metered.hop)} / ${int(sent.get(hop)!)}.`)

  const errors = [...sequential, ...loaded].reduce((n, x) => n + x.errors, 0)
  if (errors > 0) {
    lines.push('', `**${errors} errors.** First ones:`)
    for (const x of [...sequential, ...loaded]) if (x.errors > 0) lines.push(`- ${x.name}: ${x.firstErrors.join(' | ')}`)
    process.exitCode = 1
  }
  process.stdout.write(lines.join('\n') + '\n')
}

const watchdog = setTimeout(() => {
  log(`watchdog: the run took longer than ${WATCHDOG_MS / 60_000} min; cleaning up`)
  void cleanup().finally(() => process.exit(2))
}, WATCHDOG_MS)

try {
  await main()
} catch (err) {
  log(`failed: ${(err as Error).stack ?? String(err)}`)
  process.exitCode = 1
} finally {
  clearTimeout(watchdog)
  await cleanup()
}
