// Soak test: a small network under a steady job load for a long time; does anything grow or go missing?
//
//   npm run build && node dist/scripts/bench/soak.js [--minutes 30] [--rate 20] [--stream-share 0.5]
//
// Run from dist/ (test/integration/harness.ts finds bin/aicn.js relative to its compiled location).
// Everything listens on 127.0.0.1 only. The network: one input node and 3 workers bootstrapping to it,
// one pre-shared key, each worker serving project "Soak" / model "soak-model" from its own fake model
// server (scripts/fake-model.ts, in this process; 20 tokens, 2 ms between streamed tokens).
// Load: an open loop through the input node's `/api/v0/chat/completion/proxy` at --rate jobs/s (a job
// every 1/rate s, whatever the answers do), a --stream-share of them streamed; at most 200 in flight (a
// job that would exceed it is counted as "not sent", never silently dropped).
// Every job is accounted for:
//   ok        – 200 and the fake model's exact answer (non-stream), or every token and `data: [DONE]` (stream);
//   failed    – a documented error: HTTP ≥ 400 with a JSON body {code ≠ 0, message}, or a stream that ends
//               with an error event `data: {"error":{code,message}}` (src/api/routes/jobs.ts);
//   vanished  – anything else: network error, timeout (60 s), other status or body, a stream cut short.
// Every minute (and at the start and end) it samples every daemon: VmRSS (/proc/<pid>/status), the V8
// heap in use (`nodejs_heap_size_used_bytes` from its /metrics) and open file descriptors (/proc/<pid>/fd).
// At the end it prints the least-squares slope of RSS and heap in MB per minute (over the samples after
// the first minute's warm-up) and fds first vs last, as Markdown for docs/reliability.md, and exits
// non-zero if any job vanished (or a daemon died).
//
// Bounded: the run ends after --minutes (at most 240) plus a 60 s drain; a watchdog ends it anyway.
// Daemons live under one temp folder removed at the end, on failure and on SIGINT/SIGTERM; daemons are
// killed by PID (see ./network.ts, shared with registry-spread.ts and scale.ts).
import '../../src/core/polyfill.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { startFakeModelServer, type FakeModelServer } from '../fake-model.ts'
import type { TestNode } from '../../test/integration/harness.ts'
import {
  call, cpuCount, fdCount, loadAverage, log, onCleanup, rssMb, runBench, scrapeMetrics, slope, startNetwork,
  summarize, sumSeries
} from './network.ts'

// ---------------------------------------------------------------------------------------------------
// Settings

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string', default: '20' },
    'stream-share': { type: 'string', default: '0.5' }
  }
})
const MINUTES = Number(args.minutes)
const RATE = Number(args.rate)
const STREAM_SHARE = Number(args['stream-share'])
if (!(MINUTES >= 1 && MINUTES <= 240)) throw new Error('--minutes: from 1 to 240')
if (!(RATE > 0 && RATE <= 200)) throw new Error('--rate: jobs per second, above 0 and at most 200')
if (!(STREAM_SHARE >= 0 && STREAM_SHARE <= 1)) throw new Error('--stream-share: from 0 to 1')

const PSK = 'c0'.repeat(32)
const PROJECT = 'Soak'
const MODEL = 'soak-model'
const WORKERS = 3
const REPLY_TOKENS = Array.from({ length: 20 }, (_, i) => `tok${i} `)
const REPLY = REPLY_TOKENS.join('')
const TOKEN_DELAY_MS = 2
const MESSAGES = [{ role: 'user', content: 'Hello' }]
const MAX_IN_FLIGHT = 200
const REQUEST_TIMEOUT_MS = 60_000
const SAMPLE_EVERY_MS = 60_000
const DRAIN_MS = REQUEST_TIMEOUT_MS + 5_000
const WATCHDOG_MS = (MINUTES + 10) * 60_000

// ---------------------------------------------------------------------------------------------------
// One job

type Outcome = { kind: 'ok' } | { kind: 'failed', detail: string } | { kind: 'vanished', detail: string }

/** A documented error body: {code ≠ 0, message} (or an OpenAI-style {error: {message}}). */
function documentedError (text: string): string | undefined {
  try {
    const body = JSON.parse(text)
    if (typeof body?.code === 'number' && body.code !== 0 && typeof body.message === 'string') return `code ${body.code as number}: ${body.message as string}`
    if (typeof body?.error?.message === 'string') return `${String(body.error.code ?? body.error.type)}: ${body.error.message as string}`
  } catch {}
  return undefined
}

