// The HTTP layer the API routes plug into: routing (404/405), JSON bodies, the reply envelope, error
// answers, metrics, access log, client-disconnect signals and a graceful close. Routes only see a
// RouteContext and return a Reply; everything about HTTP itself lives here. Plain node:http, no framework:
// a job passes through here twice, and a framework's context, middleware chain and response logic cost
// about as much per request as everything else this layer does.
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parse as parseQuery } from 'node:querystring'
import type { Duplex } from 'node:stream'
import type { Registry } from 'prom-client'
import { AicnError, ErrorCode, isAicnError } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { BODY_IDLE_MS, DEFAULT_BODY_LIMIT, discardBody, isJsonReadable, readJsonBody } from './body.ts'
import { httpMetrics, type HttpMetrics } from './metrics.ts'
import { Params } from './params.ts'
import { errorBody, JSON_TYPE, render, type Reply } from './reply.ts'
import { writeStream } from './stream.ts'

export type Method = 'GET' | 'POST'

export interface RouteContext {
  params: Params
  req: IncomingMessage
  /** A request header ('' when absent; repeated ones joined with ", "). */
  header: (name: string) => string
  /** Aborted when the client disconnects before the response is finished. */
  signal: AbortSignal
}

export interface Route {
  /** e.g. '/api/v0/id'; a trailing slash in the request is tolerated. */
  path: string
  methods: Method[]
  handler: (rc: RouteContext) => Promise<Reply>
  /** false for routes that read the request body themselves (uploads, proxies); the JSON body is then not read. */
  readBody?: boolean
}

export interface HttpServerOptions {
  routes: Route[]
  logger: Logger
  /** Largest JSON body accepted; default 1 MiB. */
  bodyLimitBytes?: number
  /** A JSON body that stops arriving for this long is answered with 408; default 5 s. */
  bodyIdleMs?: number
  /** Where the HTTP metrics go; default prom-client's global register. */
  registry?: Registry
}

export interface ListenResult { host: string, port: number, url: string }

// Headers must arrive quickly (slowloris); the whole request may take longer because routes that stream
// uploads themselves (readBody: false) can receive tens of MiB on slow links. Answering may take minutes
// (AI calls), so there is deliberately no socket inactivity timeout (server.timeout stays 0).
const REQUEST_TIMEOUT_MS = 300_000
const HEADERS_TIMEOUT_MS = 30_000
/** How long a body that the route does not read may take to arrive before the route answers anyway. */
const UNREAD_BODY_WAIT_MS = 2_000
const KEEP_ALIVE_TIMEOUT_MS = 5_000
const DEFAULT_GRACE_MS = 5_000

export class HttpServer {
  readonly #routes = new Map<string, Route>()
  readonly #logger: Logger
  readonly #bodyLimit: number
  readonly #bodyIdleMs: number
  readonly #metrics: HttpMetrics
  #server?: Server
  #closing?: Promise<void>

  constructor (options: HttpServerOptions) {
    this.#logger = options.logger
    this.#bodyLimit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT
    this.#bodyIdleMs = options.bodyIdleMs ?? BODY_IDLE_MS
    this.#metrics = httpMetrics(options.registry)
    for (const route of options.routes) this.#addRoute(route)
  }

