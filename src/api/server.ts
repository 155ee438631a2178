// The HTTP API on Koa: one app, served on every listener the node has (API.Addr for the Go node's
// clients, API.WebAddr for browsers and fetch-based SDKs, which refuse port 6000). The middleware, from
// the outside in: metrics and access log, errors in the shape of the path (src/api/errors.ts), the browser
// guard (src/api/guard.ts), opt-in CORS, the routes (src/api/routes/), then the router's 404/405.
import { createServer, STATUS_CODES, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import cors from '@koa/cors'
import Koa from 'koa'
import type { Registry } from 'prom-client'
import { ErrorCode } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { AccessControl, type AccessOptions } from './access.ts'
import { BODY_IDLE_MS, DEFAULT_BODY_LIMIT, jsonBodyReader } from './body.ts'
import { errorMiddleware } from './errors.ts'
import { BrowserGuard, type GuardOptions } from './guard.ts'
import { httpMetrics, observe } from './metrics.ts'
import { JSON_TYPE } from '../web/reply.ts'
import { buildRouter } from './router.ts'
import type { Route } from '../web/route.ts'

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
}

export interface ListenResult { host: string, port: number, url: string }

// Headers must arrive quickly (slowloris); the whole request may take longer because routes that stream
// uploads themselves (readBody: false) can receive tens of MiB on slow links. Answering may take minutes
// (AI calls), so there is deliberately no socket inactivity timeout (server.timeout stays 0).
const REQUEST_TIMEOUT_MS = 300_000
const HEADERS_TIMEOUT_MS = 30_000
const KEEP_ALIVE_TIMEOUT_MS = 5_000
const DEFAULT_GRACE_MS = 5_000

export class HttpServer {
  readonly #app: Koa
  readonly #logger: Logger
  readonly #servers: Server[] = []
  #closing?: Promise<void>

  constructor (options: HttpServerOptions) {
    this.#logger = options.logger
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
    const { host, port } = parseAddr(addr, name)
    // Without a Host header, Node would answer a bare 400 before our handler could give a JSON error.
    const server = createServer({ requireHostHeader: false }, this.#app.callback())
    // Node answers an unknown `Expect:` with an empty 417; answer in our error shape instead.
    server.on('checkExpectation', (req, res) => {
      res.writeHead(400, { 'Content-Type': JSON_TYPE, Connection: 'close' })
      res.end(JSON.stringify({ code: ErrorCode.PARAM, message: `Expect: ${String(req.headers.expect).slice(0, 200)} is not supported` }))
    })
    server.requestTimeout = REQUEST_TIMEOUT_MS
    server.headersTimeout = HEADERS_TIMEOUT_MS
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => { this.#onClientError(err, socket) })

    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => { reject(listenError(addr, name, err)) }
      server.once('error', onError)
      server.listen({ host, port }, () => {
        server.off('error', onError)
        resolve()
      })
    })
    server.on('error', (err) => { this.#logger.error({ err }, 'http server error') })
    this.#servers.push(server)

    const bound = server.address() as AddressInfo
    const reachable = bound.address === '::' || bound.address === '0.0.0.0' ? '127.0.0.1' : bound.address
    const urlHost = reachable.includes(':') ? `[${reachable}]` : reachable
    return { host: bound.address, port: bound.port, url: `http://${urlHost}:${bound.port}` }
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

  #onClientError (err: NodeJS.ErrnoException, socket: Duplex): void {
    // Malformed HTTP, oversized headers or a request that took too long to arrive: there is no request
    // object, so answer on the raw socket (unless a response is already under way) and drop the connection.
    this.#logger.debug({ err: err.message, code: err.code }, 'bad HTTP from client')
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
      socket.destroy()
      return
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    const body = JSON.stringify({ code: ErrorCode.PARAM, message: `bad request: ${STATUS_CODES[status] ?? 'malformed HTTP'}` })
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${JSON_TYPE}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      () => { socket.destroy() }
    )
    // A peer that never reads would keep the socket half-open forever.
    setTimeout(() => { socket.destroy() }, 1_000).unref()
  }
}

/** Splits 'host:port', '[::1]:port' or ':port' (all interfaces). */
export function parseAddr (addr: string, name = 'API.Addr'): { host: string | undefined, port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim())
  const port = match === null ? NaN : Number(match[3])
  if (match === null || port > 65535) {
    throw new Error(`${name} "${addr}" must look like host:port, e.g. 127.0.0.1:6000, [::1]:6000 or :6000`)
  }
  const host = match[1] ?? match[2]
  return { host: host === '' ? undefined : host, port }
}

function listenError (addr: string, name: string, err: NodeJS.ErrnoException): Error {
  switch (err.code) {
    case 'EADDRINUSE': return new Error(`${name} ${addr} is already in use (another aicn node or program listens there: "curl http://${addr}/api/v0/id" answers if it is an aicn node, e.g. one a demo left behind; stop it or choose another address in the config)`, { cause: err })
    case 'EADDRNOTAVAIL': return new Error(`${name} ${addr}: that address does not belong to this machine`, { cause: err })
    case 'EACCES': return new Error(`${name} ${addr}: permission denied (ports below 1024 need privileges)`, { cause: err })
    case 'ENOTFOUND':
    case 'EAI_AGAIN': return new Error(`${name} ${addr}: unknown host`, { cause: err })
    default: return new Error(`${name} ${addr}: ${err.message}`, { cause: err })
  }
}
