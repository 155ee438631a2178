// A worker killed with SIGKILL leaves B's routing as soon as B's connection to it closes, not
// 3 × HeartbeatInterval later; when it comes back it is routed to again. Real daemons, the
// default HeartbeatInterval (180 s), so nothing here can be explained by heartbeats going stale.
import '../../src/core/polyfill.ts'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { connectedPeers, freePort, TestNode, waitFor } from './harness.ts'

const PSK = 'ee'.repeat(32)
const PROJECT = 'Liveness'
const MODEL = 'live-model'

async function routes (node: TestNode, serving: string): Promise<boolean> {
  const peers = await node.call('/api/v0/ai/projects/peers', { project: PROJECT, model: MODEL })
  return peers.status === 200 && peers.body.data.some((p: any) => p.node_id === serving)
}

describe('a dead worker leaves routing when its connection closes', () => {
  let b: TestNode
  let w1: TestNode
  let w2: TestNode
  let model: FakeModelServer

  before(async () => {
    model = await startFakeModelServer()
    b = await TestNode.start({ mode: 'input', psk: PSK })
    const bAddr = await b.addr()
    const port = await freePort()
    // W1 keeps its port across the restart below.
    w1 = await TestNode.start({ psk: PSK, bootstrap: [bAddr], edit: (c) => { c.Addresses = [`/ip4/127.0.0.1/tcp/${port}`] } })
    w2 = await TestNode.start({ psk: PSK, bootstrap: [bAddr] })
    for (const w of [w1, w2]) {
      const result = await w.call('/api/v0/ai/model/register', { project: PROJECT, model: MODEL, api: `${model.url}/v1/chat/completions` })
      assert.equal(result.body.code, 0, JSON.stringify(result.body))
    }
    await waitFor(async () => await routes(b, w1.peerId) && await routes(b, w2.peerId), 20_000, 'B to route to both workers')
  })

  after(async () => {
    await Promise.all([b, w1, w2].filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
    await model?.close()
  })

  test('SIGKILL: gone from B\'s routing within seconds, still listed as heard; back after a restart', async (t) => {
    await w1.kill()
    const killed = Date.now()
    await waitFor(async () => !await routes(b, w1.peerId), 15_000, 'B to stop routing to the killed W1')
    const seconds = (Date.now() - killed) / 1000
    t.diagnostic(`B stopped routing to the killed W1 after ${seconds.toFixed(1)} s`)
    assert.ok(await routes(b, w2.peerId), 'W2 is still routed to')
    assert.ok((await b.call('/api/v0/peers')).body.data.includes(w1.peerId), 'W1 is still listed as heard')
    // Jobs by project go to W2 only, without a failed attempt on W1.
    for (let i = 0; i < 5; i++) {
      const job = await b.call('/api/v0/chat/completion/proxy', { project: PROJECT, model: MODEL, messages: [{ role: 'user', content: 'hi' }] })
      assert.equal(job.status, 200, JSON.stringify(job.body))
      assert.equal(job.headers.get('x-aicn-node'), w2.peerId)
    }
    await w1.launch()
    await waitFor(async () => (await connectedPeers(b)).includes(w1.peerId), 20_000, 'W1 to reconnect to B')
    await waitFor(async () => await routes(b, w1.peerId), 20_000, 'B to route to W1 again')
    assert.ok(seconds < 15, `took ${seconds} s`)
  })
})
