// Hostile peers on the topic and on view sync (issue 19), against real daemons on 127.0.0.1: an input
// node B and a worker W (scripts/fuzz.ts's pair), and in-process hostile peers with the network's key
// (scripts/hostile.ts). One identity flooding heartbeats is throttled and penalised (B's /metrics say
// so), ten Sybil identities announcing 60,000 models each get at most 1024 into B's view and their
// oversize heartbeats nowhere, a peer asking for the whole view over and over is refused after its
// budget; meanwhile B's RSS stays within the documented budget (docs/reliability.md), B answers
// /api/v0/id and honest jobs through B succeed. Every attack is bounded in count and time.
import '../../src/polyfill.ts'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { FUZZ_PSK, normalJob, startFuzzPair, startRogue, type FuzzPair } from '../../scripts/fuzz.ts'
import { floodHeartbeats, floodViewSyncs, idLatency, rssBytes, rssPeak, startTopicRogue, sybilHeartbeats, type TopicRogue } from '../../scripts/hostile.ts'
import { waitFor } from './harness.ts'

const MB = 1e6
/** RSS the input node may grow by during one topic attack: the held messages are bounded by 16 MiB,
 * each view entry by 1024 models; the rest is room for decoding what arrives, GC timing and a busy
 * machine (docs/reliability.md, "Hostile peers and models"). */
const RSS_MARGIN = 160 * MB

/** Honest jobs through B, one after another, while `attack` runs. */
async function during<T> (pair: FuzzPair, attack: () => Promise<T>): Promise<{ result: T, ok: number, failures: string[] }> {
  let running = true
  let ok = 0
  const failures: string[] = []
  const honest = (async () => {
    do {
      const problem = await normalJob(pair)
      if (problem === undefined) ok++
      else failures.push(problem)
    } while (running)
  })()
  try {
    return { result: await attack(), ok, failures }
  } finally {
    running = false
    await honest
  }
}

async function metric (api: string, name: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
}

async function servers (pair: FuzzPair, project: string, model: string): Promise<string[]> {
  const result = await pair.b.call('/api/v0/ai/projects/peers', { project, model, number: 100 })
  return (result.body?.data ?? []).map((p: { node_id?: string, NodeID?: string }) => p.node_id ?? p.NodeID ?? '')
}

describe('hostile peers on the topic and on view sync', () => {
  let pair: FuzzPair
  let topic: string
  let bAddr: Multiaddr

  before(async () => {
    pair = await startFuzzPair()
    topic = JSON.parse(await readFile(pair.b.configPath, 'utf8')).App.TopicName
    bAddr = multiaddr(await pair.b.addr())
    assert.equal(await normalJob(pair), undefined)
  })

  after(async () => {
    await pair?.close()
  })

  test('one identity flooding heartbeats is throttled and penalised; B keeps answering', { timeout: 120_000 }, async () => {
    const rssBefore = await rssBytes(pair.b.pid)
    const peak = rssPeak(pair.b.pid)
    const latency = idLatency(pair.b.api)
    let flooder: TopicRogue | undefined
    try {
      const { result, ok, failures } = await during(pair, async () => {
        flooder = await startTopicRogue(FUZZ_PSK, bAddr, topic)
        return await floodHeartbeats(flooder, { perSecond: 300, seconds: 6 })
      })
      const id = await latency.stop()
      const grown = await peak.stop() - rssBefore
      assert.deepEqual(failures, [])
      assert.ok(ok >= 1)
      assert.equal(id.failures, 0, 'B answered /api/v0/id throughout')
      assert.ok(result.published >= 300, JSON.stringify(result))
      assert.ok(grown < RSS_MARGIN, `B grew by ${Math.round(grown / MB)} MB`)
      // Most of the flood was never checked: held (and coalesced), or dropped once the peer was penalised.
      const throttled = await metric(pair.b.api, 'aicn_topic_throttled_author_total') + await metric(pair.b.api, 'aicn_topic_dropped_penalised_total')
      assert.ok(throttled >= result.published / 2, `throttled ${throttled} of ${result.published}`)
      assert.ok(await metric(pair.b.api, 'aicn_topic_peers_penalised') >= 1)
      // What passed reached B's view: the flood's own heartbeats are heard, just not all of them.
      assert.ok((await servers(pair, 'Flood', 'm0')).includes(flooder!.node.peerId.toString()))
      assert.equal(await normalJob(pair), undefined)
    } finally {
      await latency.stop()
      await peak.stop()
      await flooder?.stop()
    }
  })

  test('ten Sybil identities: at most 1024 models each in B\'s view, oversize heartbeats refused', { timeout: 180_000 }, async () => {
    const rssBefore = await rssBytes(pair.b.pid)
    const peak = rssPeak(pair.b.pid)
    const latency = idLatency(pair.b.api)
    try {
      const { result, failures } = await during(pair, async () => await sybilHeartbeats(FUZZ_PSK, bAddr, topic, { identities: 10, models: 60_000, rounds: 3 }))
      const id = await latency.stop()
      const grown = await peak.stop() - rssBefore
      assert.deepEqual(failures, [])
      assert.equal(id.failures, 0, 'B answered /api/v0/id throughout')
      assert.equal(result.identities, 10, JSON.stringify(result))
      assert.ok(grown < RSS_MARGIN, `B grew by ${Math.round(grown / MB)} MB`)
      // The view keeps the first 1024 models of each node (src/registry/view-types.ts).
      await waitFor(async () => (await servers(pair, 'Sybil', 'm1023')).length === 10, 30_000, 'B to list the ten Sybil nodes')
      assert.deepEqual(await servers(pair, 'Sybil', 'm1024'), [])
      assert.deepEqual(await servers(pair, `Sybil-${'x'.repeat(200)}`, 'm0'), [], 'an oversize heartbeat is refused')
      assert.equal(await normalJob(pair), undefined)
    } finally {
      await latency.stop()
      await peak.stop()
    }
  })

  test('a peer asking for the whole view over and over is refused after its budget', { timeout: 120_000 }, async () => {
    const asker = await startRogue()
    try {
      const result = await floodViewSyncs(asker, bAddr, 30)
      // Pubsub.PeerViewSyncs: 10 a minute by default, saved up to 10.
      assert.ok(result.served >= 1 && result.served <= 11, JSON.stringify(result))
      assert.ok(result.refused >= 19, JSON.stringify(result))
      assert.ok(result.entries >= result.served, 'a served sync lists at least B itself')
      assert.equal(await normalJob(pair), undefined)
    } finally {
      await asker.stop()
    }
  })
})