  async listen (addr: string): Promise<ListenResult> {
    if (this.#server !== undefined) throw new Error('the HTTP server is already listening')
    const { host, port } = parseAddr(addr)
    // Without a Host header, Node would answer a bare 400 before our handler could give a JSON error;
    // the API does not need the header at all.
    const server = createServer({ requireHostHeader: false }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        // Only a bug in the error answer itself gets here; the connection cannot be trusted any more.
        this.#logger.error({ err }, 'HTTP request handling failed')
        res.destroy()
      })
    })
    // Node answers an unknown `Expect:` with an empty 417; answer in our error shape instead.
    server.on('checkExpectation', (req, res) => {
      res.writeHead(400, { 'Content-Type': JSON_TYPE, Connection: 'close' })
      res.end(JSON.stringify({ code: ErrorCode.PARAM, message: `Expect: ${clip(String(req.headers.expect))} is not supported` }))
    })
    server.requestTimeout = REQUEST_TIMEOUT_MS
    server.headersTimeout = HEADERS_TIMEOUT_MS
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => { this.#onClientError(err, socket) })

    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => { reject(listenError(addr, err)) }
      server.once('error', onError)
      server.listen({ host, port }, () => {
        server.off('error', onError)
        resolve()
      })
    })
    server.on('error', (err) => { this.#logger.error({ err }, 'http server error') })
    this.#server = server

    const bound = server.address() as AddressInfo
    const reachable = bound.address === '::' || bound.address === '0.0.0.0' ? '127.0.0.1' : bound.address
    const urlHost = reachable.includes(':') ? `[${reachable}]` : reachable
    return { host: bound.address, port: bound.port, url: `http://${urlHost}:${bound.port}` }
  }

  /** Stops accepting connections, lets requests in flight finish for up to graceMs, then cuts the rest. */
  async close (graceMs: number = DEFAULT_GRACE_MS): Promise<void> {
    const server = this.#server
    if (server === undefined) return
    this.#closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => { server.closeAllConnections() }, graceMs)
      server.close(() => {
        clearTimeout(timer)
        resolve()
      })
      // Idle keep-alive sockets would otherwise hold close() open until they time out.
      server.closeIdleConnections()
    })
    await this.#closing
  }

  #addRoute (route: Route): void {
    if (!route.path.startsWith('/')) throw new Error(`route path must start with "/": ${route.path}`)
    if (route.methods.length === 0) throw new Error(`route ${route.path} has no methods`)
    const key = normalizePath(route.path)
    if (this.#routes.has(key)) throw new Error(`route ${route.path} is defined twice`)
    this.#routes.set(key, route)
  }

  /** One request: metrics and access log around it (outermost, so they see every answer), errors turned
   * into our error answers. */
  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint()
    const { path, query } = splitUrl(req.url ?? '/')
    const method = req.method ?? 'GET'
    const route = this.#routes.get(normalizePath(path))
    this.#metrics.inFlight.inc()
    // 'close' fires both after a normal finish and when the client goes away; it is the one event that
    // covers streamed bodies to their end.
    res.once('close', () => {
      this.#metrics.inFlight.dec()
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      // 499 (nginx's "client closed request") when the client left before we answered at all.
      const status = res.headersSent ? String(res.statusCode) : '499'
      const labels = { method, route: route?.path ?? 'unmatched', status }
      this.#metrics.duration.observe(labels, seconds)
      this.#metrics.requests.inc(labels)
      this.#logger.debug({ method, path, status: Number(status), ms: Math.round(seconds * 1000) }, 'http request')
      if (this.#closing !== undefined) this.#server?.closeIdleConnections()
    })
    try {
      if (route === undefined) throw new AicnError(ErrorCode.UNSUPPORTED, `no such endpoint: ${clip(method)} ${clip(path)}`, { status: 404 })
      await this.#dispatch(route, req, res, query)
    } catch (err) {
      this.#answerError(req, res, path, err)
    }
  }

  async #dispatch (route: Route, req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    const method = req.method === 'HEAD' ? 'GET' : req.method ?? 'GET' // Node leaves out the body of HEAD answers
    if (!(route.methods as string[]).includes(method)) {
      const allowed = route.methods.join(', ')
      res.setHeader('Allow', allowed)
      throw new AicnError(ErrorCode.UNSUPPORTED, `method ${clip(req.method ?? '')} not allowed on ${route.path}; use ${allowed}`, { status: 405 })
    }

    let body: Record<string, unknown> | undefined
    try {
      if (method === 'POST' && route.readBody !== false && isJsonReadable(req.headers['content-type'])) {
        body = await readJsonBody(req, this.#bodyLimit, this.#bodyIdleMs)
      } else if (route.readBody !== false && !req.complete) {
        // A body this route does not use still comes off the socket first: Node closes a connection
        // whose request is still arriving, and the reset that the unread bytes cause can cut off an
        // answer larger than the socket's buffers (a GET of the metrics with a body).
        await discardBody(req, this.#bodyLimit, UNREAD_BODY_WAIT_MS)
      }
    } catch (err) {
      // The rest of the body is left unread, so this connection cannot carry another request.
      if (!req.complete) res.setHeader('Connection', 'close')
      throw err
    }

    const params = Params.from(query === '' ? {} : parseQuery(query), body)
    const reply = await route.handler({ params, req, header: (name) => header(req, name), signal: disconnectSignal(res) })
    if (reply?.kind === 'stream') {
      await writeStream(req, res, reply, this.#logger)
      return
    }
    const rendered = render(reply)
    this.#send(res, rendered.status, rendered.contentType, rendered.body, rendered.headers)
  }

  #send (res: ServerResponse, status: number, contentType: string, body: string, headers?: Record<string, string>): void {
    if (res.headersSent || res.destroyed) return
    if (headers !== undefined) for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
    if (this.#closing !== undefined) res.setHeader('Connection', 'close')
    res.setHeader('Content-Type', contentType)
    res.setHeader('Content-Length', Buffer.byteLength(body))
    res.statusCode = status
    res.end(body)
  }

  #answerError (req: IncomingMessage, res: ServerResponse, path: string, err: unknown): void {
    const method = req.method
    if (res.headersSent || res.destroyed) {
      // Nothing can be said to the client any more (it left, or a stream was already under way).
      this.#logger.debug({ err, method, path }, 'error after the response started or the client left')
      if (!res.writableEnded) res.destroy()
      return
    }
    let answer: AicnError
    if (isAicnError(err)) {
      answer = err
      if (err.status >= 500) this.#logger.warn({ err, method, path }, 'request failed')
    } else {
      this.#logger.error({ err, method, path }, 'unhandled error in HTTP handler')
      answer = new AicnError(ErrorCode.INTERNAL, 'internal error')
    }
    this.#send(res, answer.status, JSON_TYPE, JSON.stringify(errorBody(answer)))
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

/** Aborted when the client goes away before the response is finished. */
function disconnectSignal (res: ServerResponse): AbortSignal {
  const controller = new AbortController()
  if (res.destroyed && !res.writableFinished) {
    controller.abort(new Error('client disconnected'))
  } else {
    // ServerResponse emits 'close' also when its socket dies; only a close before the end is a disconnect.
    res.once('close', () => {
      if (!res.writableFinished) controller.abort(new Error('client disconnected'))
    })
  }
  return controller.signal
}

function header (req: IncomingMessage, name: string): string {
  const value = req.headers[name.toLowerCase()]
  return Array.isArray(value) ? value.join(', ') : value ?? ''
}

/** The path and the query string of a request target; an absolute URL (a proxy's request) counts by its path. */
function splitUrl (url: string): { path: string, query: string } {
  let target = url
  if (!target.startsWith('/')) {
    try {
      const parsed = new URL(target)
      target = parsed.pathname + parsed.search
    } catch {}
  }
  const mark = target.indexOf('?')
  return mark < 0 ? { path: target, query: '' } : { path: target.slice(0, mark), query: target.slice(mark + 1) }
}

/** Splits 'host:port', '[::1]:port' or ':port' (all interfaces). */
export function parseAddr (addr: string): { host: string | undefined, port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim())
  const port = match === null ? NaN : Number(match[3])
  if (match === null || port > 65535) {
    throw new Error(`API.Addr "${addr}" must look like host:port, e.g. 127.0.0.1:6000, [::1]:6000 or :6000`)
  }
  const host = match[1] ?? match[2]
  return { host: host === '' ? undefined : host, port }
}

function listenError (addr: string, err: NodeJS.ErrnoException): Error {
  switch (err.code) {
    case 'EADDRINUSE': return new Error(`API.Addr ${addr} is already in use`, { cause: err })
    case 'EADDRNOTAVAIL': return new Error(`API.Addr ${addr}: that address does not belong to this machine`, { cause: err })
    case 'EACCES': return new Error(`API.Addr ${addr}: permission denied (ports below 1024 need privileges)`, { cause: err })
    case 'ENOTFOUND':
    case 'EAI_AGAIN': return new Error(`API.Addr ${addr}: unknown host`, { cause: err })
    default: return new Error(`API.Addr ${addr}: ${err.message}`, { cause: err })
  }
}

function normalizePath (path: string): string {
  const trimmed = path.replace(/\/+$/, '')
  return trimmed === '' ? '/' : trimmed
}

// Request paths and methods are echoed in error messages; keep a giant URL from coming back whole.
function clip (text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}...` : text
}
