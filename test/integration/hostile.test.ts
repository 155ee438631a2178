// Hostile peers, hostile models (issue 19), against real daemons on 127.0.0.1: an input node B, a worker
// W (scripts/fuzz.ts's pair), an in-process hostile peer with the network's key and a hostile model
// server (scripts/hostile.ts). The worker's memory stays within its budgets with wide margins, honest
// jobs keep working during every attack, the nodes keep answering /api/v0/id, and a worker that lies
// about its identity is named by its real peer ID. The worst case is measured by scripts/bench/hostile.ts
// (docs/reliability.md); this test only checks the bounds, each attack small and bounded in time.
import '../../src/core/polyfill.ts'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { preSharedKey } from '@libp2p/pnet'
import { multiaddr } from '@multiformats/multiaddr'
import { FUZZ_PSK, honestJobsDuring, normalJob, startFuzzPair, startRogue, type FuzzPair } from '../../scripts/fuzz.ts'
import { chatProxyBodies, floodUnfinishedFrames, idLatency, rssBytes, rssPeak, startHostileModel, type HostileModel } from '../../scripts/hostile.ts'
import { HOSTILE_PROJECT, hostileRequest, registerHostileModels } from '../../scripts/bench/hostile.ts'
import { swarmKeyFromHex } from '../../src/p2p/psk.ts'
import { JOB_PROTOCOL } from '../../src/protocols/job/index.ts'
import { encodeBodyFrame, encodeFrame } from '../../src/protocols/job/job-frames.ts'
import { waitFor } from './harness.ts'

const MB = 1e6
/** RSS a worker may grow by during one attack: its budgets allow 16 MiB per peer and 64 MiB in all;
 * the rest is room for libp2p's own buffers, GC timing and a busy machine. */
const RSS_MARGIN = 160 * MB

