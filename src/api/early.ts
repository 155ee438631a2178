// The API's listeners, opened before the node's modules load and libp2p starts (issue 18: the API used to
// answer only after all of that, 12× the time a bare node:http server takes; docs/benchmarks.md "Start-up
// and idle"). Until the node hands them its app (src/node/http-api.ts, `adopt`):
// - `GET /api/v0/id` is answered at once with what is known without libp2p: the peer id (the config's
//   Identity.PeerID, which config validation checked against the key) and the versions; `addresses` and
//   `protocols` are empty until libp2p listens. Only for requests the browser guard lets through and that
//   carry no Origin (browsers wait for the full app, which answers CORS).
// - every other request waits for the full app, which then answers it as always (its body stays unread in
//   the socket meanwhile). At most MAX_HELD wait; more are answered 503 with Retry-After.
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'
import type { Context } from 'koa'
import { ErrorCode } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { BrowserGuard, type GuardOptions } from './guard.ts'
import { openListener, type ListenResult } from './listener.ts'
import type { ConnectionLimits } from './connection-limits.ts'
import { JSON_TYPE } from '../web/reply.ts'
import type { HttpServer } from './server.ts'

/** Requests that may wait for the node to finish starting; the rest get 503. */
export const MAX_HELD = 256

export interface EarlyIdentity { peer_id: string, protocol_version: string, agent_version: string }

export interface EarlyListener { name: string, server: Server, listening: ListenResult }

export class EarlyApi {
  private readonly guard: BrowserGuard
  private readonly idBody: string
  private readonly held: Array<[IncomingMessage, ServerResponse]> = []
  private app?: RequestListener
  readonly listeners: EarlyListener[] = []

  private readonly limits?: ConnectionLimits

  constructor (identity: EarlyIdentity, guard?: GuardOptions, limits?: ConnectionLimits) {
    this.guard = new BrowserGuard(guard)
    this.limits = limits
    this.idBody = JSON.stringify({ ...identity, addresses: [], protocols: [] })
  }

  /** Opens one more listener (`host:port`; `name` is the config key errors mention). */
  async listen (addr: string, name: string, logger: Logger): Promise<EarlyListener> {
    const opened = { name, ...await openListener(addr, name, (req, res) => { this.request(req, res) }, logger, this.limits) }
    this.listeners.push(opened)
    return opened
  }

  /** From now on the listeners serve `app`; requests that waited are passed to it in arrival order. */
  serve (app: RequestListener): void {
    this.app = app
    for (const [req, res] of this.held.splice(0)) if (!res.writableEnded && !req.destroyed) app(req, res)
  }

  /** Closes the listeners (when the node failed to start; once started, the node's HttpServer owns them). */
  async close (): Promise<void> {
    for (const [, res] of this.held.splice(0)) this.unavailable(res)
    await Promise.all(this.listeners.map(async ({ server }) => await new Promise<void>((resolve) => {
      server.close(() => { resolve() })
      server.closeAllConnections()
    })))
  }

  private request (req: IncomingMessage, res: ServerResponse): void {
    if (this.app !== undefined) { this.app(req, res); return }
    if (req.method === 'GET' && pathOf(req.url) === '/api/v0/id' && req.headers.origin === undefined && this.guardPasses(req)) {
      res.writeHead(200, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(this.idBody) })
      res.end(this.idBody)
      return
    }
    if (this.held.length >= MAX_HELD) { this.unavailable(res); return }
    this.held.push([req, res])
  }

  private guardPasses (req: IncomingMessage): boolean {
    // BrowserGuard reads headers and the local port only; the full app gives the refusal its answer.
    const ctx = { get: (name: string) => { const v = req.headers[name.toLowerCase()]; return Array.isArray(v) ? v.join(', ') : v ?? '' }, req } as unknown as Context
    try {
      this.guard.check(ctx)
      return true
    } catch {
      return false
    }
  }

  private unavailable (res: ServerResponse): void {
    if (res.headersSent) { res.destroy(); return }
    const body = JSON.stringify({ code: ErrorCode.INTERNAL, message: 'the node is starting; try again in a moment' })
    res.writeHead(503, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body), 'Retry-After': '1', Connection: 'close' })
    res.end(body)
  }
}

/** The listener `early` opened for `name` handed to `http`, or a new one when there is none. */
export async function adoptOrListen (http: HttpServer, early: EarlyApi | undefined, addr: string, name: string): Promise<ListenResult> {
  const opened = early?.listeners.find((l) => l.name === name)
  if (opened === undefined) return await http.listen(addr, name)
  http.adopt(opened.server)
  return opened.listening
}

function pathOf (url: string | undefined): string {
  const end = url?.search(/[?#]/) ?? -1
  return end < 0 ? url ?? '' : url!.slice(0, end)
}
