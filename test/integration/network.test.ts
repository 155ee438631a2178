// Three daemons on loopback: A and C bootstrap to B. Covers the node-control API across the network.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { connectedPeers, TestNode, waitFor } from './harness.ts'

const PSK = 'aa'.repeat(32)

describe('a three-node network', () => {
  let a: TestNode, b: TestNode, c: TestNode

  before(async () => {
    b = await TestNode.start({ mode: 'input', psk: PSK })
    const bAddr = await b.addr();
    [a, c] = await Promise.all([
      TestNode.start({ mode: 'worker', psk: PSK, bootstrap: [bAddr] }),
      TestNode.start({ mode: 'worker', psk: PSK, bootstrap: [bAddr] })
    ])
    await waitFor(async () => (await connectedPeers(b)).length >= 2, 20_000, 'A and C to connect to B')
  })

  after(async () => {
    await Promise.all([a, b, c].filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
  })

  test('id describes the node itself, bare as in the contract', async () => {
    const { status, body } = await a.call('/api/v0/id')
    assert.equal(status, 200)
    assert.equal(body.peer_id, a.peerId)
    assert.equal(body.protocol_version, 'aicn/0.0.1')
    assert.match(body.agent_version, /^aicn\/\d+\.\d+\.\d+/)
    assert.ok(body.addresses.every((x: string) => x.startsWith('/ip4/127.0.0.1/tcp/')))
    for (const p of ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/floodsub/1.0.0', '/meshsub/1.1.0', '/aicn/rpc/1.0.0']) {
      assert.ok(body.protocols.includes(p), `protocols include ${p}`)
    }
    // A worker is a DHT client (it does not serve the DHT); the input node B serves it.
    assert.ok(!body.protocols.includes('/dbc/kad/1.0.0'))
    const ofB = await b.call('/api/v0/id')
    assert.ok(ofB.body.protocols.includes('/dbc/kad/1.0.0'))
    assert.ok(ofB.body.protocols.includes('/libp2p/circuit/relay/0.2.0/hop'))
  })

  test('A gets C\'s PeerInfo and host info through the network', async () => {
    const peer = await a.call('/api/v0/peer', { node_id: c.peerId })
    assert.equal(peer.status, 200, JSON.stringify(peer.body))
    assert.equal(peer.body.code, 0)
    assert.equal(peer.body.data.peer_id, c.peerId)
    assert.equal(peer.body.data.protocol_version, 'aicn/0.0.1')
    assert.ok(peer.body.data.protocols.includes('/aicn/rpc/1.0.0'))

    const info = await a.call('/api/v0/host/info', { node_id: c.peerId })
    assert.equal(info.status, 200, JSON.stringify(info.body))
    assert.equal(info.body.data.os.os, 'linux')
    assert.ok(info.body.data.cpu.length >= 1)
    assert.ok(info.body.data.memory.total_physical_bytes > 0)
  })

  test('read endpoints accept GET with query parameters and upper-case keys', async () => {
    const viaQuery = await a.call(`/api/v0/peer?node_id=${c.peerId}`)
    assert.equal(viaQuery.body.data.peer_id, c.peerId)
    const upper = await a.call('/api/v0/host/info', { NODE_ID: a.peerId })
    assert.equal(upper.status, 200)
    assert.equal(upper.body.data.os.os, 'linux')
  })

  test('peers, swarm and pubsub views', async () => {
    // `peers` lists the nodes whose heartbeats this node has heard.
    await waitFor(async () => {
      const peers = await b.call('/api/v0/peers')
      return [a.peerId, b.peerId, c.peerId].every((id) => peers.body.data.includes(id))
    }, 10_000, 'B to hear every node')

    const swarm = await b.call('/api/v0/swarm/peers')
    assert.ok(Array.isArray(swarm.body))
    const toA = swarm.body.find((p: any) => p.peer === a.peerId)
    assert.ok(toA !== undefined)
    assert.match(toA.id, /^16Uiu2HA.{2}-\d+$/)
    assert.match(toA.addr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+/)
    assert.match(toA.latency, /^[\d.]+(ns|µs|ms|s)$|^\d+m[\d.]+s$/)
    assert.equal(toA.direction, 'Inbound')

    const addrs = await a.call('/api/v0/swarm/addrs')
    const ofB = addrs.body.find((p: any) => p.peer === b.peerId)
    assert.ok(ofB.addrs.some((x: string) => x.startsWith('/ip4/127.0.0.1/tcp/')))

    await waitFor(async () => {
      const subs = await a.call('/api/v0/pubsub/peers', {})
      return subs.body.includes(b.peerId)
    }, 10_000, 'A to see B subscribed to the topic')
  })

  test('rendezvous lists the nodes that advertise the topic', async () => {
    await waitFor(async () => {
      const result = await a.call('/api/v0/rendezvous/peers')
      return result.status === 200 && result.body.data.includes(c.peerId)
    }, 20_000, 'C to appear as a rendezvous provider')
  })

  test('the only DHT server answers rendezvous from the records it holds', async () => {
    // B knows no other DHT server (A and C are clients): kad-dht alone would wait for one and time out.
    await waitFor(async () => {
      const result = await b.call('/api/v0/rendezvous/peers')
      assert.equal(result.status, 200, JSON.stringify(result.body))
      return result.body.data.includes(a.peerId) && result.body.data.includes(c.peerId)
    }, 20_000, 'B to list A and C as rendezvous providers')
  })

  test('swarm/connect and swarm/disconnect', async () => {
    const cAddr = await c.addr()
    const connect = await a.call('/api/v0/swarm/connect', { node_addr: cAddr })
    assert.deepEqual(connect.body, { code: 0, message: 'ok' })
    assert.ok((await connectedPeers(a)).includes(c.peerId))

    const disconnect = await a.call('/api/v0/swarm/disconnect', { node_addr: cAddr })
    assert.deepEqual(disconnect.body, { code: 0, message: 'ok' })
    assert.ok(!(await connectedPeers(a)).includes(c.peerId))

    const again = await a.call('/api/v0/swarm/disconnect', { node_addr: cAddr })
    assert.equal(again.status, 400)
    assert.equal(again.body.code, 1001)
  })

  test('bootstrap list, add and rm are saved in the config', async () => {
    const cAddr = await c.addr()
    const before = await a.call('/api/v0/bootstrap/list')
    assert.equal(before.body.data.length, 1)

    assert.equal((await a.call('/api/v0/bootstrap/add', { node_addr: cAddr })).body.code, 0)
    const added = await a.call('/api/v0/bootstrap/list')
    assert.deepEqual(added.body.data, [...before.body.data, cAddr])
    assert.ok((await connectedPeers(a)).includes(c.peerId))
    const { readFile } = await import('node:fs/promises')
    const saved = JSON.parse(await readFile(a.configPath, 'utf8'))
    assert.deepEqual(saved.Bootstrap, added.body.data)

    assert.equal((await a.call('/api/v0/bootstrap/rm', { node_addr: cAddr })).body.code, 0)
    assert.deepEqual((await a.call('/api/v0/bootstrap/list')).body.data, before.body.data)
    assert.deepEqual(JSON.parse(await readFile(a.configPath, 'utf8')).Bootstrap, before.body.data)
  })

  test('metrics in the Prometheus format', async () => {
    for (const path of ['/api/v0/debug/metrics/prometheus', '/metrics']) {
      const response = await fetch(b.api + path)
      assert.equal(response.status, 200)
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/)
      const body = await response.text()
      assert.match(body, /^libp2p_/m)
      assert.match(body, /^process_cpu_seconds_total/m)
      assert.match(body, /^aicn_http_requests_total/m)
    }
  })
})
