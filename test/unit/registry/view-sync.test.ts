// View sync (src/registry/view-sync/view-sync.ts) between two peers on in-memory streams (test/helpers/memory-peers.ts,
// no sockets): the server passes on the signed heartbeats it keeps; the requester accepts only
// entries signed by their author on its topic, and does not check entries it already heard. The server's
// own heartbeat comes first, signed for the sync.
import '../../../src/core/polyfill.ts'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { TypedEventEmitter, type Libp2pEvents } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { RPC } from '@libp2p/gossipsub/message'
import { silentLogger } from '../../../src/core/logger.ts'
import { MemoryNetwork, type MemoryPeer } from '../../helpers/memory-peers.ts'
import { encodeHeartbeat } from '../../../src/protocols/heartbeat-codec.ts'
import { SignedHeartbeats, ViewSync, MAX_SYNC_ENTRIES, signEntry, viewSync, type SignedEntry, type SignedPubSubMessage, type ViewSyncComponents } from '../../../src/registry/view-sync/index.ts'

const TOPIC = 'T'
let server: MemoryPeer
let client: MemoryPeer
const store = new SignedHeartbeats()
const accepted: SignedPubSubMessage[] = []
const fresh = new Set<string>()
let clientSync: ViewSync

const network = new MemoryNetwork()

async function node (privateKey?: PrivateKey): Promise<MemoryPeer> {
  return await network.peer(privateKey)
}

/** A memory peer's components as view sync takes them: no connections listed, no events dispatched. */
function componentsOf (peer: MemoryPeer): ViewSyncComponents {
  return {
    registrar: peer.components.registrar,
    connectionManager: { ...peer.components.connectionManager, getConnections: () => [] },
    events: new TypedEventEmitter<Libp2pEvents>()
  }
}

/** A heartbeat signed as gossipsub's StrictSign does, as a 'message' event would carry it. */
async function signedHeartbeat (key: PrivateKey, options: { topic?: string, signer?: PrivateKey, tamper?: boolean } = {}): Promise<SignedPubSubMessage> {
  const from = peerIdFromPrivateKey(key)
  const data = encodeHeartbeat({ nodeId: from.toString(), version: 'aicn/test', nodeType: 4, projects: [{ project: 'P', models: [{ model: 'm', cid: '', type: 0, busy: 0, available: true }] }], leaving: false })
  const sequenceNumber = 7n
  const seqno = new Uint8Array(8)
  new DataView(seqno.buffer).setBigUint64(0, sequenceNumber)
  const topic = options.topic ?? TOPIC
  const encoded = RPC.Message.encode({ from: from.toMultihash().bytes, data, seqno, topic })
  const toSign = new Uint8Array([...new TextEncoder().encode('libp2p-pubsub:'), ...encoded])
  const signature = await (options.signer ?? key).sign(toSign)
  const sent = options.tamper === true ? Uint8Array.from(data, (b, i) => i === data.length - 1 ? b ^ 1 : b) : data
  return { type: 'signed', from, topic, data: sent, sequenceNumber, signature, key: key.publicKey }
}

before(async () => {
  const serverKey = await generateKeyPair('secp256k1')
  server = await node(serverKey)
  client = await node()
  // The server's own heartbeat goes first, signed at the time of the sync.
  const own = async (): Promise<SignedEntry> => await signEntry(serverKey, TOPIC, encodeHeartbeat({ nodeId: server.peerId.toString(), version: 'aicn/test', nodeType: 3, projects: [], leaving: false }))
  const serverSync = viewSync({ topic: TOPIC, log: silentLogger })(componentsOf(server))
  serverSync.serveWith({ store, fresh: () => false, accept: () => {}, own })
  await serverSync.start()
  assert.deepEqual(server.protocols(), ['/aicn/view/1.0.0'], 'the handler is in place at start, before the node listens')
  clientSync = new ViewSync(componentsOf(client), { topic: TOPIC, log: silentLogger })
  clientSync.serveWith({ store: new SignedHeartbeats(), fresh: (nodeId) => fresh.has(nodeId), accept: (m) => { accepted.push(m) } })
})

after(async () => {
  await client?.host.stop()
  await server?.host.stop()
})

test('a requester accepts the entries signed by their authors, rejects forged ones, and skips what it heard', async () => {
  const keys = await Promise.all(Array.from({ length: 6 }, async () => await generateKeyPair('secp256k1')))
  const ids = keys.map((k) => peerIdFromPrivateKey(k).toString())
  store.keep(ids[0]!, await signedHeartbeat(keys[0]!))
  store.keep(ids[1]!, await signedHeartbeat(keys[1]!))
  store.keep(ids[2]!, await signedHeartbeat(keys[2]!, { signer: keys[5] })) // signed by someone else
  store.keep(ids[3]!, await signedHeartbeat(keys[3]!, { tamper: true })) // data changed after signing
  store.keep(ids[4]!, await signedHeartbeat(keys[4]!, { topic: 'other' })) // signed for another topic: fails the check
  fresh.add(ids[1]!)
  const result = await clientSync.sync(server.peerId)
  assert.deepEqual(result, { received: 6, checked: 5, accepted: 2, skipped: 1, rejected: 3 })
  assert.deepEqual(accepted.map((m) => m.from?.toString()), [server.peerId.toString(), ids[0]])
  assert.equal(accepted[1]!.sequenceNumber, 7n)
  // The accepted entry is the author's message, unchanged, with its key.
  assert.equal(accepted[1]!.key?.equals(keys[0]!.publicKey), true)
})

test('the store keeps one entry per node, forgets on request and stays bounded', async () => {
  const s = new SignedHeartbeats()
  const key = await generateKeyPair('secp256k1')
  const message = await signedHeartbeat(key)
  s.keep('a', message)
  s.keep('a', message)
  assert.equal(s.size, 1)
  s.keep('b', { ...message, signature: undefined })
  assert.equal(s.size, 1, 'an unsigned message is not kept')
  s.forget('a')
  assert.equal(s.size, 0)
  for (let i = 0; i < MAX_SYNC_ENTRIES + 5; i++) s.keep(`n${i}`, message)
  assert.equal(s.size, MAX_SYNC_ENTRIES)
  s.retain((id) => id === 'n1')
  assert.equal(s.size, 1)
})
