// When Heartbeats publishes: at start, at once on a registration change, and busy-counter changes
// coalesced into one heartbeat per BusyInterval, the last state included. A fake host counts publishes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { protocol } from '../../src/proto/index.ts'
import { decodeHeartbeat } from '../../src/protocols/heartbeat-codec.ts'
import { Heartbeats, MIN_PUBLISH_GAP_MS } from '../../src/protocols/heartbeat.ts'
import { NetworkView } from '../../src/registry/view.ts'
import type { ChangeReason, LocalProject } from '../../src/registry/local.ts'
import { silentLogger } from '../../src/core/logger.ts'

const peerId = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))

function setup (busyIntervalMs: number): { heartbeats: Heartbeats, published: number[][], change: (reason: ChangeReason, busy: number) => void } {
  const published: number[][] = []
  let busy = 0
  const listeners = new Set<(reason: ChangeReason) => void>()
  const pubsub = {
    topicValidators: new Map(),
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
  const heartbeats = new Heartbeats({
    host: { peerId, services: { pubsub } } as any,
    topic: 'T',
    registry: registry as any,
    view: new NetworkView({ routingFreshMs: 60_000 }),
    intervalMs: 3_600_000,
    busyIntervalMs,
    baseNodeType: 0,
    version: 'aicn/test',
    log: silentLogger
  })
  const change = (reason: ChangeReason, to: number): void => { busy = to; for (const l of listeners) l(reason) }
  return { heartbeats, published, change }
}

test('busy-counter changes are coalesced into one heartbeat per BusyInterval, carrying the last count', async () => {
  const { heartbeats, published, change } = setup(400)
  heartbeats.start()
  await sleep(20)
  assert.deepEqual(published, [[0]], 'one heartbeat at start')
  for (let i = 1; i <= 20; i++) change('busy', i % 5)
  change('busy', 3)
  await sleep(200)
  assert.equal(published.length, 1, 'nothing before BusyInterval has passed')
  await sleep(500)
  assert.deepEqual(published, [[0], [3]], 'one heartbeat with the last busy count')
  await heartbeats.stop()
})

test('a registration change is published at once, and a pending busy heartbeat then waits a full interval', async () => {
  const { heartbeats, published, change } = setup(400)
  heartbeats.start()
  // Past the shortest gap between two heartbeats (the next test).
  await sleep(MIN_PUBLISH_GAP_MS + 20)
  change('busy', 1)
  change('registration', 1)
  await sleep(20)
  assert.equal(published.length, 2, 'the registration went out at once')
  await sleep(250)
  assert.equal(published.length, 2, 'the busy change was folded into it')
  change('busy', 0)
  await sleep(700)
  assert.deepEqual(published.at(-1), [0])
  assert.equal(published.length, 3)
  await heartbeats.stop()
})

test('a burst of registrations is one heartbeat per MIN_PUBLISH_GAP_MS, the last state included', async () => {
  const { heartbeats, published, change } = setup(400)
  heartbeats.start()
  await sleep(MIN_PUBLISH_GAP_MS + 20)
  const started = performance.now()
  for (let i = 1; i <= 50; i++) change('registration', i)
  // The first goes out at once, the last state within a gap or two (plus up to 200 ms of jitter).
  for (let i = 0; i < 80 && published.at(-1)?.[0] !== 50; i++) await sleep(25)
  const elapsed = performance.now() - started
  assert.deepEqual(published[1], [1], 'the first went out at once')
  assert.deepEqual(published.at(-1), [50])
  // However slow this machine is, never more than one heartbeat per gap (and never one per registration).
  assert.ok(published.length - 1 <= 2 + Math.ceil(elapsed / MIN_PUBLISH_GAP_MS), `${published.length - 1} heartbeats in ${Math.round(elapsed)} ms`)
  assert.ok(published.length - 1 < 50)
  await heartbeats.stop()
})
