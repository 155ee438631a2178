// When Heartbeats publishes: at start, at once on a registration change, and busy-counter changes
// coalesced into one heartbeat per BusyInterval, the last state included. A fake host counts publishes;
// node:test's mock timers stand in for the clock, so the schedule is checked to the millisecond.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { protocol } from '../../../src/proto/index.ts'
import { decodeHeartbeat } from '../../../src/protocols/heartbeat-codec.ts'
import { heartbeats as heartbeatService, MIN_PUBLISH_GAP_MS, type Heartbeats } from '../../../src/protocols/heartbeat/index.ts'
import { NetworkView } from '../../../src/registry/view.ts'
import type { ChangeReason, LocalProject } from '../../../src/registry/local.ts'
import { silentLogger } from '../../../src/core/logger.ts'

const peerId = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))

/** Lets the promises started by a timer callback (the publish) run; setImmediate is not mocked. */
async function settle (): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
}

function setup (busyIntervalMs: number): { heartbeats: Heartbeats, published: number[][], change: (reason: ChangeReason, busy: number) => void } {
  const published: number[][] = []
  let busy = 0
  const listeners = new Set<(reason: ChangeReason) => void>()
  const pubsub = {
    topicValidators: new Map(),
    getTopics: () => ['T'],
    subscribe: () => {},
    addEventListener: () => {},
    removeEventListener: () => {},
    publish: async (_topic: string, data: Uint8Array) => {
      const heartbeat = decodeHeartbeat(protocol.Message.decode(data))
      published.push(heartbeat.projects.flatMap((p) => p.models.map((m) => m.busy)))
      return { recipients: [] }
    }
  }
  const registry = {
    onChange: (listener: (reason: ChangeReason) => void) => { listeners.add(listener); return () => { listeners.delete(listener) } },
    projects: (): LocalProject[] => [{ project: 'P', models: [{ project: 'P', model: 'm', api: '', type: 0, cid: '', busy, available: true }] }],
    hasModels: () => true
  }
  const heartbeats = heartbeatService({
    viewSync: false,
    topic: 'T',
    registry: registry as any,
    view: new NetworkView({ routingFreshMs: 60_000 }),
    intervalMs: 3_600_000,
    busyIntervalMs,
    baseNodeType: 0,
    version: 'aicn/test',
    log: silentLogger
  })({ peerId, pubsub: pubsub as any, connectionManager: { getConnections: () => [] }, peerStore: { get: async () => ({ protocols: [] }) } })
  const change = (reason: ChangeReason, to: number): void => { busy = to; for (const l of listeners) l(reason) }
  return { heartbeats, published, change }
}

test('busy-counter changes are coalesced into one heartbeat per BusyInterval, carrying the last count', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] })
  const { heartbeats, published, change } = setup(400)
  heartbeats.start()
  heartbeats.afterStart()
  await settle()
  assert.deepEqual(published, [[0]], 'one heartbeat at start')
  for (let i = 1; i <= 20; i++) change('busy', i % 5)
  change('busy', 3)
  t.mock.timers.tick(399)
  await settle()
  assert.equal(published.length, 1, 'nothing before BusyInterval has passed')
  // BusyInterval plus at most the jitter (JITTER_MS, 200 ms in src/protocols/heartbeat/heartbeats.ts).
  t.mock.timers.tick(201)
  await settle()
  assert.deepEqual(published, [[0], [3]], 'one heartbeat with the last busy count')
  await heartbeats.beforeStop()
  heartbeats.stop()
})

test('a registration change is published at once, and a pending busy heartbeat then waits a full interval', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] })
  const { heartbeats, published, change } = setup(400)
  heartbeats.start()
  heartbeats.afterStart()
  await settle()
  // Past the shortest gap between two heartbeats (the next test).
  t.mock.timers.tick(MIN_PUBLISH_GAP_MS + 20)
  change('busy', 1)
  change('registration', 1)
  await settle()
  assert.equal(published.length, 2, 'the registration went out at once')
  t.mock.timers.tick(250)
  await settle()
  assert.equal(published.length, 2, 'the busy change was folded into it')
  change('busy', 0)
  // Due BusyInterval after the registration's heartbeat, plus at most the jitter.
  t.mock.timers.tick(149)
  await settle()
  assert.equal(published.length, 2, 'not before a full BusyInterval since the last heartbeat')
  t.mock.timers.tick(201)
  await settle()
  assert.deepEqual(published.at(-1), [0])
  assert.equal(published.length, 3)
  await heartbeats.beforeStop()
  heartbeats.stop()
})

test('a burst of registrations is one heartbeat per MIN_PUBLISH_GAP_MS, the last state included', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] })
  const { heartbeats, published, change } = setup(400)
  heartbeats.start()
  heartbeats.afterStart()
  await settle()
  t.mock.timers.tick(MIN_PUBLISH_GAP_MS + 20)
  for (let i = 1; i <= 50; i++) change('registration', i)
  await settle()
  assert.deepEqual(published, [[0], [1]], 'the first went out at once, the rest wait for the gap')
  // The rest within one gap plus at most the jitter (JITTER_MS, 200 ms), as one heartbeat with the last state.
  t.mock.timers.tick(MIN_PUBLISH_GAP_MS - 1)
  await settle()
  assert.equal(published.length, 2, 'nothing within the gap')
  t.mock.timers.tick(201)
  await settle()
  assert.deepEqual(published, [[0], [1], [50]])
  await heartbeats.beforeStop()
  heartbeats.stop()
})
