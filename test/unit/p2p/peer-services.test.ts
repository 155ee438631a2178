// The background services that watch peers (direct-peer liveness, the latency tracker, the bootstrap
// keeper, rendezvous, the connection history, peer logging) with stub components: an event target for libp2p's events, stubs for pings and dials. They act
// only between libp2p's afterStart and beforeStop, so our own shutdown says nothing about the peers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TypedEventEmitter, type Connection, type Libp2pEvents, type PeerId } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { silentLogger } from '../../../src/core/logger.ts'
import { directPeerLiveness } from '../../../src/registry/liveness/index.ts'
import { latencyTracker } from '../../../src/p2p/latency/index.ts'
import { bootstrapKeeper } from '../../../src/p2p/bootstrap-keeper/index.ts'
import { rendezvous } from '../../../src/p2p/rendezvous/index.ts'
import { peerHistory } from '../../../src/p2p/peer-history/index.ts'
import { peerLog } from '../../../src/metrics/peer-log/index.ts'
import type { NetworkView } from '../../../src/registry/view.ts'

async function peerId (): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

test('liveness: a lost last connection takes a known node out of routing, a new one brings it back; not before afterStart nor after beforeStop', async () => {
  const [known, stranger] = await Promise.all([peerId(), peerId()])
  const marks: string[] = []
  const view = {
    has: (id: string) => id === known.toString(),
    markUnreachable: (id: string) => { marks.push(`down ${id}`) },
    markReachable: (id: string) => { marks.push(`up ${id}`) }
  } as unknown as NetworkView
  const events = new TypedEventEmitter<Libp2pEvents>()
  const liveness = directPeerLiveness({ view, log: silentLogger })({ events })
  liveness.start()
  events.safeDispatchEvent('peer:disconnect', { detail: known })
  assert.deepEqual(marks, [], 'not watching before the node has started')

  liveness.afterStart()
  events.safeDispatchEvent('peer:disconnect', { detail: known })
  events.safeDispatchEvent('peer:disconnect', { detail: stranger })
  events.safeDispatchEvent('peer:connect', { detail: known })
  assert.deepEqual(marks, [`down ${known.toString()}`, `up ${known.toString()}`], 'a node the view does not know is left alone')

  liveness.beforeStop()
  events.safeDispatchEvent('peer:disconnect', { detail: known })
  liveness.stop()
  assert.equal(marks.length, 2, 'our own shutdown closes every connection: not a sign of the peers')
})

test('latency: a connected peer is pinged and its round-trip time kept; a disconnected one is forgotten', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
  const peer = await peerId()
  const pinged: string[] = []
  const events = new TypedEventEmitter<Libp2pEvents>()
  const tracker = latencyTracker({ log: silentLogger, intervalMs: 60_000 })({
    events,
    connectionManager: { getConnections: () => [{ remotePeer: peer }, { remotePeer: peer }] as unknown as Connection[] },
    ping: { ping: async (target) => { pinged.push(target.toString()); return 20 } }
  })
  tracker.start()
  tracker.afterStart()
  events.safeDispatchEvent('peer:connect', { detail: peer })
  t.mock.timers.tick(500)
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(tracker.latencyMs(peer.toString()), 20)
  t.mock.timers.tick(60_000)
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(pinged, [peer.toString(), peer.toString()], 'each peer once per round, however many connections')
  events.safeDispatchEvent('peer:disconnect', { detail: peer })
  assert.equal(tracker.latencyMs(peer.toString()), undefined)
  tracker.beforeStop()
  t.mock.timers.tick(120_000)
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(pinged.length, 2, 'no pings once stopping')
  tracker.stop()
})

