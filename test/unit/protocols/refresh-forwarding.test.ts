// The hub's forwarding of unchanged heartbeats (src/protocols/heartbeat/refresh-forwarding.ts): changes go to every
// peer; a refresh skips exactly the peers that synced their view from us within the author's interval.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RefreshForwarding } from '../../../src/protocols/heartbeat/index.ts'
import { encodeHeartbeat } from '../../../src/protocols/heartbeat-codec.ts'
import { GO_DEFAULT_INTERVAL_MS } from '../../../src/registry/rhythm.ts'

const TOPIC = 'T'

async function author (): Promise<{ id: string, from: Uint8Array }> {
  const peerId = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))
  return { id: peerId.toString(), from: peerId.toMultihash().bytes }
}

function raw (a: { id: string, from: Uint8Array }, options: { model?: string, intervalMs?: number, leaving?: boolean, topic?: string } = {}): { from: Uint8Array, data: Uint8Array, topic: string } {
  const projects = options.leaving === true ? [] : [{ project: 'P', models: [{ model: options.model ?? 'M', cid: '', type: 0, busy: 0, available: true }] }]
  const data = encodeHeartbeat({ nodeId: a.id, version: 'aicn/test', nodeType: 0, projects, leaving: options.leaving ?? false, intervalMs: options.intervalMs })
  return { from: a.from, data, topic: options.topic ?? TOPIC }
}

test('a first heartbeat, a change and a leaving heartbeat go to everyone; a refresh skips recent syncers only', async () => {
  let now = 1_000_000
  const policy = new RefreshForwarding(TOPIC, () => now)
  const x = await author()
  policy.synced('synced-long-ago')
  now += 60_000
  policy.synced('synced-lately')
  now += 1_000
  assert.equal(policy.skip(raw(x, { intervalMs: 30_000 })), undefined, 'first heartbeat')
  assert.deepEqual([...policy.skip(raw(x, { intervalMs: 30_000 }))!], ['synced-lately'], 'refresh')
  assert.equal(policy.skip(raw(x, { intervalMs: 30_000, model: 'N' })), undefined, 'models changed')
  assert.deepEqual([...policy.skip(raw(x, { intervalMs: 30_000, model: 'N' }))!], ['synced-lately'])
  assert.equal(policy.skip(raw(x, { leaving: true })), undefined, 'leaving')
  assert.equal(policy.skip(raw(x, { intervalMs: 30_000, model: 'N' })), undefined, 'back after leaving')
  // Past the author's interval since its sync, a peer gets refreshes again.
  now += 30_000
  assert.deepEqual([...policy.skip(raw(x, { intervalMs: 30_000, model: 'N' }))!], [])
  assert.equal(policy.stats.refreshes, 3)
  // By kind (the aicn_heartbeat_forward_* metrics): "back after leaving" is a first heartbeat again; the
  // last refresh had no recent syncer to leave out; sends are counted where the router is wrapped (below).
  assert.deepEqual(policy.stats, { first: 2, changed: 1, leaving: 1, refreshes: 3, refreshesToAll: 1, skipped: 0 })
})

test('a Go author (no announced interval) is held to the Go default; other topics and garbage are not touched', async () => {
  let now = 5_000_000
  const policy = new RefreshForwarding(TOPIC, () => now)
  const x = await author()
  policy.synced('p')
  policy.skip(raw(x))
  now += GO_DEFAULT_INTERVAL_MS - 1
  assert.deepEqual([...policy.skip(raw(x))!], ['p'])
  now += 2
  assert.deepEqual([...policy.skip(raw(x))!], [])
  assert.equal(policy.skip(raw(x, { topic: 'other' })), undefined)
  assert.equal(policy.skip({ from: x.from, data: new Uint8Array([1, 2, 3]), topic: TOPIC }), undefined)
  const y = await author()
  assert.equal(policy.skip({ ...raw(x), from: y.from }), undefined, 'a heartbeat for another node')
})

test('install narrows a router whose forwardMessage has the gossipsub shape, keeping the excluded peers it was given', async () => {
  const calls: Array<Set<string> | undefined> = []
  const router = { forwardMessage (_id: string, _raw: unknown, _source?: string, exclude?: Set<string>): void { calls.push(exclude) } }
  const policy = new RefreshForwarding(TOPIC)
  assert.equal(policy.install(router), true)
  assert.equal(policy.install({}), false)
  const x = await author()
  policy.synced('p')
  router.forwardMessage('1', raw(x), 'src', new Set(['author']))
  router.forwardMessage('2', raw(x), 'src', new Set(['author']))
  assert.deepEqual([...calls[0]!], ['author'])
  assert.deepEqual([...calls[1]!].sort(), ['author', 'p'])
  assert.equal(policy.stats.skipped, 1)
})
