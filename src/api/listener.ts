// One HTTP listener of the API: a node:http server with the API's limits and its answers to malformed
// HTTP. Kept apart from the Koa app (server.ts) so that the listeners can open before the node's heavy
// modules load (src/api/early.ts; docs/benchmarks.md "Start-up and idle").
import { createServer, STATUS_CODES, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { ErrorCode } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { JSON_TYPE } from '../web/reply.ts'
import { DEFAULT_CONNECTION_LIMITS, limitConnections, type ConnectionLimits } from './connection-limits.ts'

export interface ListenResult { host: string, port: number, url: string }

// Headers must arrive quickly (slowloris); the whole request may take longer because routes that stream
// uploads themselves (readBody: false) can receive tens of MiB on slow links. Answering may take minutes
// (AI calls), so there is deliberately no socket inactivity timeout (server.timeout stays 0).
const REQUEST_TIMEOUT_MS = 300_000
const HEADERS_TIMEOUT_MS = 30_000
const KEEP_ALIVE_TIMEOUT_MS = 5_000

/** A node:http server with the API's limits and error answers, listening on `addr` (`host:port`; `name`
 * is the config key the errors mention), its requests going to `handler`. */
export async function openListener (addr: string, name: string, handler: RequestListener, logger: Logger, limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS): Promise<{ server: Server, listening: ListenResult }> {
  const { host, port } = parseAddr(addr, name)
  // Without a Host header, Node would answer a bare 400 before our handler could give a JSON error.
  const server = createServer({ requireHostHeader: false }, handler)
  // Node answers an unknown `Expect:` with an empty 417; answer in our error shape instead.
  server.on('checkExpectation', (req, res) => {
    res.writeHead(400, { 'Content-Type': JSON_TYPE, Connection: 'close' })
    res.end(JSON.stringify({ code: ErrorCode.PARAM, message: `Expect: ${String(req.headers.expect).slice(0, 200)} is not supported` }))
  })
  server.requestTimeout = REQUEST_TIMEOUT_MS
  server.headersTimeout = HEADERS_TIMEOUT_MS
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
  limitConnections(server, limits, name, logger)
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => { answerClientError(err, socket, logger) })

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => { reject(listenError(addr, name, err)) }
    server.once('error', onError)
    server.listen({ host, port }, () => {
      server.off('error', onError)
      resolve()
    })
  })
  server.on('error', (err) => { logger.error({ err }, 'http server error') })

  const bound = server.address() as AddressInfo
  const reachable = bound.address === '::' || bound.address === '0.0.0.0' ? '127.0.0.1' : bound.address
  const urlHost = reachable.includes(':') ? `[${reachable}]` : reachable
  return { server, listening: { host: bound.address, port: bound.port, url: `http://${urlHost}:${bound.port}` } }
}

function answerClientError (err: NodeJS.ErrnoException, socket: Duplex, logger: Logger): void {
  // Malformed HTTP, oversized headers or a request that took too long to arrive: there is no request
  // object, so answer on the raw socket (unless a response is already under way) and drop the connection.
  logger.debug({ err: err.message, code: err.code }, 'bad HTTP from client')
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