async function job (input: TestNode, stream: boolean): Promise<Outcome> {
  let response: Response
  let text: string
  try {
    response = await fetch(`${input.api}/api/v0/chat/completion/proxy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ project: PROJECT, model: MODEL, messages: MESSAGES, ...(stream ? { stream: true } : {}) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
    })
    text = await response.text()
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } }
    return { kind: 'vanished', detail: `${e.name}: ${e.message}${e.cause?.code !== undefined ? ` (${e.cause.code})` : ''}` }
  }
  if (response.status >= 400) {
    const documented = documentedError(text)
    return documented !== undefined ? { kind: 'failed', detail: `HTTP ${response.status} ${documented}` } : { kind: 'vanished', detail: `HTTP ${response.status} undocumented body: ${text.slice(0, 200)}` }
  }
  if (response.status !== 200) return { kind: 'vanished', detail: `HTTP ${response.status}: ${text.slice(0, 200)}` }
  if (!stream) {
    try {
      const body = JSON.parse(text)
      if (body.code === 0 && body.data?.choices?.[0]?.message?.content === REPLY) return { kind: 'ok' }
    } catch {}
    const documented = documentedError(text)
    return documented !== undefined ? { kind: 'failed', detail: documented } : { kind: 'vanished', detail: `unexpected answer: ${text.slice(0, 200)}` }
  }
  // A stream: the concatenated deltas must be the reply and the last event [DONE], or an error event.
  let content = ''
  let done = false
  for (const event of text.split('\n\n')) {
    const data = event.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')
    if (data === '') continue
    if (data === '[DONE]') { done = true; continue }
    try {
      const chunk = JSON.parse(data)
      if (chunk.error !== undefined) {
        const documented = documentedError(data)
        return documented !== undefined ? { kind: 'failed', detail: `stream ${documented}` } : { kind: 'vanished', detail: `stream error event without code/message: ${data.slice(0, 200)}` }
      }
      content += chunk.choices?.[0]?.delta?.content ?? ''
    } catch { return { kind: 'vanished', detail: `stream event not JSON: ${data.slice(0, 200)}` } }
  }
  if (done && content === REPLY) return { kind: 'ok' }
  return { kind: 'vanished', detail: `stream ended ${done ? 'with' : 'without'} [DONE] after ${content.length} of ${REPLY.length} characters` }
}

// ---------------------------------------------------------------------------------------------------
// Samples

interface Sample { minute: number, rss: number[], heap: number[], fds: number[] }

async function sample (net: TestNode[], started: number): Promise<Sample> {
  const minute = (performance.now() - started) / 60_000
  const rss = await Promise.all(net.map(async (n) => await rssMb(n.pid)))
  const fds = await Promise.all(net.map(async (n) => await fdCount(n.pid)))
  const heap = await Promise.all(net.map(async (n) => {
    try { return sumSeries(await scrapeMetrics(n, 10_000), 'nodejs_heap_size_used_bytes') / 1024 / 1024 } catch { return NaN }
  }))
  return { minute, rss, heap, fds }
}

// ---------------------------------------------------------------------------------------------------
// Main

const servers: FakeModelServer[] = []
onCleanup(async () => { await Promise.all(servers.map(async (s) => { await s.close() })) })

const f1 = (x: number): string => Number.isNaN(x) ? '–' : x.toFixed(1)
const f2 = (x: number): string => Number.isNaN(x) ? '–' : x.toFixed(2)

async function main (): Promise<void> {
  const loadBefore = await loadAverage()
  for (let i = 0; i < WORKERS; i++) servers.push(await startFakeModelServer({ tokens: REPLY_TOKENS, tokenDelayMs: TOKEN_DELAY_MS }))
  const net: TestNode[] = []
  const { inputs: [input], workers } = await startNetwork({
    name: 'soak',
    size: 1 + WORKERS,
    inputs: 1,
    psk: PSK,
    batch: WORKERS,
    timeoutMs: 120_000,
    edit: (config, index) => {
      if (index === 0) return
      config.AIProjects = [{ Project: PROJECT, Models: [{ Model: MODEL, API: `${servers[index - 1]!.url}/v1/chat/completions`, Type: 0, CID: '' }] }]
    }
  }, net)
  const names = ['input', ...workers.map((_, i) => `W${i + 1}`)]
  {
    const deadline = performance.now() + 60_000
    let seen = 0
    for (let i = 0; i < 600 && performance.now() < deadline; i++) {
      seen = (await call(input!, '/api/v0/ai/projects/peers', { project: PROJECT, model: MODEL }, 5_000)).body?.data?.length ?? 0
      if (seen === WORKERS) break
      await sleep(100)
    }
    if (seen !== WORKERS) throw new Error(`the input node lists ${seen} of ${WORKERS} workers`)
  }

  const counts = { sent: 0, notSent: 0, ok: 0, failed: 0, vanished: 0, okStream: 0, okPlain: 0 }
  const failures = new Map<string, number>()
  const vanished = new Map<string, number>()
  const latencies: number[] = []
  const perMinute: Array<{ minute: number, ok: number, failed: number, vanished: number }> = []
  let inFlight = 0
  const pending = new Set<Promise<void>>()
  const samples: Sample[] = []
  const started = performance.now()
  const end = started + MINUTES * 60_000
  log(`soak: ${MINUTES} min at ${RATE} jobs/s (${Math.round(STREAM_SHARE * 100)} % streamed) through the input node`)
  samples.push(await sample(net, started))
  let nextSample = started + SAMPLE_EVERY_MS
  let minuteCounts = { ok: 0, failed: 0, vanished: 0 }
  const interval = 1000 / RATE
  const maxJobs = Math.ceil(MINUTES * 60 * RATE) + 10
  let daemonDied = ''
  for (let i = 0; i < maxJobs && performance.now() < end; i++) {
    const due = started + i * interval
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
    if (performance.now() >= nextSample) {
      nextSample += SAMPLE_EVERY_MS
      // Sampling runs alongside the load (so the schedule keeps going).
      void sample(net, started).then((s) => {
        samples.push(s)
        perMinute.push({ minute: s.minute, ...minuteCounts })
        minuteCounts = { ok: 0, failed: 0, vanished: 0 }
        log(`soak ${s.minute.toFixed(1)} min: ${counts.ok} ok, ${counts.failed} failed, ${counts.vanished} vanished, ${counts.notSent} not sent; in flight ${inFlight}; ` +
          `RSS ${s.rss.map((x) => x.toFixed(0)).join('/')} MB, heap ${s.heap.map((x) => x.toFixed(0)).join('/')} MB, fds ${s.fds.join('/')}`)
      })
      for (const [k, n] of net.entries()) if (!n.running && daemonDied === '') daemonDied = `${names[k]!} exited: ${n.output.slice(-500)}`
    }
    if (inFlight >= MAX_IN_FLIGHT) { counts.notSent++; continue }
    const stream = Math.random() < STREAM_SHARE
    counts.sent++
    inFlight++
    const t0 = performance.now()
    const p = job(input!, stream).then((outcome) => {
      if (outcome.kind === 'ok') {
        counts.ok++; minuteCounts.ok++
        if (stream) counts.okStream++; else counts.okPlain++
        latencies.push(performance.now() - t0)
      } else if (outcome.kind === 'failed') {
        counts.failed++; minuteCounts.failed++
        failures.set(outcome.detail.slice(0, 160), (failures.get(outcome.detail.slice(0, 160)) ?? 0) + 1)
      } else {
        counts.vanished++; minuteCounts.vanished++
        vanished.set(outcome.detail.slice(0, 160), (vanished.get(outcome.detail.slice(0, 160)) ?? 0) + 1)
      }
    }).finally(() => { inFlight--; pending.delete(p) })
    pending.add(p)
    if (i % 1000 === 0) for (const s of servers) s.requests.length = 0
  }
  const loadEnded = performance.now()
  log(`soak: load stopped; draining ${pending.size} jobs (≤ ${DRAIN_MS / 1000} s)`)
  const drainTimer = new AbortController()
  await Promise.race([Promise.allSettled([...pending]), sleep(DRAIN_MS, undefined, { signal: drainTimer.signal }).catch(() => {})])
  drainTimer.abort() // a pending timer would keep the process alive for the rest of DRAIN_MS
  const undrained = pending.size
  await sleep(2_000)
  samples.push(await sample(net, started))
  for (const [k, n] of net.entries()) if (!n.running && daemonDied === '') daemonDied = `${names[k]!} exited: ${n.output.slice(-500)}`
  const loadAfter = await loadAverage()

  // Slopes over the samples after the first minute (start-up and JIT warm-up are not growth).
  samples.sort((a, b) => a.minute - b.minute)
  const steady = samples.filter((s) => s.minute >= 0.99)
  const lines: string[] = []
  const minutesRun = (loadEnded - started) / 60_000
  lines.push(`Node ${process.version}, ${await cpuCount()} cores, load average ${loadBefore} before and ${loadAfter} after; ${f1(minutesRun)} min of load at ${RATE} jobs/s offered, ${Math.round(STREAM_SHARE * 100)} % streamed (20 tokens, ${TOKEN_DELAY_MS} ms apart), ${samples.length} samples.`, '')
  const lat = summarize(latencies)
  lines.push('| jobs sent | ok (stream / non-stream) | failed, documented error | vanished | not sent (> 200 in flight) | still in flight at the end | achieved jobs/s | latency p50 / p99 / max ms |', '|---|---|---|---|---|---|---|---|')
  lines.push(`| ${counts.sent} | ${counts.ok} (${counts.okStream} / ${counts.okPlain}) | ${counts.failed} | ${counts.vanished} | ${counts.notSent} | ${undrained} | ${f1(counts.ok / ((loadEnded - started) / 1000))} | ${f1(lat.median)} / ${f1(lat.p99)} / ${f1(lat.max)} |`)
  lines.push('', `| daemon | RSS MB first → last (max) | RSS slope MB/min | heap used MB first → last | heap slope MB/min | open fds first → last (max) |`, '|---|---|---|---|---|---|')
  for (let k = 0; k < net.length; k++) {
    const first = samples[0]!
    const last = samples.at(-1)!
    const rssMax = Math.max(...samples.map((s) => s.rss[k]!).filter((x) => !Number.isNaN(x)))
    const fdMax = Math.max(...samples.map((s) => s.fds[k]!).filter((x) => !Number.isNaN(x)))
    const rssSlope = slope(steady.map((s) => s.minute), steady.map((s) => s.rss[k]!))
    const heapSlope = slope(steady.map((s) => s.minute), steady.map((s) => s.heap[k]!))
    lines.push(`| ${names[k]!} | ${f1(first.rss[k]!)} → ${f1(last.rss[k]!)} (${f1(rssMax)}) | ${f2(rssSlope)} | ${f1(first.heap[k]!)} → ${f1(last.heap[k]!)} | ${f2(heapSlope)} | ${first.fds[k]!} → ${last.fds[k]!} (${fdMax}) |`)
  }
  lines.push('', 'Samples (minute: RSS MB / heap MB / fds, per daemon input, W1–W3):')
  for (const s of samples) lines.push(`- ${f1(s.minute)}: ${net.map((_, k) => `${s.rss[k]!.toFixed(0)}/${s.heap[k]!.toFixed(0)}/${s.fds[k]!}`).join(', ')}`)
  lines.push('', `Per minute (ok/failed/vanished): ${perMinute.map((m) => `${m.ok}/${m.failed}/${m.vanished}`).join(', ')}`)
  if (failures.size > 0) lines.push('', 'Failures (documented errors):', ...[...failures].map(([d, n]) => `- ${n} × \`${d.replaceAll('`', "'")}\``))
  if (vanished.size > 0) lines.push('', 'Vanished jobs:', ...[...vanished].map(([d, n]) => `- ${n} × \`${d.replaceAll('`', "'")}\``))
  if (daemonDied !== '') lines.push('', `A daemon died: ${daemonDied}`)
  process.stdout.write(lines.join('\n') + '\n')
  if (counts.vanished > 0 || undrained > 0 || daemonDied !== '') {
    log(`soak: FAILED: ${counts.vanished} vanished, ${undrained} never finished${daemonDied !== '' ? `, ${daemonDied.slice(0, 200)}` : ''}`)
    process.exitCode = 1
  }
}

await runBench('aicn-bench-soak-', WATCHDOG_MS, main)
