// Per-key request limits for the gateway, answered as 429 with the headers OpenAI-style clients
// read (README.md, "OpenAI-compatible gateway"):
// X-RateLimit-Limit / -Remaining / -Reset (ISO 8601) for the requests-per-minute window, and
// Retry-After (seconds) on every refusal. Checks run in the order daily, rpm, concurrency; a refused
// request counts against nothing.
//
// State lives in memory, except the daily count (conversations per UTC day, e.g. VIP's 1,000), which a
// restart must not reset and so goes through `dailyStore` (store.ts keeps it in gateway.db).
import type { KeyRecord } from './keys.ts'

/** Seed 001: free users get at most 3 requests in flight. A preset for key creation, not a default. */
export const FREE_CONCURRENCY = 3
/** DeGPT's VIP plan allows 1,000 conversations per day. A preset, not a default. */
export const VIP_DAILY = 1000

export const RPM_WINDOW_MS = 60_000
const DAY_MS = 24 * 3600 * 1000

export interface LimitDecision {
  ok: boolean
  status?: 429
  reason?: 'rpm' | 'concurrency' | 'daily'
  headers: Record<string, string>
  /** Frees the concurrency slot; call once the response is finished. Idempotent; a no-op when refused. */
  release: () => void
}

export interface DailyStore {
  load: (keyId: string, day: string) => Promise<number>
  save: (keyId: string, day: string, count: number) => Promise<void>
}

export interface LimiterOptions {
  now?: () => number
  dailyStore?: DailyStore
}

interface KeyState {
  windowStart: number
  windowCount: number
  inFlight: number
  /** the UTC day dayCount belongs to; undefined until loaded */
  day?: string
  dayCount: number
  /** a load of `day` in progress, shared by concurrent requests so the count is read once */
  loading?: { day: string, promise: Promise<void> }
  /** saves run in order so the stored count never goes backwards */
  saving: Promise<void>
}

export class Limiter {
  private readonly now: () => number
  private readonly dailyStore: DailyStore | undefined
  private readonly states = new Map<string, KeyState>()

  constructor (options: LimiterOptions = {}) {
    this.now = options.now ?? Date.now
    this.dailyStore = options.dailyStore
  }

  async admit (key: KeyRecord): Promise<LimitDecision> {
    const state = this.stateOf(key.id)
    if (key.daily > 0) await this.loadToday(state, key.id)
    // Nothing below awaits until the counters are updated, so concurrent admits cannot both take
    // the last slot.
    const now = this.now()
    const windowExpired = now >= state.windowStart + RPM_WINDOW_MS
    const windowStart = windowExpired ? now : state.windowStart
    const windowCount = windowExpired ? 0 : state.windowCount
    const reset = windowStart + RPM_WINDOW_MS

    let reason: LimitDecision['reason']
    let retryAfterMs = 0
    if (key.daily > 0 && state.dayCount >= key.daily) {
      reason = 'daily'
      retryAfterMs = nextUtcMidnight(now) - now
    } else if (key.rpm > 0 && windowCount >= key.rpm) {
      reason = 'rpm'
      retryAfterMs = reset - now
    } else if (key.concurrency > 0 && state.inFlight >= key.concurrency) {
      reason = 'concurrency'
      retryAfterMs = 1000 // a slot frees when some response ends; we cannot know when
    }

    if (reason !== undefined) {
      const headers = key.rpm > 0 ? rateHeaders(key.rpm, windowCount, reset) : {}
      headers['Retry-After'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)))
      return { ok: false, status: 429, reason, headers, release: () => {} }
    }

    if (key.rpm > 0) {
      state.windowStart = windowStart
      state.windowCount = windowCount + 1
    }
    state.inFlight++
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      state.inFlight--
    }
    if (key.daily > 0) {
      state.dayCount++
      try {
        await this.saveDay(state, key.id)
      } catch (err) {
        release()
        throw err
      }
    }
    const headers = key.rpm > 0 ? rateHeaders(key.rpm, state.windowCount, reset) : {}
    return { ok: true, headers, release }
  }

  private stateOf (keyId: string): KeyState {
    let state = this.states.get(keyId)
    if (state === undefined) {
      state = { windowStart: -Infinity, windowCount: 0, inFlight: 0, dayCount: 0, saving: Promise.resolve() }
      this.states.set(keyId, state)
    }
    return state
  }

  /** Makes state.dayCount the count of the current UTC day, reading it from the store on a new day. */
  private async loadToday (state: KeyState, keyId: string): Promise<void> {
    for (;;) {
      const day = utcDay(this.now())
      if (state.day === day) return
      if (state.loading?.day !== day) {
        const promise = (this.dailyStore?.load(keyId, day) ?? Promise.resolve(0)).then((count) => {
          state.day = day
          state.dayCount = Number.isSafeInteger(count) && count > 0 ? count : 0
        })
        const loading = { day, promise }
        state.loading = loading
        // A failed load is retried by the next request instead of being remembered.
        promise.catch(() => {}).finally(() => { if (state.loading === loading) state.loading = undefined })
      }
      await state.loading?.promise
    }
  }

  private async saveDay (state: KeyState, keyId: string): Promise<void> {
    const store = this.dailyStore
    const day = state.day
    if (store === undefined || day === undefined) return
    const count = state.dayCount
    const saved = state.saving.then(async () => await store.save(keyId, day, count))
    state.saving = saved.catch(() => {})
    await saved
  }
}

function rateHeaders (limit: number, used: number, reset: number): Record<string, string> {
  return {
    'X-RateLimit-Limit': String(limit),
    'X-RateLimit-Remaining': String(Math.max(0, limit - used)),
    'X-RateLimit-Reset': new Date(reset).toISOString()
  }
}

/** 'YYYY-MM-DD' of a time in UTC: the daily limit resets at 00:00 UTC for everyone. */
export function utcDay (ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

function nextUtcMidnight (ms: number): number {
  return (Math.floor(ms / DAY_MS) + 1) * DAY_MS
}
