// Periodic liveness probes of registered model servers, so that a model whose server is down is
// announced as unavailable instead of attracting requests that can only fail. A server that is down is
// probed again soon (1 s, 2 s, 4 s … up to the interval): a model registered just before its server
// finished starting (a supervisor starting both at boot) becomes routable within a second or two
// instead of after a whole interval (issue 15).

import http from 'node:http'
import https from 'node:https'
import type { LookupFunction } from 'node:net'

export interface HealthCheckerOptions {
  /** Time between probes of one model; 30 s unless set. */
  intervalMs?: number
  /** How long one probe may take before the server counts as down; 5 s unless set. */
  timeoutMs?: number
  /** First retry after a failed probe; doubles per failure up to intervalMs. 1 s unless set. */
  retryBaseMs?: number
  /** Resolves true when the server is up; false or a throw means down (the error's message is the
   * reason given to onChange). Replaceable for tests. */
  probe?: (url: URL, signal: AbortSignal) => Promise<boolean>
}

/** Called on every flip; `reason` says why a server counts as down ('' when up). */
export type HealthListener = (key: string, available: boolean, reason: string) => void

interface Watched {
  url: URL
  timer: NodeJS.Timeout | undefined
  available: boolean
  /** Failed probes in a row: the retry delay doubles with each. */
  failures: number
  /** Why the last probe failed ('' when it did not) */
  reason: string
  /** The probe in flight, if any; aborting it discards its result. */
  inFlight: AbortController | undefined
  /** Resolves with the verdict of the probe in flight. */
  verdict: Promise<boolean> | undefined
}

/** Any HTTP answer, even 404/405/500, means a server is listening: a GET on a chat or image endpoint is
 * usually refused, and that refusal is all we need. Only failing to get an answer means down. */
export async function httpProbe (url: URL, signal: AbortSignal, lookup?: LookupFunction): Promise<boolean> {
  return await httpProbeReason(url, signal, lookup) === undefined
}

/** httpProbe with the reason: undefined when the server answered, else why not (for the log). */
export async function httpProbeReason (url: URL, signal: AbortSignal, lookup?: LookupFunction): Promise<string | undefined> {
  const request = url.protocol === 'https:' ? https.request : http.request
  return await new Promise<string | undefined>((resolve) => {
    const req = request(url, {
      method: 'GET',
      signal,
      // node.ts pins the addresses src/models/model-target.ts allowed: a probe goes nowhere a job may not.
      ...(lookup === undefined ? {} : { lookup }),
      // A fresh connection per probe: nothing lingers in a pool between probes 30 s apart.
      agent: false,
      headers: { connection: 'close', accept: '*/*' },
      // A local server with a self-signed certificate is still up; no secret is sent on a probe.
      rejectUnauthorized: false
    }, (res) => {
      resolve(undefined)
      // The body is not wanted: discard it and drop the connection (errors from that are expected).
      res.on('error', () => {})
      res.resume()
      req.destroy()
    })
    // Error messages of node:http name the address and the cause (ECONNREFUSED 127.0.0.1:8000); bounded.
    req.on('error', (err) => { resolve(signal.aborted ? 'no answer in time' : (err.message === '' ? 'connection failed' : err.message).slice(0, 200)) })
    req.end()
  })
}

export class HealthChecker {
  private readonly intervalMs: number
  private readonly timeoutMs: number
  private readonly retryBaseMs: number
  private readonly probe: (url: URL, signal: AbortSignal) => Promise<boolean>
  private readonly onChange: HealthListener
  private readonly watched = new Map<string, Watched>()
  private stopped = false

  constructor (options: HealthCheckerOptions, onChange: HealthListener) {
    this.intervalMs = options.intervalMs ?? 30_000
    this.timeoutMs = options.timeoutMs ?? 5_000
    this.retryBaseMs = Math.max(1, options.retryBaseMs ?? 1_000)
    this.probe = options.probe ?? httpProbe
    this.onChange = onChange
  }

  /** Starts probing `url` for `key`: once now, then every intervalMs while up and sooner while down.
   * Watching a key again replaces its URL (and probes the new one at once) but keeps its current
   * availability. Ignored after stop(). */
  watch (key: string, url: URL): void {
    if (this.stopped) return
    const previous = this.watched.get(key)
    if (previous !== undefined) this.cancel(previous)
    this.watched.set(key, { url, timer: undefined, available: previous?.available ?? true, failures: 0, reason: previous?.reason ?? '', inFlight: undefined, verdict: undefined })
    void this.check(key)
  }

