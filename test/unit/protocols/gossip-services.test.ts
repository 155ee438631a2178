// The heartbeats and view sync as libp2p services, without sockets: stub pubsub, libp2p's events on a
// TypedEventEmitter, view syncs over in-memory stream pairs (test/helpers/memory-peers.ts), node:test's
// mock timers for the schedule. They act only between libp2p's afterStart and beforeStop; the leaving
// heartbeat goes out in beforeStop, while pubsub still runs.
import '../../../src/core/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TypedEventEmitter, type Connection, type Libp2pEvents, type PeerId } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { protocol } from '../../../src/proto/index.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import { decodeHeartbeat, type Heartbeat } from '../../../src/protocols/heartbeat-codec.ts'
import { heartbeats } from '../../../src/protocols/heartbeat/index.ts'
import { RESYNC_MS, SignedHeartbeats, VIEW_PROTOCOL, viewSync, type ViewSource, type ViewSync, type ViewSyncComponents } from '../../../src/registry/view-sync/index.ts'
import { NetworkView } from '../../../src/registry/view.ts'
import type { ChangeReason, LocalProject } from '../../../src/registry/local.ts'
import type { SubscriptionChange } from '../../../src/p2p/pubsub.ts'
import { MemoryNetwork, type MemoryPeer } from '../../helpers/memory-peers.ts'

const TOPIC = 'T'

/** Lets the promises started by a callback run; setImmediate is not mocked. */
async function settle (): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
}

/** A pubsub stub: what was published (decoded), the topic's validator and listeners. */
function stubPubsub (): { pubsub: any, published: Heartbeat[], topics: string[], listeners: Map<string, Set<(event: CustomEvent) => void>> } {
  const published: Heartbeat[] = []
  const topics: string[] = []
  const listeners = new Map<string, Set<(event: CustomEvent) => void>>()
  const pubsub = {
    topicValidators: new Map(),
    getTopics: () => [...topics],
    subscribe: (topic: string) => { topics.push(topic) },
    addEventListener: (type: string, listener: (event: CustomEvent) => void) => { listeners.set(type, (listeners.get(type) ?? new Set()).add(listener)) },
    removeEventListener: (type: string, listener: (event: CustomEvent) => void) => { listeners.get(type)?.delete(listener) },
    publish: async (_topic: string, data: Uint8Array) => {
      published.push(decodeHeartbeat(protocol.Message.decode(data)))
      return { recipients: [] }
    }
  }
  return { pubsub, published, topics, listeners }
}

function stubRegistry (): { registry: any, change: (reason: ChangeReason) => void } {
  const listeners = new Set<(reason: ChangeReason) => void>()
  const registry = {
    onChange: (listener: (reason: ChangeReason) => void) => { listeners.add(listener); return () => { listeners.delete(listener) } },
    projects: (): LocalProject[] => [{ project: 'P', models: [{ project: 'P', model: 'm', api: '', type: 0, cid: '', busy: 0, available: true }] }],
    hasModels: () => true
  }
  return { registry, change: (reason) => { for (const l of listeners) l(reason) } }
}

test('heartbeats: nothing before afterStart; afterStart subscribes, validates and publishes; beforeStop publishes the leaving heartbeat; a joining peer without view sync is answered and asked for its registrations', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] })
  const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const goPeer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const aicnPeer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const { pubsub, published, topics, listeners } = stubPubsub()
  const { registry, change } = stubRegistry()
  let given: ViewSource | undefined
  const sync = { serveWith: (source: ViewSource) => { given = source } } as unknown as ViewSync
  const view = new NetworkView({ routingFreshMs: 60_000 })
  const service = heartbeats({ topic: TOPIC, registry, view, intervalMs: 60_000, busyIntervalMs: 1_000, baseNodeType: 0, version: 'aicn/test', log: silentLogger })({
    peerId: self,
    pubsub,
    connectionManager: { getConnections: () => [{} as Connection] },
    peerStore: { get: async (peer) => ({ protocols: peer.equals(aicnPeer) ? [VIEW_PROTOCOL] : ['/ipfs/id/1.0.0'], metadata: new Map([['AgentVersion', new TextEncoder().encode('go/0.2.3')]]) }) },
    viewSync: sync
  })
  assert.notEqual(given, undefined, 'view sync is given its source when the service is built, before the node starts')
  const asked: string[] = []
  service.askWith(async (peer) => {
    asked.push(peer.toString())
    return { projects: [{ project: 'G', models: [{ model: 'chat', cid: 'c', type: 0, idle: 1 }] }] }
  })
  service.start()
  change('registration')
  t.mock.timers.tick(120_000)
  await settle()
  assert.equal(published.length, 0, 'nothing before the node has started')
  assert.deepEqual(topics, [])

  service.afterStart()
  await settle()
  assert.deepEqual(topics, [TOPIC], 'subscribed to the topic')
  assert.equal(pubsub.topicValidators.has(TOPIC), true, 'the topic validator is installed')
  assert.equal(published.length, 1, 'the first heartbeat at once')
  assert.equal(published[0]!.leaving, false)
  assert.equal(view.has(self.toString()), true, 'our own entry is in the view')
  t.mock.timers.tick(60_000)
  await settle()
  assert.equal(published.length, 2, 'then every interval')

  // A peer that does not speak view sync (a Go node) joins the topic: answered within about a second.
  const join: SubscriptionChange = { peerId: goPeer, subscriptions: [{ topic: TOPIC, subscribe: true }] }
  for (const listener of listeners.get('subscription-change') ?? []) listener(new CustomEvent('subscription-change', { detail: join }))
  const aicnJoin: SubscriptionChange = { peerId: aicnPeer, subscriptions: [{ topic: TOPIC, subscribe: true }] }
  for (const listener of listeners.get('subscription-change') ?? []) listener(new CustomEvent('subscription-change', { detail: aicnJoin }))
  t.mock.timers.tick(1_000 + 200)
  await settle()
  assert.equal(published.length, 3, 'answered the joins with one heartbeat')
  assert.deepEqual(asked, [goPeer.toString()], 'the peer without view sync is asked for its registrations, the aicn peer is not')
  const entry = view.heard(goPeer.toString())
  assert.equal(entry?.intervalMs, 180_000, 'held to the Go rhythm')
  assert.deepEqual(view.candidates('G', 'chat').map((c) => c.nodeId), [goPeer.toString()], 'routable at once')
  for (const listener of listeners.get('subscription-change') ?? []) listener(new CustomEvent('subscription-change', { detail: join }))
  await settle()
  assert.equal(asked.length, 1, 'a node in the view is not asked again')

  await service.beforeStop()
  assert.equal(published.length, 4)
  assert.equal(published[3]!.leaving, true, 'the leaving heartbeat goes out in beforeStop')
  assert.equal(listeners.get('message')?.size, 0, 'no longer listening')
  assert.equal(await given!.own?.(), undefined, 'view sync no longer serves our heartbeat')
  change('registration')
  t.mock.timers.tick(120_000)
  await settle()
  service.stop()
  assert.equal(published.length, 4, 'nothing after beforeStop')
})