test('bootstrap keeper: redials a disconnected bootstrap peer each interval, with the priority of node.dial(), only while running', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] })
  const [a, b] = await Promise.all([peerId(), peerId()])
  const connected = new Set([a.toString()])
  const dials: Array<{ addr: string, priority?: number }> = []
  const peers = [a, b].map((id, i) => ({ peerId: id, addr: multiaddr(`/ip4/127.0.0.1/tcp/${4001 + i}/p2p/${id.toString()}`) }))
  const keeper = bootstrapKeeper({ peers, log: silentLogger, intervalMs: 1_000 })({
    connectionManager: {
      getConnections: (peer) => connected.has(peer?.toString() ?? '') ? [{} as Connection] : [],
      openConnection: async (addr, options) => {
        dials.push({ addr: addr.toString(), priority: options?.priority })
        connected.add(b.toString())
        return {} as Connection
      }
    }
  })
  keeper.start()
  t.mock.timers.tick(5_000)
  assert.deepEqual(dials, [], 'nothing before the node has started')
  keeper.afterStart()
  t.mock.timers.tick(1_000)
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(dials, [{ addr: peers[1].addr.toString(), priority: 75 }])
  connected.delete(b.toString())
  keeper.beforeStop()
  t.mock.timers.tick(5_000)
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(dials.length, 1, 'no dials once stopping')
  keeper.stop()
})

test('rendezvous: advertises the namespace from afterStart, again soon after meeting a DHT server, never after beforeStop', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const provides: string[] = []
  const events = new TypedEventEmitter<Libp2pEvents>()
  const service = rendezvous({ namespace: 'DeepBrainChain', dhtProtocol: '/dbc/kad/1.0.0', log: silentLogger })({
    events,
    contentRouting: {
      provide: async (cid) => { provides.push(cid.toString()) },
      findProviders: async function * () {}
    },
    peerStore: { get: async () => { throw new Error('not known') } },
    connectionManager: { getConnections: () => [] },
    dht: undefined
  })
  const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve)) }
  service.start()
  t.mock.timers.tick(10)
  await settle()
  assert.deepEqual(provides, [], 'nothing before the node has started')
  service.afterStart()
  t.mock.timers.tick(0)
  await settle()
  assert.equal(provides.length, 1)
  const server = await peerId()
  // identify of a peer that speaks the DHT: the first provide reached no server, so it is repeated
  events.safeDispatchEvent('peer:identify', { detail: { peerId: server, protocols: ['/dbc/kad/1.0.0'] } as unknown as Libp2pEvents['peer:identify']['detail'] })
  t.mock.timers.tick(1_000)
  await settle()
  assert.equal(provides.length, 2)
  assert.equal(provides[0], provides[1], 'the same namespace CID')
  service.beforeStop()
  events.safeDispatchEvent('peer:identify', { detail: { peerId: server, protocols: ['/dbc/kad/1.0.0'] } as unknown as Libp2pEvents['peer:identify']['detail'] })
  t.mock.timers.tick(60_000)
  await settle()
  assert.equal(provides.length, 2, 'no advertising once stopping')
  service.stop()
})

