// Periodic liveness probes of registered model servers, so that a model whose server is down is
// announced as unavailable instead of attracting requests that can only fail.

import http from 'node:http'
import https from 'node:https'
import type { LookupFunction } from 'node:net'

export interface HealthCheckerOptions {
  /** Time between probes of one model; 30 s unless set. */
  intervalMs?: number
  /** How long one probe may take before the server counts as down; 5 s unless set. */
  timeoutMs?: number
  /** Resolves true when the server is up. Replaceable for tests. */
  probe?: (url: URL, signal: AbortSignal) => Promise<boolean>
}

interface Watched {
  url: URL
  timer: NodeJS.Timeout
  available: boolean
  /** The probe in flight, if any; aborting it discards its result. */
  inFlight: AbortController | undefined
}

/** Any HTTP answer, even 404/405/500, means a server is listening: a GET on a chat or image endpoint is
 * usually refused, and that refusal is all we need. Only failing to get an answer means down. */
export async function httpProbe (url: URL, signal: AbortSignal, lookup?: LookupFunction): Promise<boolean> {
  const request = url.protocol === 'https:' ? https.request : http.request
  return await new Promise<boolean>((resolve) => {
    const req = request(url, {
      method: 'GET',
      signal,
      // node.ts pins the addresses src/registry/model-target.ts allowed: a probe goes nowhere a job may not.
      ...(lookup === undefined ? {} : { lookup }),
      // A fresh connection per probe: nothing lingers in a pool between probes 30 s apart.
      agent: false,
      headers: { connection: 'close', accept: '*/*' },
      // A local server with a self-signed certificate is still up; no secret is sent on a probe.
      rejectUnauthorized: false
    }, (res) => {
      resolve(true)
      // The body is not wanted: discard it and drop the connection (errors from that are expected).
      res.on('error', () => {})
      res.resume()
      req.destroy()
    })
    req.on('error', () => { resolve(false) })
    req.end()
  })
}

export class HealthChecker {
  private readonly intervalMs: number
  private readonly timeoutMs: number
  private readonly probe: (url: URL, signal: AbortSignal) => Promise<boolean>
  private readonly onChange: (key: string, available: boolean) => void
  private readonly watched = new Map<string, Watched>()
  private stopped = false

  constructor (options: HealthCheckerOptions, onChange: (key: string, available: boolean) => void) {
    this.intervalMs = options.intervalMs ?? 30_000
    this.timeoutMs = options.timeoutMs ?? 5_000
    this.probe = options.probe ?? httpProbe
    this.onChange = onChange
  }

  /** Starts probing `url` for `key`: once now, then every intervalMs. Watching a key again replaces its
   * URL (and probes the new one at once) but keeps its current availability. Ignored after stop(). */
  watch (key: string, url: URL): void {
    if (this.stopped) return
    const previous = this.watched.get(key)
    if (previous !== undefined) this.cancel(previous)
    const timer = setInterval(() => { void this.check(key) }, this.intervalMs)
    timer.unref()
    this.watched.set(key, { url, timer, available: previous?.available ?? true, inFlight: undefined })
    void this.check(key)
  }

  /** Stops probing `key` and forgets it (it counts as available again). onChange is not called. */
  unwatch (key: string): void {
    const entry = this.watched.get(key)
    if (entry === undefined) return
    this.cancel(entry)
    this.watched.delete(key)
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
    clearInterval(entry.timer)
    entry.inFlight?.abort()
    entry.inFlight = undefined
  }

  private async check (key: string): Promise<void> {
    const entry = this.watched.get(key)
    // One probe per key at a time: a slow server must not pile up connections.
    if (entry === undefined || entry.inFlight !== undefined) return
    const controller = new AbortController()
    entry.inFlight = controller
    const up = await this.runProbe(entry.url, controller)
    // Unwatched, re-watched or stopped meanwhile (cancel() cleared inFlight): nobody asks any more.
    if (entry.inFlight !== controller) return
    entry.inFlight = undefined
    if (this.watched.get(key) !== entry || up === entry.available) return
    entry.available = up
    this.onChange(key, up)
  }

  /** Runs the probe with the timeout; a probe that throws, or ignores its signal, counts as down. */
  private async runProbe (url: URL, controller: AbortController): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => { controller.abort(); resolve(false) }, this.timeoutMs)
      timer.unref()
    })
    const aborted = new Promise<boolean>((resolve) => {
      controller.signal.addEventListener('abort', () => { resolve(false) }, { once: true })
    })
    try {
      return await Promise.race([this.probe(url, controller.signal).catch(() => false), timedOut, aborted])
    } finally {
      clearTimeout(timer)
    }
  }
}
