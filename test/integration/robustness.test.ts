// Bad input, wrong keys, dead and silent peers: every case gets a clear error and the node keeps serving.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { connectedPeers, TestNode, waitFor } from './harness.ts'

const PSK = 'bb'.repeat(32)
const OTHER_PSK = 'cc'.repeat(32)
// A valid node id that no node in these tests has.
const UNKNOWN_NODE = '16Uiu2HAmJnGqxBqtWGkymSsy5WDKJY5A5NctcUduENADDptQFF4Y'

describe('bad input and failing peers', () => {
  let a: TestNode, b: TestNode
  const extra: TestNode[] = []

  before(async () => {
    b = await TestNode.start({ mode: 'input', psk: PSK })
    a = await TestNode.start({ mode: 'worker', psk: PSK, bootstrap: [await b.addr()] })
    await waitFor(async () => (await connectedPeers(a)).includes(b.peerId), 20_000, 'A to connect to B')
  })

  after(async () => {
    await Promise.all([a, b, ...extra].filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
  })

  const cases: Array<{ name: string, path: string, body?: unknown, method?: string, status: number, code: number, message?: RegExp }> = [
    { name: 'malformed JSON', path: '/api/v0/peer', body: '{"node_id": ', status: 400, code: 1002, message: /JSON/ },
    { name: 'JSON that is not an object', path: '/api/v0/peer', body: '[1,2]', status: 400, code: 1002 },
    { name: 'missing node_id', path: '/api/v0/peer', body: {}, status: 400, code: 1001, message: /node_id/ },
    { name: 'node_id of the wrong type', path: '/api/v0/host/info', body: { node_id: 42 }, status: 400, code: 1001, message: /node_id/ },
    { name: 'node_id that is not a peer id', path: '/api/v0/peer', body: { node_id: 'not-a-node' }, status: 400, code: 1001, message: /not a valid node id/ },
    { name: 'bad timeout', path: '/api/v0/peer', body: { node_id: UNKNOWN_NODE, timeout: 'soon' }, status: 400, code: 1001, message: /timeout/ },
    { name: 'missing node_addr', path: '/api/v0/swarm/connect', body: {}, status: 400, code: 1001, message: /node_addr/ },
    { name: 'node_addr that is not a multiaddr', path: '/api/v0/swarm/connect', body: { node_addr: 'tcp://x' }, status: 400, code: 1001, message: /multiaddr/ },
    { name: 'node_addr without /p2p', path: '/api/v0/bootstrap/add', body: { node_addr: '/ip4/127.0.0.1/tcp/1' }, status: 400, code: 1001, message: /p2p/ },
    { name: 'unknown path', path: '/api/v0/nope', status: 404, code: 1010 },
    { name: 'wrong method', path: '/api/v0/swarm/connect', method: 'GET', status: 405, code: 1010 },
    { name: 'unknown node', path: '/api/v0/host/info', body: { node_id: UNKNOWN_NODE, timeout: '3s' }, status: 404, code: 1005, message: /not found/ }
  ]
  for (const c of cases) {
    test(`${c.name} → ${c.status} with code ${c.code}, and the node keeps serving`, async () => {
      const result = await a.call(c.path, c.body, c.method === undefined ? {} : { method: c.method })
      assert.equal(result.status, c.status, JSON.stringify(result.body))
      assert.equal(result.body.code, c.code)
      assert.equal(typeof result.body.message, 'string')
      if (c.message !== undefined) assert.match(result.body.message, c.message)
      assert.equal((await a.call('/api/v0/id')).status, 200)
    })
  }

  test('an oversized body → 413 with code 1008', async () => {
    const result = await a.call('/api/v0/peer', JSON.stringify({ node_id: 'x'.repeat(2 * 1024 * 1024) }))
    assert.equal(result.status, 413)
    assert.equal(result.body.code, 1008)
    assert.equal((await a.call('/api/v0/id')).status, 200)
  })

  test('connecting to an unreachable address fails clearly', async () => {
    const result = await a.call('/api/v0/swarm/connect', { node_addr: `/ip4/127.0.0.1/tcp/1/p2p/${UNKNOWN_NODE}` })
    assert.equal(result.status, 502)
    assert.equal(result.body.code, 1005)
  })

  test('a node with another pre-shared key cannot join', async () => {
    const outsider = await TestNode.start({ mode: 'worker', psk: OTHER_PSK })
    extra.push(outsider)
    const result = await outsider.call('/api/v0/swarm/connect', { node_addr: await b.addr() })
    assert.equal(result.status, 502, JSON.stringify(result.body))
    assert.equal(result.body.code, 1005)
    assert.ok(!(await connectedPeers(b)).includes(outsider.peerId))
    assert.equal((await outsider.call('/api/v0/id')).status, 200)
    assert.equal((await b.call('/api/v0/id')).status, 200)
  })

  test('a peer that stops answering gives 504 with the timeout code', async () => {
    const silent = await TestNode.start({ mode: 'worker', psk: PSK, bootstrap: [await b.addr()] })
    extra.push(silent)
    await waitFor(async () => (await connectedPeers(b)).includes(silent.peerId), 20_000, 'the silent node to connect')
    process.kill(silent.pid ?? 0, 'SIGSTOP')
    try {
      const result = await b.call('/api/v0/host/info', { node_id: silent.peerId, timeout: '2s' })
      assert.equal(result.status, 504, JSON.stringify(result.body))
      assert.equal(result.body.code, 1004)
      assert.equal((await b.call('/api/v0/id')).status, 200)
    } finally {
      process.kill(silent.pid ?? 0, 'SIGCONT')
    }
  })

  test('a restarted node reconnects to the peers in its connection history', async () => {
    // D has no bootstrap peers: only its history can bring it back to B.
    const d = await TestNode.start({ mode: 'worker', psk: PSK })
    extra.push(d)
    assert.equal((await d.call('/api/v0/swarm/connect', { node_addr: await b.addr() })).body.code, 0)
    await waitFor(async () => (await connectedPeers(d)).includes(b.peerId), 10_000, 'D to connect to B')
    assert.equal(await d.stop(), 0)
    await d.launch()
    await waitFor(async () => (await connectedPeers(d)).includes(b.peerId), 20_000, 'D to reconnect to B from its history')
  })

  test('SIGTERM stops the daemon cleanly and removes the api file', async () => {
    const e = await TestNode.start({ mode: 'worker', psk: PSK })
    extra.push(e)
    assert.equal(await e.stop(), 0)
    const { access } = await import('node:fs/promises')
    await assert.rejects(access(`${e.dir}/api`))
    assert.match(e.output, /shutting down/)
  })
})
