// Per-sender rate limits on the pubsub topic (issue 19): one identity publishing 160–300 heartbeats a
// second stalled an input node's API for 10.5 s, because every message costs a signature check (1.7 ms),
// a decode and a view update, and gossipsub has no rate limit of its own. Two token buckets per message:
//
// - the author's (the message's signed `from`): over it, the message is held instead of checked, and only
//   the newest held message of each author is let through once its bucket has refilled. Heartbeats carry
//   a node's whole state, so coalescing loses nothing but the intermediate states.
// - the forwarding peer's (the connection it came on), over all the authors it relays: over it, the
//   message is dropped. Honest relays forward every node's heartbeats; their budget is 20× the author's.
//
// A message costs one token per started 64 KiB, so a large heartbeat takes more of the budget than a small
// one. A peer that goes over its bucket (as a relay, or as the author of what it sends itself) gets a
// strike, at most one a second; enough strikes in a short time and it is penalised: its messages are
// dropped unchecked and its gossipsub score (src/p2p/host.ts, appSpecificScore) falls below the graylist
// threshold, so gossipsub ignores everything it sends. Honest nodes publish at most a few heartbeats a
// second (src/protocols/heartbeat/heartbeats.ts keeps 200 ms between its own) and never come near a strike.
//
// Pure bookkeeping with an injectable clock (test/unit/p2p/topic-rate.test.ts); gossipsub is hooked in
// src/p2p/patches/topic-limit.ts. Every table here is bounded. The buckets and strikes themselves are
// src/core/rate-limit.ts's, shared with the job budgets (src/p2p/peer-budget.ts).
import { StrikeRule, TokenBuckets, type StrikeState } from '../core/rate-limit.ts'

const KiB = 1024
const MiB = 1024 * KiB
/** One token buys this many bytes of a message (at least one token per message). */
export const TOKEN_BYTES = 64 * KiB

export function messageCost (bytes: number): number {
  return Math.max(1, Math.ceil(bytes / TOKEN_BYTES))
}

// The buckets are src/core/rate-limit.ts's, exported from here too (src/registry/view-sync/view-sync.ts uses them).
export { TokenBuckets }

export interface TopicRateOptions {
  /** tokens an author gets a second (one token: a message of up to 64 KiB); default 5 */
  authorRate?: number
  /** tokens an author may save up; default 40 */
  authorBurst?: number
  /** tokens a forwarding peer gets a second, over all the authors it relays; default 100 */
  peerRate?: number
  /** default 1000 */
  peerBurst?: number
  /** strikes within strikeWindowMs that penalise a peer; default 3 (a strike at most once a second) */
  strikes?: number
  /** default 10 s */
  strikeWindowMs?: number
  /** how long a penalised peer's messages are dropped; default 60 s */
  penaltyMs?: number
  /** senders tracked per table; default 10,000 */
  maxSenders?: number
  /** held (coalesced) messages at most, one per author; default 1024 */
  maxHeld?: number
  /** bytes of held messages at most; default 16 MiB */
  maxHeldBytes?: number
  /** told once when a peer is penalised */
  onPenalty?: (peer: string, reason: string) => void
  /** for tests */
  now?: () => number
}

/** What to do with a message: check it as usual, hold it (newest per author, let through later), drop it. */
export type Admission = 'pass' | 'hold' | 'drop'

export interface TopicRateStats {
  /** messages let through to gossipsub's checks (signature, seen-cache, topic validator), released ones included */
  passed: number
  /** messages held back because their author was over its rate */
  throttledAuthor: number
  /** messages dropped because the peer they came from was over its rate */
  throttledPeer: number
  /** messages dropped unchecked because the peer they came from is penalised */
  droppedPenalised: number
  /** held messages replaced by a newer one of the same author, or not held because the table was full */
  coalesced: number
  /** held messages let through after their author's bucket refilled */
  released: number
  held: number
  heldBytes: number
  penalised: number
}

interface Held<T> { payload: T, bytes: number, cost: number }

export class TopicRateLimiter<T = unknown> {
  private readonly authors: TokenBuckets
  private readonly peers: TokenBuckets
  private readonly strikes: StrikeRule
  private readonly maxSenders: number
  private readonly maxHeld: number
  private readonly maxHeldBytes: number
  private readonly onPenalty?: (peer: string, reason: string) => void
  private readonly now: () => number
  private readonly offenders = new Map<string, StrikeState>()
  private readonly held = new Map<string, Held<T>>()
  private heldBytes = 0
  private readonly counts = { passed: 0, throttledAuthor: 0, throttledPeer: 0, droppedPenalised: 0, coalesced: 0, released: 0 }

