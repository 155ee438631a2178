// Applies the topic rate limits (src/p2p/topic-rate.ts) inside gossipsub, before a message's signature
// is checked. gossipsub runs an application's topic validator only after the signature check, the
// message-ID computation and the seen-cache (@libp2p/gossipsub 17.1.1, validateReceivedMessage), so a
// validator cannot save that cost; this wraps validateReceivedMessage on the instance, as
// src/p2p/patches/pubsub-go-rules.ts wraps forwardMessage, and refuses to start on a library that changed it.
//
// A duplicate (its fast message ID is cached, src/p2p/fast-msg-id.ts) costs nothing and is not counted.
// A throttled message is answered as gossipsub answers an ignored one, without penalising its sender
// through gossipsub's own counters (aicn's topic has no topic score parameters): the penalty is the
// limiter's application score, set in src/p2p/host.ts. A held message is fed back through gossipsub's own
// handleReceivedMessage when its author's bucket refilled, so it is checked, delivered and forwarded
// exactly like a message that just arrived.
import type { PeerId } from '@libp2p/interface'
import type { Registry } from 'prom-client'
import { registerScrapedCounters, registerScrapedGauges } from '../../core/scraped-metrics.ts'
import { equals } from 'uint8arrays/equals'
import type { TopicRateLimiter, TopicRateStats } from '../topic-rate.ts'

/** How often held messages are looked at while there are any. */
const RELEASE_EVERY_MS = 100
/** Held messages let through per look, so a release never takes the event loop for long. */
const RELEASE_BATCH = 32

interface RawMessage { from?: Uint8Array, data?: Uint8Array, seqno?: Uint8Array, topic: string }
type Validate = (this: GossipsubLike, from: PeerId, rpcMsg: RawMessage) => Promise<unknown>
interface GossipsubLike {
  validateReceivedMessage: Validate
  handleReceivedMessage: (from: PeerId, rpcMsg: RawMessage) => Promise<void>
  fastMsgIdFn?: (rpcMsg: RawMessage) => string | undefined
  fastMsgIdCache?: { get: (id: string) => unknown }
  stop: () => Promise<void> | void
}

export interface HeldMessage { from: PeerId, rpcMsg: RawMessage }

/** gossipsub's answer for a message it ignores (MessageStatus.invalid, RejectReason.Ignore). */
const IGNORED = Object.freeze({ code: 'invalid', reason: 'ignore' })

/** Makes a gossipsub instance apply `limiter` to every message before checking it. */
export function limitTopicRates<T> (service: T, limiter: TopicRateLimiter<HeldMessage>): T {
  const router = service as unknown as GossipsubLike
  const validate = router.validateReceivedMessage
  const handle = router.handleReceivedMessage
  if (typeof validate !== 'function' || validate.length !== 2 || typeof handle !== 'function' || typeof router.stop !== 'function') {
    throw new Error('@libp2p/gossipsub changed validateReceivedMessage(from, rpcMsg) or handleReceivedMessage; re-check src/p2p/patches/topic-limit.ts')
  }
  /** messages fed back after being held: their peer already paid for them */
  const released = new WeakSet<RawMessage>()
  let timer: NodeJS.Timeout | undefined
  let stopped = false

  const release = (): void => {
    timer = undefined
    if (stopped) return
    for (const { payload } of limiter.due(RELEASE_BATCH)) {
      released.add(payload.rpcMsg)
      handle.call(router, payload.from, payload.rpcMsg).catch(() => {})
    }
    schedule()
  }
  const schedule = (): void => {
    if (timer !== undefined || stopped || limiter.heldCount === 0) return
    timer = setTimeout(release, RELEASE_EVERY_MS)
    timer.unref()
  }

  router.validateReceivedMessage = async function (from, rpcMsg) {
    const fastId = this.fastMsgIdFn?.(rpcMsg)
    if (fastId !== undefined && this.fastMsgIdCache?.get(fastId) != null) return await validate.call(this, from, rpcMsg)
    const bytes = rpcMsg.data?.byteLength ?? 0
    const authorBytes = rpcMsg.from
    // The raw bytes are the key: turning them into a peer ID costs more than the check saves.
    const author = authorBytes === undefined || authorBytes.byteLength === 0 ? undefined : Buffer.from(authorBytes).toString('base64')
    if (released.has(rpcMsg)) {
      released.delete(rpcMsg)
      if (author !== undefined && !limiter.admitReleased(author, bytes)) return IGNORED
      return await validate.call(this, from, rpcMsg)
    }
    const via = from.toString()
    const viaIsAuthor = authorBytes !== undefined && equals(from.toMultihash().bytes, authorBytes)
    const admission = limiter.admit(author, via, bytes, viaIsAuthor)
    if (admission === 'pass') return await validate.call(this, from, rpcMsg)
    if (admission === 'hold' && author !== undefined) {
      limiter.hold(author, { from, rpcMsg }, bytes)
      schedule()
    }
    return IGNORED
  }

  const stop = router.stop
  router.stop = async function () {
    stopped = true
    clearTimeout(timer)
    timer = undefined
    limiter.clear()
    await stop.call(this)
  }
  return service
}

