// Five daemons on loopback: registrations spread to every node through heartbeats, leave with
// unregister, a graceful stop or death, and survive restarts; forged and malformed heartbeats are refused.
import '../../src/core/polyfill.ts'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { preSharedKey } from '@libp2p/pnet'
import { multiaddr } from '@multiformats/multiaddr'
import { startFakeModelServer } from '../../scripts/fake-model.ts'
import { swarmKeyFromHex } from '../../src/p2p/psk.ts'
import { encodeHeartbeat } from '../../src/protocols/heartbeat-codec.ts'
import { connectedPeers, TestNode, waitFor } from './harness.ts'

const PSK = 'dd'.repeat(32)
const INTERVAL = '2s'

const withInterval = (config: any): void => { config.App.PeersCollect.HeartbeatInterval = INTERVAL }

async function listsModel (node: TestNode, project: string, model: string, serving: string): Promise<boolean> {
  const peers = await node.call('/api/v0/ai/projects/peers', { project, model })
  return peers.status === 200 && peers.body.data.some((p: any) => p.node_id === serving)
}

describe('the model registry across five nodes', () => {
  let b: TestNode
  let workers: TestNode[] = []
  let model: Awaited<ReturnType<typeof startFakeModelServer>>
  const all = (): TestNode[] => [b, ...workers]

  before(async () => {
    model = await startFakeModelServer()
    b = await TestNode.start({ mode: 'input', psk: PSK, edit: withInterval })
    const bAddr = await b.addr()
    workers = await Promise.all([1, 2, 3, 4].map(async () => await TestNode.start({ psk: PSK, bootstrap: [bAddr], edit: withInterval })))
    await waitFor(async () => (await connectedPeers(b)).length >= 4, 20_000, 'all workers to connect to B')
    await waitFor(async () => {
      const lists = await Promise.all(all().map(async (n) => (await n.call('/api/v0/peers')).body.data.length))
      return lists.every((n) => n === 5)
    }, 20_000, 'every node to hear every heartbeat')
  })

  after(async () => {
    await Promise.all(all().filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
    await model?.close()
  })

  test('a model registered on one node is listed by all others', async () => {
    const [a] = workers
    const result = await a.call('/api/v0/ai/model/register', { project: 'DecentralGPT', model: 'Llama3-70B', api: `${model.url}/v1/chat/completions`, type: 0, cid: 'gpu0' })
    assert.deepEqual(result.body, { code: 0, message: 'ok' })
    for (const node of all()) {
      await waitFor(async () => await listsModel(node, 'DecentralGPT', 'Llama3-70B', a.peerId), 10_000, 'the model to be listed')
      assert.ok((await node.call('/api/v0/ai/projects/list')).body.data.includes('DecentralGPT'))
      assert.deepEqual((await node.call('/api/v0/ai/projects/models', { project: 'DecentralGPT' })).body.data, ['Llama3-70B'])
    }
    const peers = await b.call('/api/v0/ai/projects/peers?number=5', { project: 'DecentralGPT', model: 'Llama3-70B' })
    const entry = peers.body.data.find((p: any) => p.node_id === a.peerId)
    assert.equal(entry.connectivity, 1)
    assert.equal(entry.cid, 'gpu0')
    assert.equal(entry.Idle, 0)
    assert.equal(typeof entry.latency, 'number')
  })

  test('ai/project/peer shows any node\'s registrations, asked over RPC', async () => {
    const [a, c] = workers
    const result = await c.call('/api/v0/ai/project/peer', { node_id: a.peerId })
    assert.equal(result.status, 200, JSON.stringify(result.body))
    assert.deepEqual(result.body.data, [{ project: 'DecentralGPT', models: ['Llama3-70B'] }])
    const self = await a.call('/api/v0/ai/project/peer', { node_id: a.peerId })
    assert.deepEqual(self.body.data, result.body.data)
  })

  test('a project registered with several models; unregister removes it everywhere', async () => {
    const c = workers[1]
    const register = await c.call('/api/v0/ai/project/register', {
      Project: 'SuperImage',
      Models: [
        { Model: 'superImage', API: `${model.url}/v1/images/generations`, Type: 1, CID: 'a' },
        { Model: 'superImage', API: `${model.url}/v1/images/generations`, Type: 1, CID: 'b' },
        { Model: 'embedder', API: `${model.url}/v1/embeddings`, Type: 3 }
      ]
    })
    assert.deepEqual(register.body, { code: 0, message: 'ok' })
    for (const node of all()) await waitFor(async () => await listsModel(node, 'SuperImage', 'embedder', c.peerId), 10_000, 'the project to spread')
    const saved = JSON.parse(await readFile(c.configPath, 'utf8'))
    assert.equal(saved.AIProjects.find((p: any) => p.Project === 'SuperImage').Models.length, 3)

    assert.deepEqual((await c.call('/api/v0/ai/model/unregister', { project: 'SuperImage', model: 'superImage', cid: 'a' })).body, { code: 0, message: 'ok' })
    assert.deepEqual((await c.call('/api/v0/ai/model/unregister', { project: 'SuperImage', model: 'superImage', cid: 'a' })).body, { code: 0, message: 'not existed' })
    assert.deepEqual((await c.call('/api/v0/ai/project/unregister', { project: 'SuperImage' })).body, { code: 0, message: 'ok' })
    assert.deepEqual((await c.call('/api/v0/ai/project/unregister', { project: 'SuperImage' })).body, { code: 0, message: 'not existed' })
    for (const node of all()) {
      await waitFor(async () => !(await node.call('/api/v0/ai/projects/list')).body.data.includes('SuperImage'), 10_000, 'the project to disappear')
    }
    assert.deepEqual(JSON.parse(await readFile(c.configPath, 'utf8')).AIProjects.map((p: any) => p.Project), [])
  })

  test('concurrent registrations all land in the config and the view', async () => {
    const d = workers[2]
    const results = await Promise.all(Array.from({ length: 20 }, async (_, i) =>
      await d.call('/api/v0/ai/model/register', { project: 'Many', model: `m${i}`, api: `${model.url}/v1/chat/completions` })))
    assert.ok(results.every((r) => r.body.code === 0))
    const saved = JSON.parse(await readFile(d.configPath, 'utf8'))
    assert.equal(saved.AIProjects.find((p: any) => p.Project === 'Many').Models.length, 20)
    await waitFor(async () => (await b.call('/api/v0/ai/projects/models', { project: 'Many' })).body.data.length === 20, 10_000, 'all 20 models on B')
  })

  test('bad registrations get the documented error and the node keeps serving', async () => {
    const a = workers[0]
    const cases: Array<[string, unknown, RegExp]> = [
      ['/api/v0/ai/model/register', { model: 'x', api: `${model.url}/v1` }, /project/],
      ['/api/v0/ai/model/register', { project: 'P', api: `${model.url}/v1` }, /model/],
      ['/api/v0/ai/model/register', { project: 'P', model: 'x' }, /api/],
      ['/api/v0/ai/model/register', { project: 'P', model: 'x', api: 'not a url' }, /not a URL/],
      ['/api/v0/ai/model/register', { project: 'P', model: 'x', api: 'ftp://127.0.0.1/x' }, /http or https/],
      ['/api/v0/ai/model/register', { project: 'P', model: 'x', api: 'http://192.0.2.7:8000/v1' }, /not an address of this machine/],
      ['/api/v0/ai/model/register', { project: 'P', model: 'x', api: `${model.url}/v1`, type: 9 }, /type/],
      ['/api/v0/ai/model/register', { project: 'P', model: 'x', api: `${model.url}/v1`, type: 'chat' }, /type/],
      ['/api/v0/ai/project/register', { project: 'P' }, /models/],
      ['/api/v0/ai/project/register', { project: 'P', models: [] }, /at least one/],
      ['/api/v0/ai/project/register', { project: 'P', models: ['x'] }, /models\[0\]/],
      ['/api/v0/ai/project/register', { project: 'P', models: [{ model: 'x' }] }, /models\[0\]: .*api/],
      ['/api/v0/ai/project/unregister', {}, /project/],
      ['/api/v0/ai/model/unregister', { project: 'P' }, /model/],
      ['/api/v0/ai/projects/peers', { project: 'P' }, /model/],
      ['/api/v0/ai/projects/peers?number=-1', { project: 'P', model: 'x' }, /number/]
    ]
    for (const [path, body, message] of cases) {
      const result = await a.call(path, body)
      assert.equal(result.status, 400, `${path} ${JSON.stringify(body)} → ${JSON.stringify(result.body)}`)
      assert.equal(result.body.code, 1001)
      assert.match(result.body.message, message)
    }
    assert.equal((await a.call('/api/v0/id')).status, 200)
    assert.ok(!(await a.call('/api/v0/ai/project/peer', { node_id: a.peerId })).body.data.some((p: any) => p.project === 'P'))
  })

  test('a model whose server is down is announced unavailable and not routed to', async () => {
    const e = workers[3]
    const dead = await startFakeModelServer()
    const deadUrl = `${dead.url}/v1/chat/completions`
    await dead.close()
    assert.equal((await e.call('/api/v0/ai/model/register', { project: 'Health', model: 'down', api: deadUrl })).body.code, 0)
    await waitFor(async () => (await b.call('/api/v0/ai/projects/models', { project: 'Health' })).body.data.includes('down'), 10_000, 'the model to be listed')
    // Listed (it is registered) but not a routing candidate while its server is down.
    await waitFor(async () => !(await listsModel(b, 'Health', 'down', e.peerId)), 10_000, 'the dead model to leave the candidates')
  })

  test('forged and malformed heartbeats are refused; honest ones are heard', async () => {
    const victim = workers[1].peerId
    const rogue = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionProtector: preSharedKey({ psk: swarmKeyFromHex(PSK) }),
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true }) }
    })
    try {
      const pubsub = rogue.services.pubsub as any
      pubsub.subscribe('DeepBrainChain')
      await rogue.dial(multiaddr(await b.addr()))
      await waitFor(() => pubsub.getSubscribers('DeepBrainChain').length > 0, 10_000, 'the rogue to see B subscribed')
      const model = (name: string): any => ({ project: name, models: [{ model: 'm', cid: '', type: 0, busy: 0, available: true }] })
      const rogueId = rogue.peerId.toString()
      await pubsub.publish('DeepBrainChain', encodeHeartbeat({ nodeId: victim, version: 'x', nodeType: 4, projects: [model('Forged')], leaving: false }))
      await pubsub.publish('DeepBrainChain', encodeHeartbeat({ nodeId: victim, version: 'x', nodeType: 0, projects: [], leaving: true }))
      await pubsub.publish('DeepBrainChain', new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02]))
      await pubsub.publish('DeepBrainChain', encodeHeartbeat({ nodeId: '', version: 'x', nodeType: 0, projects: [], leaving: false }))
      await pubsub.publish('DeepBrainChain', encodeHeartbeat({ nodeId: rogueId, version: 'x', nodeType: 4, projects: [model('RogueHonest')], leaving: false }))
      await waitFor(async () => (await b.call('/api/v0/ai/projects/list')).body.data.includes('RogueHonest'), 10_000, 'the honest heartbeat')
      const list = (await b.call('/api/v0/ai/projects/list')).body.data
      assert.ok(!list.includes('Forged'))
      assert.ok((await b.call('/api/v0/peers')).body.data.includes(victim), 'a forged leaving heartbeat did not remove the victim')
      assert.ok(list.includes('DecentralGPT'), 'the view is undisturbed')
    } finally {
      await rogue.stop()
    }
  })

  test('a node stopped gracefully disappears at once; a killed one leaves routing when its connection to B closes', async () => {
    const [, , d, e] = workers
    assert.equal((await e.call('/api/v0/ai/model/register', { project: 'Mortal', model: 'm', api: `${model.url}/v1/chat/completions` })).body.code, 0)
    await waitFor(async () => await listsModel(b, 'Many', 'm0', d.peerId) && await listsModel(b, 'Mortal', 'm', e.peerId), 10_000, 'D and E to be listed')

    assert.equal(await d.stop(), 0)
    // The list window is 12 h: only D's leaving heartbeat can take it off /peers this soon.
    await waitFor(async () => !(await b.call('/api/v0/peers')).body.data.includes(d.peerId), 10_000, 'D to disappear from B\'s view')
    assert.ok(!(await listsModel(b, 'Many', 'm0', d.peerId)))

    await e.kill()
    // B was directly connected to E: the closed connection takes E out of routing
    // (src/registry/liveness/index.ts; liveness.test.ts shows it apart from the freshness window, on 180 s).
    await waitFor(async () => !(await listsModel(b, 'Mortal', 'm', e.peerId)), 5_000, 'E to leave routing')
    assert.ok((await b.call('/api/v0/peers')).body.data.includes(e.peerId), 'a dead node stays listed for a while')
  })

  test('registrations survive kill -9 and a restart', async () => {
    const a = workers[0]
    assert.equal((await a.call('/api/v0/ai/model/register', { project: 'Durable', model: 'd', api: `${model.url}/v1/chat/completions`, cid: 'x' })).body.code, 0)
    await a.kill()
    await a.launch()
    const self = await a.call('/api/v0/ai/project/peer', { node_id: a.peerId })
    assert.deepEqual(self.body.data.map((p: any) => p.project).sort(), ['DecentralGPT', 'Durable'])
    await waitFor(async () => await listsModel(b, 'Durable', 'd', a.peerId), 20_000, 'B to hear the restarted node')
  })
})
