// Worst-case memory and responsiveness of a worker under the attacks of issue 19, on 127.0.0.1: an input
// node B and a worker W (real daemons, scripts/fuzz.ts's pair), an in-process hostile peer with the
// network's key, and a hostile model server registered on W. For each attack it prints W's RSS before,
// at its peak (sampled every 50 ms) and after, whether honest jobs through B kept working meanwhile, and
// the slowest `/api/v0/id` answer. Every attack is bounded in streams, bytes and time.
//
//   npm run build && node dist/scripts/bench/hostile.js [--streams 256] [--proxy-streams 8]
//        [--only jobs|topic] [--flood-rate 300] [--flood-seconds 10] [--sybils 10] [--view-syncs 50]
//
// The topic attacks (issue 19's heartbeat flood and Sybil identities, and a flood of view-sync requests)
// are measured on the input node B, with its CPU time during the attack (utime + stime from /proc).
//
// Results and the commit they were taken on: docs/reliability.md, "Hostile peers and models".
import '../../src/core/polyfill.ts'
import { parseArgs } from 'node:util'
import { multiaddr } from '@multiformats/multiaddr'
import { readFile } from 'node:fs/promises'
import { FUZZ_PSK, startFuzzPair, startRogue, normalJob, type FuzzPair } from '../fuzz.ts'
import { chatProxyBodies, floodHeartbeats, rogueHeartbeat, floodUnfinishedFrames, floodViewSyncs, idLatency, rssBytes, rssPeak, startHostileModel, startTopicRogue, sybilHeartbeats, type HostileModel } from '../hostile.ts'
import { isMainModule } from '../is-main.ts'
import { intArg } from './lib.ts'

export const HOSTILE_PROJECT = 'Hostile'

export interface AttackReport {
  attack: string
  /** the daemon measured: W, or B when the attack's work happens on the input node */
  node: 'W' | 'B'
  rssBeforeMb: number
  rssPeakMb: number
  rssAfterMb: number
  honestOk: number
  honestFailed: number
  idMaxMs: number
  /** CPU time the measured daemon used during the attack, ms, and that as a share of one core */
  cpuMs: number
  cpuShare: number
  detail: string
}

/** A process's CPU time (user + system) so far, in ms, from /proc/<pid>/stat (clock ticks of 10 ms). */
export async function cpuMs (pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid ?? 0}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** The topic rate limiter's counters on a node's /metrics (none on code without it). */
export async function topicCounters (api: string): Promise<string> {
  let text = ''
  try {
    text = await (await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  } catch (err) {
    return `no /metrics (${(err as Error).message})`
  }
  const pick = (name: string): string => new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? '-'
  return `throttled ${pick('aicn_topic_throttled_author_total')} (author) / ${pick('aicn_topic_throttled_peer_total')} (peer), dropped while penalised ${pick('aicn_topic_dropped_penalised_total')}, released ${pick('aicn_topic_released_total')}, peers penalised ${pick('aicn_topic_peers_penalised')}`
}

const mb = (bytes: number): number => Math.round(bytes / 1e5) / 10

/** Registers the hostile model server's two answers on W as chat models of project Hostile. */
export async function registerHostileModels (pair: FuzzPair, model: HostileModel): Promise<void> {
  const result = await pair.w.call('/api/v0/ai/project/register', {
    project: HOSTILE_PROJECT,
    models: [{ model: 'giant-sse', api: `${model.url}/giant-sse`, type: 0 }, { model: 'endless', api: `${model.url}/endless`, type: 0 }]
  })
  if (result.body?.code !== 0) throw new Error(`registering the hostile models failed: ${JSON.stringify(result.body)}`)
}

/** Runs `attack` while measuring `node` (its RSS peak, its /api/v0/id) and sending honest jobs through B
 * one after another; then waits up to 20 s for its RSS to settle. */
export async function measure (pair: FuzzPair, name: string, attack: () => Promise<string>, node: 'W' | 'B' = 'W'): Promise<AttackReport> {
  const daemon = node === 'W' ? pair.w : pair.b
  process.stderr.write(`${new Date().toISOString()} ${name}\n`)
  const before = await rssBytes(daemon.pid)
  const cpuBefore = await cpuMs(daemon.pid)
  const started = performance.now()
  const peak = rssPeak(daemon.pid)
  const latency = idLatency(daemon.api)
  let attacking = true
  let honestOk = 0
  let honestFailed = 0
  const honest = (async () => {
    while (attacking) {
      if (await normalJob(pair) === undefined) honestOk++
      else honestFailed++
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  })()
  let detail: string
  try {
    detail = await attack()
  } catch (err) {
    detail = `the attack stopped: ${(err as Error).message}`
  } finally {
    attacking = false
    await honest
  }
  const rssPeakBytes = await peak.stop()
  const { maxMs } = await latency.stop()
  const wall = performance.now() - started
  let cpu = NaN
  let after = NaN
  try {
    cpu = await cpuMs(daemon.pid) - cpuBefore
    // Let the worker give back what it can (GC, the allocator); bounded.
    after = await rssBytes(daemon.pid)
    for (let i = 0; i < 20 && after > before + 20e6; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000))
      after = await rssBytes(daemon.pid)
    }
  } catch {
    // The daemon is gone: say so, with the end of its log.
    detail += `; ${node} EXITED (last log: ${JSON.stringify(daemon.output.slice(-4000))})`
  }
  return { attack: name, node, rssBeforeMb: mb(before), rssPeakMb: mb(rssPeakBytes), rssAfterMb: mb(after), honestOk, honestFailed, idMaxMs: Math.round(maxMs), cpuMs: cpu, cpuShare: Math.round(100 * cpu / wall) / 100, detail }
}