interface FloodsubLike {
  validate: (this: FloodsubLike, from: PeerId, message: { from?: PeerId, data?: Uint8Array, topic: string }) => Promise<void>
}

/** Makes a floodsub instance (`Pubsub.Router: "floodsub"`) apply `limiter` to every message before its
 * signature check. floodsub's validate(from, message) runs after its seen-cache and before the signature
 * check (@libp2p/floodsub 11.0.28, processMessage); a throw drops the message unforwarded. A message over
 * its author's rate is dropped instead of held: floodsub has put it in its seen-cache already, so it could
 * not come back through; the author's next message after its bucket refilled is taken (its newest state,
 * as heartbeats carry the whole state). A penalised peer's messages are dropped unchecked (floodsub has
 * no scores to lower). */
export function limitFloodsubRates<T> (service: T, limiter: TopicRateLimiter<HeldMessage>): T {
  const router = service as unknown as FloodsubLike
  const validate = router.validate
  if (typeof validate !== 'function' || validate.length !== 2) {
    throw new Error('@libp2p/floodsub changed validate(from, message); re-check src/p2p/patches/topic-limit.ts')
  }
  router.validate = async function (from, message) {
    const author = message.from?.toString()
    const via = from.toString()
    const admission = limiter.admit(author, via, message.data?.byteLength ?? 0, author === via)
    if (admission !== 'pass') throw new Error(`topic rate limit: ${admission === 'drop' ? 'the peer is over its rate' : 'the author is over its rate'}`)
    await validate.call(this, from, message)
  }
  return service
}

/** The limiter's counters on the node's metrics (`/metrics`), read when scraped. */
export function registerTopicRateMetrics (limiter: TopicRateLimiter<HeldMessage>, registry: Registry): void {
  const stat = (key: keyof TopicRateStats) => () => limiter.stats()[key]
  registerScrapedCounters(registry, [
    ['aicn_topic_passed_total', 'topic messages let through to gossipsub\'s checks (signature, seen-cache, topic validator); duplicates are not counted', stat('passed')],
    ['aicn_topic_throttled_author_total', 'topic messages held back because their author published over its rate (only its newest is let through later)', stat('throttledAuthor')],
    ['aicn_topic_throttled_peer_total', 'topic messages dropped because the peer they came from relayed over its rate', stat('throttledPeer')],
    ['aicn_topic_dropped_penalised_total', 'topic messages dropped unchecked because the peer they came from is penalised', stat('droppedPenalised')],
    ['aicn_topic_coalesced_total', 'held topic messages replaced by a newer one of the same author (or not held: the table was full)', stat('coalesced')],
    ['aicn_topic_released_total', 'held topic messages let through once their author\'s rate allowed', stat('released')]
  ])
  registerScrapedGauges(registry, [
    ['aicn_topic_held_messages', 'topic messages held back now (one per throttled author)', stat('held')],
    ['aicn_topic_peers_penalised', 'peers whose topic messages are dropped for going over their rate', stat('penalised')]
  ])
}
