// Token buckets and strikes: the two pieces every rate limit of the node is made of. Used by the job
// budgets (src/p2p/peer-budget.ts: a bucket of job starts per peer, strikes for going over a budget), the
// topic's rate limits (src/p2p/topic-rate.ts: buckets per author and per forwarding peer, strikes for
// flooding) and view-sync's requests (src/registry/view-sync/view-sync.ts, through topic-rate.ts). Pure, with an
// injectable clock; test/unit/core/rate-limit.test.ts.

/** A bucket's state: `tokens` as of time `at` (ms). */
export interface Bucket { tokens: number, at: number }

/** `rate` tokens a second, at most `burst` saved up. The buckets themselves are plain values kept by the
 * caller (one per peer, in whatever table it has). */
export class TokenBucketRule {
  constructor (readonly rate: number, readonly burst: number) {}

  /** A bucket as a new sender gets it: full. */
  full (now: number): Bucket {
    return { tokens: this.burst, at: now }
  }

  /** The tokens `bucket` has at `now`. */
  available (bucket: Bucket, now: number): number {
    return Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.rate / 1000)
  }

  /** Refills `bucket` to `now` and takes `cost` tokens; false (and nothing taken) when it has fewer. A
   * cost above the burst is taken from a full bucket, so nothing is refused for ever. */
  take (bucket: Bucket, cost: number, now: number): boolean {
    const tokens = this.available(bucket, now)
    const need = Math.min(cost, this.burst)
    bucket.at = now
    if (tokens < need) {
      bucket.tokens = tokens
      return false
    }
    bucket.tokens = tokens - need
    return true
  }
}

/** Token buckets keyed by sender, bounded in count: a bucket that is full again is dropped (it is
 * indistinguishable from a new one), and past `maxKeys` the oldest buckets go. */
export class TokenBuckets {
  readonly rate: number
  readonly burst: number
  private readonly rule: TokenBucketRule
  private readonly maxKeys: number
  private readonly now: () => number
  private readonly buckets = new Map<string, Bucket>()

  /** `rate` tokens a second, at most `burst` saved up. */
  constructor (rate: number, burst: number, maxKeys: number, now: () => number = Date.now) {
    this.rule = new TokenBucketRule(rate, burst)
    this.rate = rate
    this.burst = burst
    this.maxKeys = maxKeys
    this.now = now
  }

  /** The tokens `key` has now. */
  available (key: string): number {
    const bucket = this.buckets.get(key)
    return bucket === undefined ? this.burst : this.rule.available(bucket, this.now())
  }

  /** Takes `cost` tokens from `key`'s bucket; false (and nothing taken) when it has fewer. A cost above
   * the burst is taken from a full bucket, so no message is refused for ever. */
  take (key: string, cost: number): boolean {
    const now = this.now()
    const bucket = this.buckets.get(key) ?? this.rule.full(now)
    const ok = this.rule.take(bucket, cost, now)
    this.keep(key, bucket)
    return ok
  }

  get size (): number {
    return this.buckets.size
  }

  clear (): void {
    this.buckets.clear()
  }

  private keep (key: string, bucket: Bucket): void {
    this.buckets.delete(key) // re-inserted last: the map stays in order of use
    this.buckets.set(key, bucket)
    if (this.buckets.size <= this.maxKeys) return
    for (const [k, b] of this.buckets) {
      if (this.buckets.size <= this.maxKeys) break
      // Full buckets first; then the least recently used, whatever they hold.
      if (this.rule.available(b, bucket.at) >= this.burst) this.buckets.delete(k)
    }
    for (const k of this.buckets.keys()) {
      if (this.buckets.size <= this.maxKeys) break
      this.buckets.delete(k)
    }
  }
}

/** One sender's strikes and penalty. */
export interface StrikeState { strikes: number[], lastStrike: number, penalisedUntil: number }

export interface StrikeRuleOptions {
  /** strikes within `windowMs` that put a sender in the penalty box */
  strikes: number
  windowMs: number
  /** how long the penalty lasts */
  penaltyMs: number
  /** strikes closer together than this count once (a burst of offences is one strike); default 0 */
  minGapMs?: number
}

/** Strikes within a window, and the penalty enough of them earn. The states are plain values kept by the
 * caller, next to its buckets. */
export class StrikeRule {
  readonly strikes: number
  readonly windowMs: number
  readonly penaltyMs: number
  private readonly minGapMs: number

  constructor (options: StrikeRuleOptions) {
    this.strikes = options.strikes
    this.windowMs = options.windowMs
    this.penaltyMs = options.penaltyMs
    this.minGapMs = options.minGapMs ?? 0
  }

  /** A sender with no strikes and no penalty. */
  fresh (): StrikeState {
    return { strikes: [], lastStrike: -Infinity, penalisedUntil: 0 }
  }

  /** Adds a strike at `now`; true when it starts a penalty (the strikes are then wiped). */
  strike (state: StrikeState, now: number): boolean {
    if (this.minGapMs > 0 && now - state.lastStrike < this.minGapMs) return false
    state.lastStrike = now
    this.forgetOld(state, now)
    state.strikes.push(now)
    if (state.strikes.length < this.strikes || state.penalisedUntil > now) return false
    state.penalisedUntil = now + this.penaltyMs
    state.strikes = []
    return true
  }

  penalised (state: StrikeState, now: number): boolean {
    return state.penalisedUntil > now
  }

  /** Drops the strikes that left the window; true when nothing is left against the sender (no strike,
   * no penalty): its state can be forgotten. */
  forgetOld (state: StrikeState, now: number): boolean {
    state.strikes = state.strikes.filter((at) => at > now - this.windowMs)
    return state.strikes.length === 0 && state.penalisedUntil <= now
  }
}
