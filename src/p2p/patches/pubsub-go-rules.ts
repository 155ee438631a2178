// The Go node's pubsub rules (go-libp2p-pubsub v0.12), applied to the js routers so that a mixed network
// deduplicates the same messages and nobody gets its own messages back:
//
// 1. Message ID = the author's peer ID bytes followed by the seqno bytes (go-libp2p-pubsub's DefaultMsgIdFn,
//    `string(from) + string(seqno)`). js-gossipsub's default is the public-key protobuf + seqno: with it our
//    IHAVE gossip named IDs no Go node knew, so Go nodes asked (IWANT) for messages they already had,
//    their own included. gossipsub takes it as its supported `msgIdFn` option; floodsub's `getMsgId`.
// 2. Never forward a message to its author. go-libp2p-pubsub skips both the peer it came from and the
//    author; js floodsub 11.0.28 and gossipsub 17.1.1 skip only the former, and a Go node logs every copy
//    it gets back as "REJECT_MESSAGE … self originated message" (and its gossipsub score punishes us).
//    Neither router has an option for this: forwarding is patched on the instance (below).
// 3. A message we authored that a peer sends back is dropped, as Go does. gossipsub already drops it
//    (its seen-cache holds what we published); floodsub 11.0.28 does not put published IDs in its
//    seen-cache, so it would deliver our own message to us and flood it out again.
// 4. floodsub 11.0.28 draws a random 8-byte seqno and writes it without leading zero bytes: one message in
//    256 went out with a 7-byte seqno, which every js-gossipsub node rejects (it insists on 8 bytes).
//
// Tested against @libp2p/gossipsub 17.1.1 and @libp2p/floodsub 11.0.28 (test/unit/p2p/pubsub-go-rules.test.ts
// runs the patches on the libraries' own classes). The patches check the shape of what they replace and
// refuse to start on a library that changed it.
import { peerIdFromMultihash } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import * as Digest from 'multiformats/hashes/digest'

const SEQNO_BYTES = 8
const TOP_BIT = 1n << 63n

/** The part of a decoded pubsub message the message ID needs. */
export interface SignedMessageLike { type: 'signed' | 'unsigned', from?: PeerId, sequenceNumber?: bigint }

/** go-libp2p-pubsub's default message ID: author peer ID bytes ‖ 8-byte big-endian seqno. */
export function goMessageId (message: SignedMessageLike): Uint8Array {
  if (message.type !== 'signed' || message.from === undefined || message.sequenceNumber === undefined) {
    // StrictSign (the only policy aicn and the Go node use) never lets an unsigned message this far.
    throw new Error('a message ID needs a signed message with a seqno')
  }
  if (message.sequenceNumber < 0n || message.sequenceNumber >= (1n << 64n)) throw new Error('seqno out of range')
  const from = message.from.toMultihash().bytes
  const id = new Uint8Array(from.byteLength + SEQNO_BYTES)
  id.set(from, 0)
  new DataView(id.buffer).setBigUint64(from.byteLength, message.sequenceNumber, false)
  return id
}

/** The author of a raw (wire) message as a peer ID string, or undefined when it has none or it is garbage. */
export function authorOf (from: Uint8Array | undefined): string | undefined {
  if (from === undefined || from.byteLength === 0) return undefined
  try {
    return peerIdFromMultihash(Digest.decode(from)).toString()
  } catch {
    return undefined
  }
}

type Forward = (msgIdStr: string, rawMsg: { from?: Uint8Array }, propagationSource?: string, excludePeers?: Set<string>) => void

/** Makes a gossipsub instance leave a message's author out when it forwards the message. */
export function skipAuthorInGossipsub<T> (service: T): T {
  const router = service as unknown as { forwardMessage?: Forward }
  const forward = router.forwardMessage
  if (typeof forward !== 'function' || forward.length !== 4) {
    throw new Error('@libp2p/gossipsub changed forwardMessage(msgIdStr, rawMsg, propagationSource, excludePeers); re-check src/p2p/patches/pubsub-go-rules.ts')
  }
  router.forwardMessage = function (msgIdStr, rawMsg, propagationSource, excludePeers) {
    const author = authorOf(rawMsg.from)
    if (author !== undefined && author !== propagationSource && excludePeers?.has(author) !== true) {
      excludePeers = new Set(excludePeers ?? [])
      excludePeers.add(author)
    }
    forward.call(this, msgIdStr, rawMsg, propagationSource, excludePeers)
  }
  return service
}

interface FloodMessage { type: 'signed' | 'unsigned', topic: string, from?: PeerId, sequenceNumber?: bigint }
interface FloodsubLike {
  components: { peerId: PeerId }
  log: (...args: unknown[]) => void
  getSubscribers: (topic: string) => PeerId[]
  send: (peer: PeerId, data: { messages: FloodMessage[] }) => void
  publishMessage: (from: PeerId, message: FloodMessage) => Promise<{ recipients: PeerId[] }>
  processMessage: (from: PeerId, message: FloodMessage) => Promise<void>
  buildMessage: (message: FloodMessage) => Promise<FloodMessage>
  getMsgId: (message: FloodMessage) => Uint8Array | Promise<Uint8Array>
}

/** Gives a floodsub instance the Go node's message ID, author skipping, self-origin drop and 8-byte seqnos. */
export function applyGoRulesToFloodsub<T> (service: T): T {
  const router = service as unknown as FloodsubLike
  for (const name of ['getSubscribers', 'send', 'publishMessage', 'processMessage', 'buildMessage', 'getMsgId'] as const) {
    if (typeof router[name] !== 'function') throw new Error(`@libp2p/floodsub has no ${name}(); re-check src/p2p/patches/pubsub-go-rules.ts`)
  }
  const processMessage = router.processMessage
  const buildMessage = router.buildMessage

  router.getMsgId = (message) => goMessageId(message)

  // floodsub's own publishMessage, plus the author check.
  router.publishMessage = async function (from, message) {
    const self = this.components.peerId
    const author = message.type === 'signed' ? message.from : undefined
    const recipients: PeerId[] = []
    for (const peer of this.getSubscribers(message.topic)) {
      if (peer.equals(self) || peer.equals(from) || (author?.equals(peer) ?? false)) continue
      recipients.push(peer)
      this.send(peer, { messages: [message] })
    }
    return { recipients }
  }

  router.processMessage = async function (from, message) {
    if (message.type === 'signed' && message.from?.equals(this.components.peerId) === true && !from.equals(this.components.peerId)) {
      this.log('dropping our own message sent back by %p', from)
      return
    }
    await processMessage.call(this, from, message)
  }

  router.buildMessage = async function (message) {
    // Any 64-bit value with the top bit set encodes to exactly 8 bytes; the rest stays random.
    const seqno = message.sequenceNumber === undefined ? undefined : (message.sequenceNumber | TOP_BIT) & ((1n << 64n) - 1n)
    return await buildMessage.call(this, { ...message, sequenceNumber: seqno })
  }
  return service
}
