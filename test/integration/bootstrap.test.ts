// A worker whose bootstrap peer is not there when it starts connects once the bootstrap peer comes up
// (src/p2p/reconnect.ts keepBootstrapPeers, every 30 s), and is then routed to. Real daemons.
import '../../src/core/polyfill.ts'
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { connectedPeers, freePort, TestNode, waitFor } from './harness.ts'

const PSK = 'ab'.repeat(32)
const nodes: TestNode[] = []
let model: FakeModelServer | undefined

after(async () => {
  await Promise.all(nodes.map(async (n) => { await n.destroy() }))
  await model?.close()
})

test('a worker started before its input node connects to it within 30 s of the input node starting', async (t) => {
  model = await startFakeModelServer()
  const port = await freePort()
  // B exists (identity, address) but is not running yet; its fresh history has nobody to redial.
  const b = await TestNode.create({ mode: 'input', psk: PSK, edit: (c) => { c.Addresses = [`/ip4/127.0.0.1/tcp/${port}`] } })
  nodes.push(b)
  const w = await TestNode.start({ psk: PSK, bootstrap: [`/ip4/127.0.0.1/tcp/${port}/p2p/${b.peerId}`] })
  nodes.push(w)
  const registered = await w.call('/api/v0/ai/model/register', { project: 'Late', model: 'late-model', api: `${model.url}/v1/chat/completions` })
  assert.equal(registered.body.code, 0, JSON.stringify(registered.body))
  assert.deepEqual(await connectedPeers(w), [], 'W has nobody to talk to')
  await b.launch()
  const launched = Date.now()
  await waitFor(async () => (await connectedPeers(w)).includes(b.peerId), 40_000, 'W to connect to B')
  t.diagnostic(`W connected to B ${((Date.now() - launched) / 1000).toFixed(1)} s after B started`)
  await waitFor(async () => {
    const peers = await b.call('/api/v0/ai/projects/peers', { project: 'Late', model: 'late-model' })
    return peers.body.data?.some((p: any) => p.node_id === w.peerId) === true
  }, 10_000, 'B to route to W')
})
