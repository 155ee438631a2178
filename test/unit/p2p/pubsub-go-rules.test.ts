// The Go node's pubsub rules (src/p2p/patches/pubsub-go-rules.ts), run on the libraries' own router instances:
// their peer selection and message handling run for real, only the sending is captured.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { gossipsub } from '@libp2p/gossipsub'
import { floodsub } from '@libp2p/floodsub'
import { applyGoRulesToFloodsub, authorOf, goMessageId, skipAuthorInGossipsub } from '../../../src/p2p/patches/pubsub-go-rules.ts'
import { fastMessageId } from '../../../src/p2p/fast-msg-id.ts'

const TOPIC = 'DeepBrainChain'

function quietLogger (): unknown {
  const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
  return { forComponent: () => log }
}

async function identity (): Promise<{ key: PrivateKey, id: PeerId }> {
  const key = await generateKeyPair('secp256k1')
  return { key, id: peerIdFromPrivateKey(key) }
}

test("goMessageId is go-libp2p-pubsub's default: author ID bytes, then the 8-byte seqno", async () => {
  const { id } = await identity()
  const msgId = goMessageId({ type: 'signed', from: id, sequenceNumber: 0x0102n })
  const from = id.toMultihash().bytes
  assert.deepEqual(msgId.subarray(0, from.byteLength), from)
  assert.deepEqual([...msgId.subarray(from.byteLength)], [0, 0, 0, 0, 0, 0, 1, 2])
  assert.throws(() => goMessageId({ type: 'unsigned' }))
  assert.throws(() => goMessageId({ type: 'signed', from: id, sequenceNumber: 1n << 64n }))
  // The fast ID (checked before signatures) names the same (author, seqno) pair.
  const raw = { from, seqno: msgId.subarray(from.byteLength) }
  assert.equal(fastMessageId(raw), fastMessageId({ from, seqno: Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 2]) }))
})

test('authorOf reads a peer ID from a wire message and ignores garbage', async () => {
  const { id } = await identity()
  assert.equal(authorOf(id.toMultihash().bytes), id.toString())
  assert.equal(authorOf(undefined), undefined)
  assert.equal(authorOf(new Uint8Array()), undefined)
  assert.equal(authorOf(Uint8Array.from([0xff, 0xff, 0xff])), undefined)
})

test('gossipsub forwards a message to everyone but the peer it came from and its author', async () => {
  const self = await identity()
  const [author, via, other] = await Promise.all([identity(), identity(), identity()])
  const router = skipAuthorInGossipsub(gossipsub({ msgIdFn: goMessageId })({ logger: quietLogger(), peerId: self.id, privateKey: self.key } as any)) as any
  const everyone = [author, via, other].map((p) => p.id.toString())
  router.topics.set(TOPIC, new Set(everyone))
  router.mesh.set(TOPIC, new Set(everyone))
  const sentTo: string[] = []
  router.sendRpc = (peer: string) => { sentTo.push(peer); return true }

  router.forwardMessage('id-1', { from: author.id.toMultihash().bytes, topic: TOPIC }, via.id.toString())
  assert.deepEqual(sentTo.sort(), [other.id.toString()])

  // The peer set the library excluded stays excluded, and a message from its author directly is unchanged.
  sentTo.length = 0
  router.forwardMessage('id-2', { from: author.id.toMultihash().bytes, topic: TOPIC }, author.id.toString(), new Set([other.id.toString()]))
  assert.deepEqual(sentTo, [via.id.toString()])
})

test('floodsub: Go message ID, no echo to the author, our own message is not taken back, 8-byte seqnos', async () => {
  const self = await identity()
  const [author, via, other] = await Promise.all([identity(), identity(), identity()])
  const router = applyGoRulesToFloodsub(floodsub({ globalSignaturePolicy: 'StrictSign' })({ logger: quietLogger(), peerId: self.id, privateKey: self.key } as any)) as any
  router.started = true
  router.subscriptions.add(TOPIC)
  // floodsub keeps a PeerSet here; it only reads values() of it.
  router.topics.set(TOPIC, new Set([author, via, other].map((p) => p.id)))
  const sent: Array<{ to: string, seqno?: bigint }> = []
  router.send = (peer: PeerId, data: { messages: Array<{ sequenceNumber?: bigint }> }) => { sent.push({ to: peer.toString(), seqno: data.messages[0]?.sequenceNumber }) }
  const delivered: unknown[] = []
  router.addEventListener('message', (e: CustomEvent) => delivered.push(e.detail))

  assert.deepEqual(await router.getMsgId({ type: 'signed', from: author.id, sequenceNumber: 5n }), goMessageId({ type: 'signed', from: author.id, sequenceNumber: 5n }))

  // A message by `author` that arrives through `via`: delivered once, forwarded only to `other`.
  const theirs = await signedBy(author, 77n)
  await router.processMessage(via.id, theirs)
  assert.equal(delivered.length, 1)
  assert.deepEqual(sent.map((s) => s.to), [other.id.toString()])
  sent.length = 0
  await router.processMessage(other.id, theirs)
  assert.equal(delivered.length, 1, 'a duplicate (same Go message ID) is dropped')
  assert.equal(sent.length, 0)

  // Our own message sent back to us is neither delivered nor flooded out again.
  const ours = await signedBy(self, 78n)
  await router.processMessage(via.id, ours)
  assert.equal(delivered.length, 1)
  assert.equal(sent.length, 0)

  // Published seqnos always take 8 bytes, even when the random draw starts with a zero byte.
  const built = await router.buildMessage({ from: self.id, topic: TOPIC, data: new Uint8Array(), sequenceNumber: 0x00ffn })
  assert.ok(built.sequenceNumber >= (1n << 63n) && built.sequenceNumber < (1n << 64n))
  assert.equal(built.sequenceNumber & 0xffffn, 0x00ffn, 'only the top bit is set')
  for (let i = 0; i < 20; i++) {
    const { recipients } = await router.publish(TOPIC, Uint8Array.from([i]))
    assert.equal(recipients.length, 3)
  }
  assert.ok(sent.every((s) => s.seqno !== undefined && s.seqno >= (1n << 63n)))
})

/** A message signed by `who` the way floodsub itself signs, with the given seqno. */
async function signedBy (who: { key: PrivateKey, id: PeerId }, seqno: bigint): Promise<unknown> {
  const signer = floodsub({ globalSignaturePolicy: 'StrictSign' })({ logger: quietLogger(), peerId: who.id, privateKey: who.key } as any) as any
  return await signer.buildMessage({ from: who.id, topic: TOPIC, data: Uint8Array.from([1, 2, 3]), sequenceNumber: seqno | (1n << 63n) })
}