/** A memory peer's components as view sync takes them, with its own events and the connections it lists. */
function syncComponents (peer: MemoryPeer, connected: () => boolean): ViewSyncComponents & { events: TypedEventEmitter<Libp2pEvents> } {
  return {
    registrar: peer.components.registrar,
    connectionManager: { ...peer.components.connectionManager, getConnections: () => connected() ? [{} as Connection] : [] },
    events: new TypedEventEmitter<Libp2pEvents>()
  }
}

function identified (peerId: PeerId, protocols: string[], direction: 'inbound' | 'outbound'): CustomEvent {
  return new CustomEvent('peer:identify', { detail: { peerId, protocols, connection: { direction } } })
}

test('view sync: the handler is in place at start; syncs from a peer we dialled once it identifies and RESYNC_MS later, from afterStart to beforeStop; stop removes the handler', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const network = new MemoryNetwork()
  const [server, client] = [await network.peer(), await network.peer()]
  const served: string[] = []
  const source = (): ViewSource => ({ store: new SignedHeartbeats(), fresh: () => false, accept: () => {}, served: (peer) => { served.push(peer.toString()) } })
  const serverSync = viewSync({ topic: TOPIC, log: silentLogger })(syncComponents(server, () => true))
  serverSync.serveWith(source())
  await serverSync.start()
  serverSync.afterStart()
  const components = syncComponents(client, () => true)
  const clientSync = viewSync({ topic: TOPIC, log: silentLogger, refreshMs: 0 })(components)
  clientSync.serveWith(source())
  await clientSync.start()
  assert.deepEqual(client.protocols(), [VIEW_PROTOCOL], 'the handler is registered in start, before the node listens')

  components.events.dispatchEvent(identified(server.peerId, [VIEW_PROTOCOL], 'outbound'))
  await settle()
  assert.deepEqual(served, [], 'no syncs before the node has started')

  clientSync.afterStart()
  components.events.dispatchEvent(identified(server.peerId, [VIEW_PROTOCOL], 'inbound'))
  components.events.dispatchEvent(identified(server.peerId, ['/ipfs/id/1.0.0'], 'outbound'))
  await settle()
  assert.deepEqual(served, [], 'only from a peer we dialled that speaks view sync')
  components.events.dispatchEvent(identified(server.peerId, [VIEW_PROTOCOL], 'outbound'))
  await settle()
  assert.deepEqual(served, [client.peerId.toString()], 'synced at once')
  t.mock.timers.tick(RESYNC_MS[0]!)
  await settle()
  assert.equal(served.length, 2, 'and again RESYNC_MS later')

  clientSync.beforeStop()
  t.mock.timers.tick(RESYNC_MS.at(-1)!)
  components.events.dispatchEvent(identified(server.peerId, [VIEW_PROTOCOL], 'outbound'))
  await settle()
  assert.equal(served.length, 2, 'no syncs once stopping')
  await clientSync.stop()
  assert.deepEqual(client.protocols(), [], 'the handler is gone')
  await serverSync.stop()
})

test('view sync: without serveWith() (view sync off) the service registers nothing and listens to nothing', async () => {
  const network = new MemoryNetwork()
  const peer = await network.peer()
  const components = syncComponents(peer, () => true)
  const service = viewSync({ topic: TOPIC, log: silentLogger })(components)
  await service.start()
  service.afterStart()
  assert.deepEqual(peer.protocols(), [])
  assert.equal(components.events.listenerCount('peer:identify'), 0)
  service.beforeStop()
  await service.stop()
})
