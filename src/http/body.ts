// Reads a JSON request body with a byte limit. Written by hand (no body-parser dependency) so that an
// oversized body is refused without being buffered: we stop reading at the limit and the server closes the
// connection after answering 413.
import type { IncomingMessage } from 'node:http'
import { AicnError, ErrorCode } from '../errors.ts'

export const DEFAULT_BODY_LIMIT = 1024 * 1024
/** A request body that stops arriving for this long is given up (408): a client that announces a body and
 * never sends it would otherwise hold its connection until the 5-minute request timeout. */
export const BODY_IDLE_MS = 5_000

/** Content types whose body we read as JSON. Besides JSON proper, a missing type, text/plain and
 * application/x-www-form-urlencoded are read as JSON too: the Go node never looked at Content-Type, and
 * `curl -d '{…}'` (the way the docs call the API) sends x-www-form-urlencoded. Anything else (multipart,
 * octet-stream…) is left unread for routes that stream the request themselves. */
export function isJsonReadable (contentType: string | undefined): boolean {
  if (contentType === undefined || contentType.trim() === '') return true
  const type = contentType.split(';')[0].trim().toLowerCase()
  return type === 'application/json' ||
    type.endsWith('+json') ||
    type === 'text/json' ||
    type === 'text/plain' ||
    type === 'application/x-www-form-urlencoded'
}

export function tooLarge (limit: number): AicnError {
  return new AicnError(ErrorCode.BUFFER, `request body exceeds ${limit} bytes`, { status: 413 })
}

/** Takes a body nobody reads off the socket: resolves once it ended, or after `waitMs` (a client that
 * announced a body and does not send it is answered anyway); rejects with 413 past `limit`. */
export async function discardBody (req: IncomingMessage, limit: number, waitMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const waited = new Promise<void>((resolve) => { timer = setTimeout(resolve, waitMs) })
  const read = readRawBody(req, limit, false)
  try {
    await Promise.race([read, waited])
  } finally {
    clearTimeout(timer)
    // Still reading after the wait: the connection closes after the answer, which ends the read.
    read.catch(() => {})
  }
}

/** Reads the raw bytes, rejecting with 413 as soon as more than `limit` bytes arrive (or are announced),
 * and with 408 when no byte comes for `idleMs`. With `keep` false the bytes are counted and dropped (a
 * body nobody reads), and the result is empty. */
export async function readRawBody (req: IncomingMessage, limit: number, keep = true, idleMs = BODY_IDLE_MS): Promise<Buffer> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit)

  return await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let received = 0
    // Stopped with req.pause() like a body over the limit; the answer closes the connection.
    const stalled = (): void => {
      cleanup()
      req.pause()
      reject(new AicnError(ErrorCode.PARSE, `the request body stopped arriving (nothing for ${idleMs / 1000} s)`, { status: 408 }))
    }
    const idle = setTimeout(stalled, idleMs)
    const cleanup = (): void => {
      clearTimeout(idle)
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      idle.refresh()
      received += chunk.length
      if (received > limit) {
        cleanup()
        // Stop pulling bytes off the socket; the rest is never read. The caller answers with
        // `Connection: close`, which ends the socket once the 413 is written.
        req.pause()
        chunks.length = 0
        reject(tooLarge(limit))
        return
      }
      if (keep) chunks.push(chunk)
    }
    const onEnd = (): void => {
      cleanup()
      resolve(Buffer.concat(chunks))
    }
    const onError = (err: Error): void => {
      cleanup()
      reject(new AicnError(ErrorCode.PARSE, `reading request body failed: ${err.message}`, { cause: err }))
    }
    const onClose = (): void => {
      // 'close' before 'end' means the client went away mid-body; nobody will read our answer.
      cleanup()
      reject(new AicnError(ErrorCode.PARSE, 'request body aborted by the client'))
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

/** Parses a body as a JSON object. An empty body (or a JSON null, which Go treated as "no fields") gives
 * undefined; anything else that is not an object is a parse error. */
export function parseJsonObject (bytes: Buffer): Record<string, unknown> | undefined {
  let text = bytes.toString('utf8')
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1) // a UTF-8 BOM some Windows tools add
  if (text.trim() === '') return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new AicnError(ErrorCode.PARSE, `malformed JSON body: ${shortDetail(err)}`)
  }
  if (value === null) return undefined
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new AicnError(ErrorCode.PARSE, 'JSON body must be an object')
  }
  if (depthExceeds(value, MAX_JSON_DEPTH)) {
    throw new AicnError(ErrorCode.PARSE, `JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`)
  }
  return value as Record<string, unknown>
}

/** No real request nests this deep; a deeper body would overflow the stack when we serialize it again. */
export const MAX_JSON_DEPTH = 128

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

export async function readJsonBody (req: IncomingMessage, limit: number, idleMs = BODY_IDLE_MS): Promise<Record<string, unknown> | undefined> {
  return parseJsonObject(await readRawBody(req, limit, true, idleMs))
}

// V8's messages quote part of the input; keep them short so a huge bad body does not come back in the answer.
function shortDetail (err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return message.length > 120 ? `${message.slice(0, 117)}...` : message
}
