// The HTTP API on Koa: one app, served on every listener the node has (API.Addr for the Go node's
// clients, API.WebAddr for browsers and fetch-based SDKs, which refuse port 6000). The middleware, from
// the outside in: metrics and access log, errors in the shape of the path (src/api/errors.ts), the browser
// guard (src/api/guard.ts), opt-in CORS, the routes (src/api/routes/), then the router's 404/405.
import type { RequestListener, Server } from 'node:http'
import cors from '@koa/cors'
import Koa from 'koa'
import type { Registry } from 'prom-client'
import type { Logger } from '../core/logger.ts'
import { AccessControl, type AccessOptions } from './access.ts'
import { BODY_IDLE_MS, DEFAULT_BODY_LIMIT, jsonBodyReader } from './body.ts'
import { errorMiddleware } from './errors.ts'
import { BrowserGuard, type GuardOptions } from './guard.ts'
import { httpMetrics, observe } from './metrics.ts'
import { buildRouter } from './router.ts'
import type { Route } from '../web/route.ts'
import { openListener, type ListenResult } from './listener.ts'
import type { ConnectionLimits } from './connection-limits.ts'

export { parseAddr, type ListenResult } from './listener.ts'

export interface HttpServerOptions {
  routes: Route[]
  logger: Logger
  /** Largest JSON body accepted; default 1 MiB. */
  bodyLimitBytes?: number
  /** A JSON body that stops arriving for this long is answered with 408; default 5 s. */
  bodyIdleMs?: number
  /** Where the HTTP metrics go; default prom-client's global register. */
  registry?: Registry
  /** Allowed origins and host names besides the node's own (src/api/guard.ts). */
  guard?: GuardOptions
  /** The admin key and the key check of job routes (src/api/access.ts). */
  access?: AccessOptions
  /** Middleware that runs after the routes for what they did not match (the console's static files). */
  fallback?: Koa.Middleware
  /** Connections a listener holds, in all and per client address (src/api/connection-limits.ts). */
  connectionLimits?: ConnectionLimits
}

const DEFAULT_GRACE_MS = 5_000

export class HttpServer {
  readonly #app: Koa
  readonly #logger: Logger
  readonly #connectionLimits?: ConnectionLimits
  readonly #servers: Server[] = []
  #callback?: RequestListener
  #closing?: Promise<void>

  constructor (options: HttpServerOptions) {
    this.#logger = options.logger
    this.#connectionLimits = options.connectionLimits
    const guard = new BrowserGuard(options.guard)
    const router = buildRouter(options.routes, jsonBodyReader(options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT, options.bodyIdleMs ?? BODY_IDLE_MS), new AccessControl(options.access))
    const app = new Koa()
    // Errors are answered and logged by errorMiddleware; Koa's own printing would only repeat them.
    app.silent = true
    app.on('error', (err: Error) => { this.#logger.debug({ err: err.message }, 'HTTP response failed') })
    app.use(observe(httpMetrics(options.registry), this.#logger, () => { if (this.#closing !== undefined) this.#closeIdle() }))
    app.use(errorMiddleware(this.#logger))
    app.use(async (ctx, next) => { guard.check(ctx); await next() })
    app.use(cors({ origin: (ctx) => guard.corsOrigin(ctx.get('origin')) ? ctx.get('origin') : '', exposeHeaders: ['X-AICN-Node', 'X-AICN-CID', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'Retry-After'], maxAge: 600 }))
    app.use(router.routes())
    if (options.fallback !== undefined) app.use(options.fallback)
    app.use(router.allowedMethods())
    this.#app = app
  }

  /** Listens on one more address (`host:port`); `name` is the config key the errors mention. */
  async listen (addr: string, name = 'API.Addr'): Promise<ListenResult> {
    if (this.#closing !== undefined) throw new Error('the HTTP server is closing')
    const { server, listening } = await openListener(addr, name, this.requestListener, this.#logger, this.#connectionLimits)
    this.#servers.push(server)
    return listening
  }

  /** The app as a node:http request listener (for listeners opened before the node started: early.ts). */
  get requestListener (): RequestListener {
    this.#callback ??= this.#app.callback()
    return this.#callback
  }

  /** A listener opened elsewhere (src/api/early.ts) that serves this app from now on; closed with it. */
  adopt (server: Server): void {
    if (this.#closing !== undefined) throw new Error('the HTTP server is closing')
    this.#servers.push(server)
  }

  /** Stops accepting connections, lets requests in flight finish for up to graceMs, then cuts the rest. */
  async close (graceMs: number = DEFAULT_GRACE_MS): Promise<void> {
    this.#closing ??= Promise.all(this.#servers.map(async (server) => await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { server.closeAllConnections() }, graceMs)
      server.close(() => {
        clearTimeout(timer)
        resolve()
      })
      // Idle keep-alive sockets would otherwise hold close() open until they time out.
      server.closeIdleConnections()
    }))).then(() => {})
    await this.#closing
  }

  /** A response that ends while closing leaves its keep-alive connection idle: close it now. */
  #closeIdle (): void {
    for (const server of this.#servers) server.closeIdleConnections()
  }

}