  constructor (options: TopicRateOptions = {}) {
    this.now = options.now ?? Date.now
    this.maxSenders = options.maxSenders ?? 10_000
    this.authors = new TokenBuckets(options.authorRate ?? 5, options.authorBurst ?? 40, this.maxSenders, this.now)
    this.peers = new TokenBuckets(options.peerRate ?? 100, options.peerBurst ?? 1000, this.maxSenders, this.now)
    // A burst of over-budget messages is one strike (minGapMs): a penalty needs the peer to stay over for seconds.
    this.strikes = new StrikeRule({ strikes: options.strikes ?? 3, windowMs: options.strikeWindowMs ?? 10_000, penaltyMs: options.penaltyMs ?? 60_000, minGapMs: 1000 })
    this.maxHeld = options.maxHeld ?? 1024
    this.maxHeldBytes = options.maxHeldBytes ?? 16 * MiB
    this.onPenalty = options.onPenalty
  }

  /** A message of `bytes` by `author` (undefined: it has none; the router refuses it) that arrived from
   * peer `via`; `viaIsAuthor` when the peer sent its own message. */
  admit (author: string | undefined, via: string, bytes: number, viaIsAuthor: boolean): Admission {
    if (this.penalised(via)) { this.counts.droppedPenalised++; return 'drop' }
    const cost = messageCost(bytes)
    if (!this.peers.take(via, cost)) {
      this.counts.throttledPeer++
      this.strike(via, 'relays more than its rate of topic messages')
      return 'drop'
    }
    if (author === undefined || this.authors.take(author, cost)) { this.counts.passed++; return 'pass' }
    this.counts.throttledAuthor++
    if (viaIsAuthor) this.strike(via, 'publishes more than its rate of topic messages')
    return 'hold'
  }

  /** Keeps `payload` as `author`'s newest held message, replacing an older one; false when it is not
   * kept (the table is full). */
  hold (author: string, payload: T, bytes: number): boolean {
    const old = this.held.get(author)
    if (old !== undefined) {
      this.held.delete(author)
      this.heldBytes -= old.bytes
      this.counts.coalesced++
    }
    if (this.held.size >= this.maxHeld || this.heldBytes + bytes > this.maxHeldBytes) {
      if (old === undefined) this.counts.coalesced++
      return false
    }
    this.held.set(author, { payload, bytes, cost: messageCost(bytes) })
    this.heldBytes += bytes
    return true
  }

  /** Up to `limit` held messages whose authors have the tokens for them again, taken out of the table
   * (the tokens are taken when the message comes back through admit with `released`). */
  due (limit: number): Array<{ author: string, payload: T }> {
    const out: Array<{ author: string, payload: T }> = []
    for (const [author, entry] of this.held) {
      if (out.length >= limit) break
      if (this.authors.available(author) < Math.min(entry.cost, this.authors.burst)) continue
      this.held.delete(author)
      this.heldBytes -= entry.bytes
      this.counts.released++
      out.push({ author, payload: entry.payload })
    }
    return out
  }

  /** A held message coming back: only its author's bucket counts (its peer paid when it arrived). */
  admitReleased (author: string, bytes: number): boolean {
    const ok = this.authors.take(author, messageCost(bytes))
    if (ok) this.counts.passed++
    return ok
  }

  get heldCount (): number {
    return this.held.size
  }

  penalised (peer: string): boolean {
    const state = this.offenders.get(peer)
    return state !== undefined && this.strikes.penalised(state, this.now())
  }

  /** The peer's application score for gossipsub: negative while it is penalised. */
  score (peer: string): number {
    return this.penalised(peer) ? -100 : 0
  }

  stats (): TopicRateStats {
    const now = this.now()
    let penalised = 0
    for (const state of this.offenders.values()) if (this.strikes.penalised(state, now)) penalised++
    return { ...this.counts, held: this.held.size, heldBytes: this.heldBytes, penalised }
  }

  /** Forgets every held message (the router stopped). */
  clear (): void {
    this.held.clear()
    this.heldBytes = 0
  }

  private strike (peer: string, reason: string): void {
    const now = this.now()
    let state = this.offenders.get(peer)
    if (state === undefined) {
      state = this.strikes.fresh()
      this.offenders.set(peer, state)
      if (this.offenders.size > this.maxSenders) this.sweep(now)
    }
    if (this.strikes.strike(state, now)) this.onPenalty?.(peer, reason)
  }

  private sweep (now: number): void {
    for (const [peer, state] of this.offenders) {
      if (this.strikes.forgetOld(state, now)) this.offenders.delete(peer)
    }
    // Still too many (a Sybil crowd of offenders): the oldest go.
    for (const peer of this.offenders.keys()) {
      if (this.offenders.size <= this.maxSenders) break
      this.offenders.delete(peer)
    }
  }
}