test('peer history: records dialable addresses from start; redial dials the known peers not connected (not us, not the skipped), forgets failing ones, and stops at beforeStop', async () => {
  const [self, connected, bootstrap, known, failing] = await Promise.all([peerId(), peerId(), peerId(), peerId(), peerId()])
  const recorded: Array<[string, string[]]> = []
  const failed: string[] = []
  const entries: Array<[string, { Addresses: string[] }]> = [self, connected, bootstrap, known, failing].map((id, i) => [id.toString(), { Addresses: [`/ip4/127.0.0.1/tcp/${5001 + i}`] }])
  const history = {
    connected: async (id: string, addresses: string[]) => { recorded.push([id, addresses]) },
    failed: async (id: string) => { failed.push(id); return 'forgotten' as const },
    entries: async () => entries as any
  }
  const dials: Array<{ addr: string, priority?: number }> = []
  let hold: ((err: Error) => void) | undefined
  const events = new TypedEventEmitter<Libp2pEvents>()
  const service = peerHistory({ history, skip: new Set([bootstrap.toString()]), log: silentLogger })({
    peerId: self,
    events,
    connectionManager: {
      getConnections: () => [{ remotePeer: connected }] as unknown as Connection[],
      openConnection: async (addrs, options) => {
        dials.push({ addr: (addrs as unknown[]).map(String).join(), priority: options?.priority })
        if ((addrs as unknown[]).map(String).join().includes(failing.toString())) throw new Error('refused')
        if (hold !== undefined) return await new Promise((_resolve, reject) => { hold = reject; options?.signal?.addEventListener('abort', () => { reject(options.signal?.reason) }) })
        return {} as Connection
      }
    }
  })
  assert.deepEqual(await service.redial(), { connected: 0, failed: 0, forgotten: 0 }, 'no redial before the node has started')
  service.start()
  const outbound = multiaddr(`/ip4/127.0.0.1/tcp/6001/p2p/${known.toString()}`)
  events.safeDispatchEvent('connection:open', { detail: { remotePeer: known, remoteAddr: outbound, direction: 'outbound' } as unknown as Connection })
  events.safeDispatchEvent('connection:open', { detail: { remotePeer: known, remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/50123'), direction: 'inbound' } as unknown as Connection })
  events.safeDispatchEvent('peer:identify', { detail: { peerId: known, listenAddrs: [multiaddr('/ip4/0.0.0.0/tcp/6001'), multiaddr('/ip4/127.0.0.1/tcp/6001')] } as unknown as Libp2pEvents['peer:identify']['detail'] })
  const id = known.toString()
  assert.deepEqual(recorded, [[id, ['/ip4/127.0.0.1/tcp/6001']], [id, []], [id, ['/ip4/127.0.0.1/tcp/6001']]], 'an inbound port is ephemeral, an unspecified host is not dialable')

  const result = await service.redial()
  assert.deepEqual(result, { connected: 1, failed: 1, forgotten: 1 })
  assert.deepEqual(dials.map((d) => d.addr).sort(), [`/ip4/127.0.0.1/tcp/5004/p2p/${id}`, `/ip4/127.0.0.1/tcp/5005/p2p/${failing.toString()}`].sort())
  assert.deepEqual(dials.map((d) => d.priority), [75, 75], 'the priority of node.dial()')
  assert.deepEqual(failed, [failing.toString()])

  // A redial still running when the node stops ends without counting our shutdown against the peers.
  hold = () => {}
  entries.splice(4, 1)
  const running = service.redial()
  await new Promise((resolve) => setImmediate(resolve))
  service.beforeStop()
  assert.deepEqual(await running, { connected: 0, failed: 0, forgotten: 0 })
  assert.deepEqual(failed, [failing.toString()])
  service.stop()
  events.safeDispatchEvent('connection:open', { detail: { remotePeer: known, remoteAddr: outbound, direction: 'outbound' } as unknown as Connection })
  assert.equal(recorded.length, 3, 'no recording once stopped')
})

test('peer log: one line per peer connected (with its address) and disconnected, between afterStart and beforeStop', async () => {
  const peer = await peerId()
  const lines: string[] = []
  const log = { ...silentLogger, info: (fields: { peer: string, addr?: string }, message: string) => { lines.push(`${message} ${fields.addr ?? '-'}`) } } as unknown as typeof silentLogger
  const events = new TypedEventEmitter<Libp2pEvents>()
  const service = peerLog({ log })({ events, connectionManager: { getConnections: () => [{ remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/4001') }] as unknown as Connection[] } })
  service.start()
  events.safeDispatchEvent('peer:connect', { detail: peer })
  service.afterStart()
  events.safeDispatchEvent('peer:connect', { detail: peer })
  events.safeDispatchEvent('peer:disconnect', { detail: peer })
  service.beforeStop()
  events.safeDispatchEvent('peer:disconnect', { detail: peer })
  service.stop()
  assert.deepEqual(lines, ['peer connected /ip4/127.0.0.1/tcp/4001', 'peer disconnected -'])
})