  /** The verdict of the probe in flight for `key` (or of a new one), at most `waitMs` later; undefined
   * when unknown or not known in time. The register endpoint uses it to say "not answering yet". */
  async settle (key: string, waitMs: number): Promise<boolean | undefined> {
    const entry = this.watched.get(key)
    if (entry === undefined) return undefined
    const verdict = entry.verdict ?? this.check(key)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, waitMs); timer.unref() })
    try {
      return await Promise.race([verdict, late])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Probes `key` now and restarts its backoff (e.g. a job just reached a model marked down). */
  recheck (key: string): void {
    const entry = this.watched.get(key)
    if (entry === undefined || entry.inFlight !== undefined) return
    entry.failures = 0
    void this.check(key)
  }

  /** Stops probing `key` and forgets it (it counts as available again). onChange is not called. */
  unwatch (key: string): void {
    const entry = this.watched.get(key)
    if (entry === undefined) return
    this.cancel(entry)
    this.watched.delete(key)
  }

  /** Why the last probe of `key` failed; '' when it answered (or was never probed). */
  reason (key: string): string {
    return this.watched.get(key)?.reason ?? ''
  }

  /** Optimistic: true for unknown keys and until a probe fails. */
  isAvailable (key: string): boolean {
    return this.watched.get(key)?.available ?? true
  }

  stop (): void {
    this.stopped = true
    for (const entry of this.watched.values()) this.cancel(entry)
    this.watched.clear()
  }

  private cancel (entry: Watched): void {
    clearTimeout(entry.timer)
    entry.timer = undefined
    entry.inFlight?.abort()
    entry.inFlight = undefined
    entry.verdict = undefined
  }

  /** Probes once, reports a flip, and schedules the next probe. Resolves with the verdict (undefined
   * when the key was unwatched meanwhile). */
  private async check (key: string): Promise<boolean> {
    const entry = this.watched.get(key)
    if (entry === undefined) return true
    // One probe per key at a time: a slow server must not pile up connections.
    if (entry.verdict !== undefined) return await entry.verdict
    clearTimeout(entry.timer)
    entry.timer = undefined
    const controller = new AbortController()
    entry.inFlight = controller
    const verdict = this.runProbe(entry.url, controller).then(({ up, reason }) => {
      // Unwatched, re-watched or stopped meanwhile (cancel() cleared inFlight): nobody asks any more.
      if (entry.inFlight !== controller) return up
      entry.inFlight = undefined
      entry.verdict = undefined
      entry.failures = up ? 0 : Math.min(entry.failures + 1, 30)
      entry.reason = reason
      this.schedule(key, entry)
      if (this.watched.get(key) === entry && up !== entry.available) {
        entry.available = up
        this.onChange(key, up, reason)
      }
      return up
    })
    entry.verdict = verdict
    return await verdict
  }

  /** Next probe: the interval while up; 1 s, 2 s, 4 s … (capped at the interval) while down. */
  private schedule (key: string, entry: Watched): void {
    if (this.stopped || this.watched.get(key) !== entry) return
    const delay = entry.failures === 0 ? this.intervalMs : Math.min(this.intervalMs, this.retryBaseMs * 2 ** (entry.failures - 1))
    entry.timer = setTimeout(() => { void this.check(key) }, delay)
    entry.timer.unref()
  }

  /** Runs the probe with the timeout; a probe that throws, or ignores its signal, counts as down. */
  private async runProbe (url: URL, controller: AbortController): Promise<{ up: boolean, reason: string }> {
    let timer: NodeJS.Timeout | undefined
    const down = (reason: string) => ({ up: false, reason })
    const timedOut = new Promise<{ up: boolean, reason: string }>((resolve) => {
      timer = setTimeout(() => { controller.abort(); resolve(down(`no answer within ${this.timeoutMs} ms`)) }, this.timeoutMs)
      timer.unref()
    })
    const aborted = new Promise<{ up: boolean, reason: string }>((resolve) => {
      controller.signal.addEventListener('abort', () => { resolve(down('probe cancelled')) }, { once: true })
    })
    const probed = this.probe(url, controller.signal).then(
      (up) => up ? { up: true, reason: '' } : down('no answer'),
      (err: unknown) => down(String((err as Error)?.message ?? err).slice(0, 200)))
    try {
      return await Promise.race([probed, timedOut, aborted])
    } finally {
      clearTimeout(timer)
    }
  }
}
