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
// Pure bookkeeping with an injectable clock (test/unit/topic-rate.test.ts); gossipsub is hooked in
// src/p2p/patches/topic-limit.ts. Every table here is bounded.

const KiB = 1024
const MiB = 1024 * KiB
/** One token buys this many bytes of a message (at least one token per message). */
export const TOKEN_BYTES = 64 * KiB

export function messageCost (bytes: number): number {
  return Math.max(1, Math.ceil(bytes / TOKEN_BYTES))
}

/** Token buckets keyed by sender, bounded in count: a bucket that is full again is dropped (it is
 * indistinguishable from a new one), and past `maxKeys` the oldest buckets go. */
export class TokenBuckets {
  readonly rate: number
  readonly burst: number
  private readonly maxKeys: number
  private readonly now: () => number
  private readonly buckets = new Map<string, { tokens: number, at: number }>()

  /** `rate` tokens a second, at most `burst` saved up. */
  constructor (rate: number, burst: number, maxKeys: number, now: () => number = Date.now) {
    this.rate = rate
    this.burst = burst
    this.maxKeys = maxKeys
    this.now = now
  }

  /** The tokens `key` has now. */
  available (key: string): number {
    const bucket = this.buckets.get(key)
    if (bucket === undefined) return this.burst
    return Math.min(this.burst, bucket.tokens + (this.now() - bucket.at) * this.rate / 1000)
  }

  /** Takes `cost` tokens from `key`'s bucket; false (and nothing taken) when it has fewer. A cost above
   * the burst is taken from a full bucket, so no message is refused for ever. */
  take (key: string, cost: number): boolean {
    const now = this.now()
    const tokens = this.available(key)
    const need = Math.min(cost, this.burst)
    if (tokens < need) {
      this.set(key, tokens, now)
      return false
    }
    this.set(key, tokens - need, now)
    return true
  }

  get size (): number {
    return this.buckets.size
  }

  clear (): void {
    this.buckets.clear()
  }

  private set (key: string, tokens: number, at: number): void {
    this.buckets.delete(key) // re-inserted last: the map stays in order of use
    this.buckets.set(key, { tokens, at })
    if (this.buckets.size <= this.maxKeys) return
    for (const [k, b] of this.buckets) {
      if (this.buckets.size <= this.maxKeys) break
      // Full buckets first; then the least recently used, whatever they hold.
      if (b.tokens + (at - b.at) * this.rate / 1000 >= this.burst) this.buckets.delete(k)
    }
    for (const k of this.buckets.keys()) {
      if (this.buckets.size <= this.maxKeys) break
      this.buckets.delete(k)
    }
  }
}

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

interface PeerStrikes { strikes: number[], lastStrike: number, penalisedUntil: number }

interface Held<T> { payload: T, bytes: number, cost: number }

export class TopicRateLimiter<T = unknown> {
  private readonly authors: TokenBuckets
  private readonly peers: TokenBuckets
  private readonly strikesNeeded: number
  private readonly strikeWindowMs: number
  private readonly penaltyMs: number
  private readonly maxSenders: number
  private readonly maxHeld: number
  private readonly maxHeldBytes: number
  private readonly onPenalty?: (peer: string, reason: string) => void
  private readonly now: () => number
  private readonly offenders = new Map<string, PeerStrikes>()
  private readonly held = new Map<string, Held<T>>()
  private heldBytes = 0
  private readonly counts = { passed: 0, throttledAuthor: 0, throttledPeer: 0, droppedPenalised: 0, coalesced: 0, released: 0 }

  constructor (options: TopicRateOptions = {}) {
    this.now = options.now ?? Date.now
    this.maxSenders = options.maxSenders ?? 10_000
    this.authors = new TokenBuckets(options.authorRate ?? 5, options.authorBurst ?? 40, this.maxSenders, this.now)
    this.peers = new TokenBuckets(options.peerRate ?? 100, options.peerBurst ?? 1000, this.maxSenders, this.now)
    this.strikesNeeded = options.strikes ?? 3
    this.strikeWindowMs = options.strikeWindowMs ?? 10_000
    this.penaltyMs = options.penaltyMs ?? 60_000
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
    return (this.offenders.get(peer)?.penalisedUntil ?? 0) > this.now()
  }

  /** The peer's application score for gossipsub: negative while it is penalised. */
  score (peer: string): number {
    return this.penalised(peer) ? -100 : 0
  }

  stats (): TopicRateStats {
    const now = this.now()
    let penalised = 0
    for (const state of this.offenders.values()) if (state.penalisedUntil > now) penalised++
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
      state = { strikes: [], lastStrike: -Infinity, penalisedUntil: 0 }
      this.offenders.set(peer, state)
      if (this.offenders.size > this.maxSenders) this.sweep(now)
    }
    // A burst of over-budget messages is one strike: a penalty needs the peer to stay over for seconds.
    if (now - state.lastStrike < 1000) return
    state.lastStrike = now
    state.strikes = state.strikes.filter((at) => at > now - this.strikeWindowMs)
    state.strikes.push(now)
    if (state.strikes.length >= this.strikesNeeded && state.penalisedUntil <= now) {
      state.penalisedUntil = now + this.penaltyMs
      state.strikes = []
      this.onPenalty?.(peer, reason)
    }
  }

  private sweep (now: number): void {
    for (const [peer, state] of this.offenders) {
      if (state.penalisedUntil <= now && state.strikes.every((at) => at <= now - this.strikeWindowMs)) this.offenders.delete(peer)
    }
    // Still too many (a Sybil crowd of offenders): the oldest go.
    for (const peer of this.offenders.keys()) {
      if (this.offenders.size <= this.maxSenders) break
      this.offenders.delete(peer)
    }
  }
}