describe('hostile peers and hostile models', () => {
  let pair: FuzzPair
  let model: HostileModel
  const rogues: Libp2p[] = []

  before(async () => {
    pair = await startFuzzPair()
    model = await startHostileModel()
    await registerHostileModels(pair, model)
    assert.equal(await normalJob(pair), undefined)
  })

  after(async () => {
    for (const rogue of rogues) { try { await rogue.stop() } catch {} }
    await model?.close()
    await pair?.close()
  })

  const rogue = async (): Promise<Libp2p> => {
    const node = await startRogue()
    rogues.push(node)
    return node
  }

  test('a flood of streams with unfinished frames: W stays within its budget and honest jobs go on', { timeout: 120_000 }, async () => {
    const before = await rssBytes(pair.w.pid)
    const peak = rssPeak(pair.w.pid)
    const { result, ok, failures } = await honestJobsDuring(pair, async () => await floodUnfinishedFrames(await rogue(), multiaddr(await pair.w.addr()), { streams: 64, frameBytes: 960 * 1024, project: HOSTILE_PROJECT, model: 'giant-sse' }))
    const grown = await peak.stop() - before
    assert.deepEqual(failures, [])
    assert.ok(ok >= 1)
    // The peer's unfinished frames may take 16 MiB: about 17 streams; the rest are reset or refused.
    assert.ok(result.opened + result.refused === 64, JSON.stringify(result))
    // Each stream ends: reset by W, or closed with the connection W closes when it penalises the peer.
    assert.equal(result.reset + result.closed, result.opened, JSON.stringify(result))
    assert.ok(grown < RSS_MARGIN, `W grew by ${Math.round(grown / MB)} MB`)
    assert.equal(await normalJob(pair), undefined)
    // The penalty (60 s) shows in W's metrics, and nothing is held any more.
    const metrics = await (await fetch(`${pair.w.api}/api/v0/debug/metrics/prometheus`, { signal: AbortSignal.timeout(10_000) })).text()
    assert.match(metrics, /^aicn_job_peers_penalised [1-9]/m)
    assert.match(metrics, /^aicn_job_held_bytes 0$/m)
  })

  test('chat-proxy bodies that never end: refused by size or reset by the progress deadline', { timeout: 120_000 }, async () => {
    const before = await rssBytes(pair.w.pid)
    const peak = rssPeak(pair.w.pid)
    const addr = multiaddr(await pair.w.addr())
    const { result, failures } = await honestJobsDuring(pair, async () => await Promise.all([
      chatProxyBodies(await rogue(), addr, { streams: 4, bytes: 20 * MB, declared: 50 * MB - 1, project: HOSTILE_PROJECT, model: 'giant-sse' }),
      chatProxyBodies(await rogue(), addr, { streams: 4, bytes: 20 * MB, project: HOSTILE_PROJECT, model: 'giant-sse' })
    ]))
    const grown = await peak.stop() - before
    assert.deepEqual(failures, [])
    const [declared, chunked] = result
    // A body declared larger than 8 MiB is answered 413 at once (or, on a machine too busy to read the
    // head within 5 s, reset).
    assert.equal(declared.answered + declared.reset, 4, JSON.stringify(declared))
    assert.ok(declared.answered >= 1, JSON.stringify(declared))
    assert.equal(chunked.reset + chunked.answered, 4, JSON.stringify(chunked))
    assert.ok(chunked.sentBytes < 4 * 20 * MB, `W stopped reading before the end: ${JSON.stringify(chunked)}`)
    assert.ok(grown < RSS_MARGIN, `W grew by ${Math.round(grown / MB)} MB`)
  })

  test('a 20 MB server-sent event: the stream ends with an error event, the nodes keep answering', { timeout: 120_000 }, async () => {
    const bId = idLatency(pair.b.api)
    const wId = idLatency(pair.w.api)
    const chat = { messages: [{ role: 'user', content: 'hi' }] }
    const { result, failures } = await honestJobsDuring(pair, async () => await Promise.all([
      hostileRequest(pair.b.api, '/v1/chat/completions', { ...chat, model: `${HOSTILE_PROJECT}/giant-sse`, stream: true }),
      hostileRequest(pair.b.api, '/api/v0/chat/completion', { ...chat, project: HOSTILE_PROJECT, model: 'giant-sse', node_id: pair.w.peerId, stream: true })
    ]))
    const [b, w] = [await bId.stop(), await wId.stop()]
    assert.deepEqual(failures, [])
    const [gateway, api] = result
    assert.match(gateway, /^200, .*longer than 1048576 bytes/)
    // Neither path passes on any of the oversized event: the error event is the whole stream.
    assert.ok(Number(/^200, (\d+) bytes/.exec(gateway)?.[1]) < 1000, gateway)
    assert.match(api, /^200, .*code\\":1006.*longer than 1048576 bytes/)
    assert.ok(Number(/^200, (\d+) bytes/.exec(api)?.[1]) < 1000, api)
    assert.equal(b.failures, 0)
    assert.equal(w.failures, 0)
    assert.ok(b.calls >= 1 && w.calls >= 1)
  })

  test('a JSON answer that never ends is cut at the chat bound with a 502 / 1006', { timeout: 120_000 }, async () => {
    const answer = await hostileRequest(pair.b.api, '/api/v0/chat/completion', { project: HOSTILE_PROJECT, model: 'endless', node_id: pair.w.peerId, messages: [{ role: 'user', content: 'hi' }] })
    assert.match(answer, /^502, .*code\\":1006.*larger than 16777216 bytes/)
    assert.equal(await normalJob(pair), undefined)
  })

  test('a worker that claims to be W in its answer is reported as the peer it is', { timeout: 60_000 }, async () => {
    const liar = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionProtector: preSharedKey({ psk: swarmKeyFromHex(FUZZ_PSK) }),
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify() }
    })
    rogues.push(liar)
    await liar.handle(JOB_PROTOCOL, (stream) => {
      stream.send(Buffer.concat([
        encodeFrame({ response_head: { status: 200, content_type: 'application/json', node_id: pair.w.peerId, cid: 'stolen' } }),
        encodeBodyFrame(Buffer.from(JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'I am W' } }] }))).subarray(),
        encodeFrame({ end: {} })
      ]))
    })
    await liar.dial(multiaddr(await pair.b.addr()))
    const liarId = liar.peerId.toString()
    await waitFor(async () => (await pair.b.call('/api/v0/swarm/peers')).body?.data?.some?.((p: { peer: string }) => p.peer === liarId) === true ||
      JSON.stringify((await pair.b.call('/api/v0/swarm/peers')).body).includes(liarId), 15_000, 'B to see the liar')
    // Until identify has told B what the liar speaks, B may take it for a Go node (chat-proxy): ask again.
    let response: Response | undefined
    let text = ''
    await waitFor(async () => {
      response = await fetch(`${pair.b.api}/api/v0/chat/completion`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ node_id: liarId, project: HOSTILE_PROJECT, model: 'any', messages: [{ role: 'user', content: 'who are you?' }] }),
        signal: AbortSignal.timeout(20_000)
      })
      text = await response.text()
      return response.status === 200
    }, 20_000, 'a job on the liar to be answered').catch((err: Error) => { throw new Error(`${err.message}: last answer ${text}`) })
    assert.ok(response !== undefined)
    assert.equal(response.headers.get('x-aicn-node'), liarId)
    assert.notEqual(response.headers.get('x-aicn-node'), pair.w.peerId)
  })
})
