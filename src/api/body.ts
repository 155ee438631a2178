// Request bodies. JSON comes through @koa/bodyparser with a byte limit; around it we add what it does not
// do: a deadline for a body that stops arriving, the Go node's leniency about Content-Type, the object and
// depth rules, and draining a body nobody reads.
import type { IncomingMessage } from 'node:http'
import { bodyParser } from '@koa/bodyparser'
import type { Context } from 'koa'
import { AicnError, ErrorCode } from '../core/errors.ts'

export const DEFAULT_BODY_LIMIT = 1024 * 1024
/** A request body that stops arriving for this long is given up (408): a client that announces a body and
 * never sends it would otherwise hold its connection until the 5-minute request timeout. */
export const BODY_IDLE_MS = 5_000
/** How long a body that the route does not read may take to arrive before the route answers anyway. */
const UNREAD_BODY_WAIT_MS = 2_000
/** No real request nests this deep; a deeper body would overflow the stack when we serialize it again. */
export const MAX_JSON_DEPTH = 128

/** Besides JSON proper, a missing type, text/plain and application/x-www-form-urlencoded are read as JSON:
 * the Go node never looked at Content-Type, and `curl -d '{…}'` (the way the docs call the API) sends
 * x-www-form-urlencoded. Browsers may not send these to state-changing routes (src/api/guard.ts). */
const JSON_TYPES = ['application/json', '+json', 'text/json', 'text/plain', 'application/x-www-form-urlencoded']

export type JsonBodyReader = (ctx: Context) => Promise<Record<string, unknown> | undefined>

/** Reads a POST's JSON body (undefined when there is none), or takes an unread body off the socket. */
export function jsonBodyReader (limit = DEFAULT_BODY_LIMIT, idleMs = BODY_IDLE_MS): JsonBodyReader {
  const parse = bodyParser({
    enableTypes: ['json'],
    extendTypes: { json: JSON_TYPES },
    jsonLimit: limit,
    jsonStrict: false,
    detectJSON: (ctx) => ctx.get('content-type').trim() === ''
  })
  return async (ctx) => {
    if (ctx.method === 'POST') {
      const parsing = parse(ctx, async () => {})
      try {
        await withIdleDeadline(ctx.req, idleMs, parsing)
      } catch (err) {
        // The rest of the body is left unread, so this connection cannot carry another request.
        if (!ctx.req.complete) ctx.set('Connection', 'close')
        throw bodyError(err, limit)
      }
    }
    // A body this route does not parse (GET with a body, an unknown type) still comes off the socket
    // first: Node closes a connection whose request is still arriving, and the reset that the unread bytes
    // cause can cut off an answer larger than the socket's buffers.
    if (ctx.request.rawBody === undefined && !ctx.req.complete) {
      try {
        await drain(ctx.req, limit, UNREAD_BODY_WAIT_MS)
      } catch (err) {
        ctx.set('Connection', 'close')
        throw err
      }
    }
    return ctx.request.rawBody === undefined ? undefined : asObject(ctx.request.body)
  }
}

export function tooLarge (limit: number): AicnError {
  return new AicnError(ErrorCode.BUFFER, `request body exceeds ${limit} bytes`, { status: 413 })
}

/** The parsed body as the API takes it: an object; empty or a JSON null (Go's "no fields") is undefined. */
export function asObject (value: unknown): Record<string, unknown> | undefined {
  if (value === null || value === '' || value === undefined) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) throw new AicnError(ErrorCode.PARSE, 'JSON body must be an object')
  if (depthExceeds(value, MAX_JSON_DEPTH)) throw new AicnError(ErrorCode.PARSE, `JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`)
  return value as Record<string, unknown>
}

/** co-body's errors (status and type, from raw-body) as ours. */
function bodyError (err: unknown, limit: number): AicnError {
  if (err instanceof AicnError) return err
  const { status, type, message } = err as { status?: number, type?: string, message?: string }
  if (status === 413 || type === 'entity.too.large') return tooLarge(limit)
  if (status === 415) return new AicnError(ErrorCode.PARAM, `unsupported request body encoding: ${clip(message ?? '')}`, { status: 415 })
  if (type === 'request.aborted') return new AicnError(ErrorCode.PARSE, 'request body aborted by the client')
  if (err instanceof SyntaxError) return new AicnError(ErrorCode.PARSE, `malformed JSON body: ${clip(err.message)}`)
  return new AicnError(ErrorCode.PARSE, `reading the request body failed: ${clip(message ?? String(err))}`)
}

/** Rejects with 408 when no byte of the body arrives for `idleMs` while `work` reads it. */
async function withIdleDeadline<T> (req: IncomingMessage, idleMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const onData = (): void => { timer?.refresh() }
  const stalled = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      // Stop pulling bytes; the answer closes the connection, which ends the read.
      req.pause()
      reject(new AicnError(ErrorCode.PARSE, `the request body stopped arriving (nothing for ${idleMs / 1000} s)`, { status: 408 }))
    }, idleMs)
  })
  req.on('data', onData)
  try {
    return await Promise.race([work, stalled])
  } finally {
    clearTimeout(timer)
    req.off('data', onData)
    work.catch(() => {})
  }
}

/** Reads and drops a body: resolves once it ended or after `waitMs` (a client that announced a body and
 * does not send it is answered anyway); rejects with 413 past `limit`. */
export async function drain (req: IncomingMessage, limit: number, waitMs: number): Promise<void> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit)
  await new Promise<void>((resolve, reject) => {
    let received = 0
    const done = (err?: Error): void => {
      clearTimeout(timer)
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('close', onEnd)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onEnd = (): void => { done() }
    const onData = (chunk: Buffer): void => {
      received += chunk.length
      if (received > limit) {
        req.pause()
        done(tooLarge(limit))
      }
    }
    const timer = setTimeout(() => { done() }, waitMs)
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('close', onEnd)
  })
}

/** Whether a parsed JSON value nests deeper than `limit`, without recursion. */
function depthExceeds (root: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]]
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number]
    if (value === null || typeof value !== 'object') continue
    if (depth > limit) return true
    for (const child of Object.values(value as object)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1])
    }
  }
  return false
}

// V8's messages quote part of the input; keep them short so a huge bad body does not come back in the answer.
function clip (message: string): string {
  return message.length > 120 ? `${message.slice(0, 117)}...` : message
}