/** A streamed or plain chat request to a hostile model through B; what the client saw. */
export async function hostileRequest (api: string, path: string, body: Record<string, unknown>): Promise<string> {
  try {
    const response = await fetch(`${api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
    let bytes = 0
    let tail = ''
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.byteLength
      tail = (tail + Buffer.from(chunk).toString('latin1')).slice(-300)
    }
    return `${response.status}, ${bytes} bytes, ends ${JSON.stringify(tail.slice(-110))}`
  } catch (err) {
    return `failed: ${(err as Error).message}`
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { streams: { type: 'string' }, 'proxy-streams': { type: 'string' }, only: { type: 'string' }, 'flood-rate': { type: 'string' }, 'flood-seconds': { type: 'string' }, sybils: { type: 'string' }, 'view-syncs': { type: 'string' } } })
  const streams = intArg(values.streams, 256, 'streams', 1024)
  const proxyStreams = intArg(values['proxy-streams'], 8, 'proxy-streams', 64)
  const floodRate = intArg(values['flood-rate'], 300, 'flood-rate', 2000)
  const floodSeconds = intArg(values['flood-seconds'], 10, 'flood-seconds', 120)
  const sybils = intArg(values.sybils, 10, 'sybils', 50)
  const viewSyncs = intArg(values['view-syncs'], 50, 'view-syncs', 1000)
  if (values.only !== undefined && values.only !== 'jobs' && values.only !== 'topic') throw new Error('--only: jobs or topic')
  const out = (line: string): void => { process.stdout.write(`${line}\n`) }

  const pair = await startFuzzPair()
  const model = await startHostileModel()
  const rogue = await startRogue()
  try {
    await registerHostileModels(pair, model)
    const wAddr = multiaddr(await pair.w.addr())
    const reports: AttackReport[] = []

    if (values.only !== 'topic') {
      reports.push(await measure(pair, `${streams} job streams, each an unfinished 960 KiB frame after a valid head`, async () => {
        const r = await floodUnfinishedFrames(rogue, wAddr, { streams, frameBytes: 960 * 1024, project: HOSTILE_PROJECT, model: 'giant-sse' })
        return `opened ${r.opened}, refused ${r.refused}, reset ${r.reset}, closed ${r.closed}`
      }))
      await rogue.hangUp(wAddr).catch(() => {})
      // The penalty (60 s) would refuse the next attacks at once; a fresh identity measures them.
      const rogue2 = await startRogue()
      try {
        reports.push(await measure(pair, `${proxyStreams} chat-proxy streams, Content-Length 49,999,999, up to 50 MB sent`, async () => {
          const r = await chatProxyBodies(rogue2, wAddr, { streams: proxyStreams, bytes: 50e6 - 1, declared: 50e6 - 1, project: HOSTILE_PROJECT, model: 'giant-sse' })
          return `answered ${r.answered}, reset ${r.reset}, sent ${mb(r.sentBytes)} MB`
        }))
      } finally {
        await rogue2.stop()
      }
      const rogue3 = await startRogue()
      try {
        reports.push(await measure(pair, `${proxyStreams} chat-proxy streams, chunked, up to 50 MB sent, never finished`, async () => {
          const r = await chatProxyBodies(rogue3, wAddr, { streams: proxyStreams, bytes: 50e6, project: HOSTILE_PROJECT, model: 'giant-sse' })
          return `answered ${r.answered}, reset ${r.reset}, sent ${mb(r.sentBytes)} MB`
        }))
      } finally {
        await rogue3.stop()
      }
      const chat = { project: HOSTILE_PROJECT, messages: [{ role: 'user', content: 'hi' }] }
      reports.push(await measure(pair, 'a 20 MB SSE event without a blank line, through B\'s /v1 gateway (streamed)', async () => {
        return await hostileRequest(pair.b.api, '/v1/chat/completions', { model: `${HOSTILE_PROJECT}/giant-sse`, stream: true, messages: chat.messages })
      }, 'B'))
      reports.push(await measure(pair, 'the same event on W\'s own /api/v0 (streamed, local model)', async () => {
        return await hostileRequest(pair.w.api, '/api/v0/chat/completion', { ...chat, model: 'giant-sse', node_id: pair.w.peerId, stream: true })
      }))
      reports.push(await measure(pair, 'a JSON answer that never ends, through B\'s /api/v0 (not streamed)', async () => {
        return await hostileRequest(pair.b.api, '/api/v0/chat/completion', { ...chat, model: 'endless', node_id: pair.w.peerId })
      }, 'B'))
    }
    if (values.only !== 'jobs') {
      const topic = JSON.parse(await readFile(pair.b.configPath, 'utf8')).App.TopicName as string
      const bAddr = multiaddr(await pair.b.addr())
      const asker = await startRogue()
      try {
        reports.push(await measure(pair, `one peer asking for the whole view ${viewSyncs} times in a row`, async () => {
          const r = await floodViewSyncs(asker, bAddr, viewSyncs)
          return `${r.served} served (${r.entries} entries), ${r.refused} refused`
        }, 'B'))
      } finally {
        await asker.stop()
      }
      reports.push(await measure(pair, `one identity publishing ${floodRate} heartbeats a second for ${floodSeconds} s`, async () => {
        const flooder = await startTopicRogue(FUZZ_PSK, bAddr, topic)
        try {
          const r = await floodHeartbeats(flooder, { perSecond: floodRate, seconds: floodSeconds })
          return `published ${r.published} in ${r.seconds} s; B: ${await topicCounters(pair.b.api)}`
        } finally {
          await flooder.stop()
        }
      }, 'B'))
      // The heartbeats' bodies are encoded before the measurement (rogueHeartbeat caches them): encoding
      // 60,000 models blocks this process, which also measures B's /api/v0/id.
      for (const models of [1000, 60_000]) for (let round = 0; round < 5; round++) rogueHeartbeat(pair.b.peerId, { models, project: 'Sybil', tag: round })
      rogueHeartbeat(pair.b.peerId, { models: 60_000, project: 'SybilOverCap' })
      rogueHeartbeat(pair.b.peerId, { models: 100_000, project: `Sybil-${'x'.repeat(200)}` })
      reports.push(await measure(pair, `${sybils} identities, each 5 heartbeats of 1,000 models (11 KB) and 5 of 60,000 models (769 KB) 100 ms apart, then one of 1.29 MB`, async () => {
        const r = await sybilHeartbeats(FUZZ_PSK, bAddr, topic, { identities: sybils, models: 1000, rounds: 5 })
        const big = await sybilHeartbeats(FUZZ_PSK, bAddr, topic, { identities: sybils, models: 60_000, rounds: 5 })
        return `${r.identities} + ${big.identities} identities published ${r.published + big.published} + ${r.overCap + big.overCap} over the model cap + ${r.oversize + big.oversize} over 1 MiB; B: ${await topicCounters(pair.b.api)}`
      }, 'B'))
    }
    out('| attack | node measured | RSS before / peak / after (MB) | CPU ms (share of a core) | honest jobs ok / failed | its slowest /api/v0/id (ms) | what the attacker saw |')
    out('|---|---|---|---|---|---|---|')
    for (const r of reports) out(`| ${r.attack} | ${r.node} | ${r.rssBeforeMb} / ${r.rssPeakMb} / ${r.rssAfterMb} | ${r.cpuMs} (${r.cpuShare}) | ${r.honestOk} / ${r.honestFailed} | ${r.idMaxMs} | ${r.detail} |`)
  } finally {
    try { await rogue.stop() } catch {}
    await model.close()
    await pair.close()
  }
}

if (isMainModule(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
