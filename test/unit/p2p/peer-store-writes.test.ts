// The datastore wrapper that skips peer-record writes changing only the `updated` stamp
// (src/p2p/patches/peer-store-writes.ts), under the real @libp2p/peer-store, on an in-memory datastore.
import '../../../src/core/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { TypedEventEmitter, type PeerId } from '@libp2p/interface'
import { persistentPeerStore } from '@libp2p/peer-store'
import { Key, type Datastore } from 'interface-datastore'
import { onlyTimestampChanged, parsePeerRecord, REFRESH_MS, SkipUnchangedPeerRecords } from '../../../src/p2p/patches/peer-store-writes.ts'

/** A datastore in a Map that counts the puts reaching it. */
function memoryDatastore (): { store: Datastore, puts: () => number, map: Map<string, Uint8Array> } {
  const map = new Map<string, Uint8Array>()
  let puts = 0
  const notFound = (): Error => Object.assign(new Error('not found'), { name: 'NotFoundError' })
  const store = {
    async put (key: Key, value: Uint8Array) { puts++; map.set(key.toString(), value); return key },
    async get (key: Key) { const v = map.get(key.toString()); if (v === undefined) throw notFound(); return v },
    async has (key: Key) { return map.has(key.toString()) },
    async delete (key: Key) { map.delete(key.toString()) }
  }
  return { store: store as unknown as Datastore, puts: () => puts, map }
}

const quiet = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

async function peerId (): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

async function setup (): Promise<{ peerStore: ReturnType<typeof persistentPeerStore>, wrapped: SkipUnchangedPeerRecords, puts: () => number, map: Map<string, Uint8Array> }> {
  const mem = memoryDatastore()
  const wrapped = new SkipUnchangedPeerRecords(mem.store)
  const peerStore = persistentPeerStore({
    peerId: await peerId(),
    datastore: wrapped,
    logger: { forComponent: () => quiet },
    events: new TypedEventEmitter()
  } as unknown as Parameters<typeof persistentPeerStore>[0])
  return { peerStore, wrapped, puts: mem.puts, map: mem.map }
}

test('merging a protocol the record already lists writes nothing; a new protocol is written', async () => {
  const { peerStore, wrapped, puts } = await setup()
  const remote = await peerId()
  await peerStore.merge(remote, { protocols: ['/ipfs/ping/1.0.0'] })
  assert.equal(puts(), 1)
  // what libp2p's connection does for every ping stream (libp2p/dist/src/connection.js)
  for (let i = 0; i < 20; i++) await peerStore.merge(remote, { protocols: ['/ipfs/ping/1.0.0'] })
  assert.equal(puts(), 1)
  assert.deepEqual(wrapped.stats, { written: 1, skipped: 20 })
  await peerStore.merge(remote, { protocols: ['/aicn/job/1.0.0'] })
  assert.equal(puts(), 2)
  assert.deepEqual((await peerStore.get(remote)).protocols, ['/aicn/job/1.0.0', '/ipfs/ping/1.0.0'])
})

test('an unchanged record is written again once its stamp is REFRESH_MS old, so an active peer never expires', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_800_000_000_000 })
  const { peerStore, puts } = await setup()
  const remote = await peerId()
  await peerStore.merge(remote, { protocols: ['/ipfs/ping/1.0.0'] })
  t.mock.timers.tick(REFRESH_MS - 1)
  await peerStore.merge(remote, { protocols: ['/ipfs/ping/1.0.0'] })
  assert.equal(puts(), 1)
  t.mock.timers.tick(1)
  await peerStore.merge(remote, { protocols: ['/ipfs/ping/1.0.0'] })
  assert.equal(puts(), 2)
  // A ping a minute for 7 hours: past the store's maxPeerAge (6 h, @libp2p/peer-store constants.js), the
  // record is still there, and was written once every REFRESH_MS.
  const before = puts()
  const minutes = 7 * 60
  for (let i = 0; i < minutes; i++) {
    t.mock.timers.tick(60_000)
    await peerStore.merge(remote, { protocols: ['/ipfs/ping/1.0.0'] })
  }
  assert.equal(await peerStore.has(remote), true)
  assert.equal(puts() - before, Math.floor(minutes * 60_000 / REFRESH_MS))
  // Without pings the record expires as the library intends.
  t.mock.timers.tick(6 * 3_600_000 + 1)
  assert.equal(await peerStore.has(remote), false)
})

test('other keys, and records it cannot read, are written as they come', async () => {
  const { wrapped, puts, map } = await setup()
  const key = new Key('/dht/record/abc')
  await wrapped.put(key, Uint8Array.of(1, 2))
  await wrapped.put(key, Uint8Array.of(1, 2))
  assert.equal(puts(), 2)
  const peerKey = new Key('/peers/bafzbeib')
  map.set(peerKey.toString(), Uint8Array.of(0xff)) // a truncated varint
  await wrapped.put(peerKey, Uint8Array.of(0x40, 0x01))
  assert.equal(puts(), 3)
})

test('the record parser is bounded and strict', () => {
  // field 1 (bytes "ab"), field 8 (varint 300)
  const rec = Uint8Array.of(0x0a, 0x02, 0x61, 0x62, 0x40, 0xac, 0x02)
  const parsed = parsePeerRecord(rec)
  assert.equal(parsed?.updated, 300)
  assert.deepEqual(parsed?.rest.map((b) => [...b]), [[0x0a, 0x02, 0x61, 0x62]])
  // a length past the end, a group wire type, a varint longer than 10 bytes
  assert.equal(parsePeerRecord(Uint8Array.of(0x0a, 0x05, 0x61)), undefined)
  assert.equal(parsePeerRecord(Uint8Array.of(0x0b)), undefined)
  assert.equal(parsePeerRecord(Uint8Array.of(0x40, ...new Array<number>(11).fill(0x80), 0x01)), undefined)
  // another field changed, the stamp went back, or no stamp at all: written
  const later = Uint8Array.of(0x0a, 0x02, 0x61, 0x62, 0x40, 0xad, 0x02)
  assert.equal(onlyTimestampChanged(rec, later), true)
  assert.equal(onlyTimestampChanged(later, rec), false)
  assert.equal(onlyTimestampChanged(rec, Uint8Array.of(0x0a, 0x02, 0x61, 0x63, 0x40, 0xad, 0x02)), false)
  assert.equal(onlyTimestampChanged(Uint8Array.of(0x0a, 0x02, 0x61, 0x62), Uint8Array.of(0x0a, 0x02, 0x61, 0x62)), false)
})
