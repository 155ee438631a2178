// What a route handler returns. Handlers never touch the Koa response themselves, so that the envelope,
// the content type and error handling stay the same on every endpoint.
import type { AicnError } from '../core/errors.ts'

export type Reply =
  /** `200 {"code":0,"message":"ok","data":…}`; the data key is left out when data is undefined. */
  | { kind: 'envelope', data?: unknown, message?: string, headers?: Record<string, string> }
  /** The same envelope around data that is JSON text already (a model's answer, passed on as it came). */
  | { kind: 'envelope-json', dataJson: string, headers?: Record<string, string> }
  /** Bare JSON: some endpoints of the contract (id, swarm/peers, swarm/addrs, pubsub/peers) answer without the envelope. */
  | { kind: 'raw', body: unknown, status?: number, headers?: Record<string, string> }
  /** Text as it is: the Prometheus exposition format, or a model's JSON answer passed on unparsed. */
  | { kind: 'text', body: string, contentType: string, status?: number, headers?: Record<string, string> }
  /** A body written chunk by chunk as it arrives (server-sent events from a model), never buffered. */
  | StreamReply

export interface StreamReply {
  kind: 'stream'
  status: number
  contentType: string
  headers?: Record<string, string>
  body: AsyncIterable<Uint8Array>
  /** the bytes to end with when the body fails after the first chunk (e.g. an SSE error event) */
  onError?: (err: unknown) => Uint8Array | undefined
}

export const ok = (data?: unknown, message?: string, headers?: Record<string, string>): Reply => ({ kind: 'envelope', data, message, headers })

/** ok() for data that is JSON text already; the text must be valid JSON (it is spliced in as it is). */
export const okJson = (dataJson: string, headers?: Record<string, string>): Reply => ({ kind: 'envelope-json', dataJson, headers })

export const raw = (body: unknown, status?: number, headers?: Record<string, string>): Reply => ({ kind: 'raw', body, status, headers })

export const text = (body: string, contentType: string, status?: number, headers?: Record<string, string>): Reply => ({ kind: 'text', body, contentType, status, headers })

/** The body of every error answer: the contract's envelope without data. */
export function errorBody (err: AicnError): { code: number, message: string } {
  return { code: err.code, message: err.message }
}

export const JSON_TYPE = 'application/json; charset=utf-8'

export interface Rendered { status: number, contentType: string, body: string, headers?: Record<string, string> }

/** Turns a Reply into status, content type and bytes; throws a TypeError on something that is not a Reply
 * (a handler bug, which the server reports as an internal error). */
export function render (reply: Reply): Rendered {
  if (reply == null || typeof reply !== 'object') throw new TypeError(`handler returned ${String(reply)} instead of a Reply`)
  switch (reply.kind) {
    case 'envelope':
      // JSON.stringify drops a key whose value is undefined, which is what leaves "data" out.
      return { status: 200, contentType: JSON_TYPE, body: JSON.stringify({ code: 0, message: reply.message ?? 'ok', data: reply.data }), headers: reply.headers }
    case 'envelope-json':
      return { status: 200, contentType: JSON_TYPE, body: `{"code":0,"message":"ok","data":${reply.dataJson}}`, headers: reply.headers }
    case 'raw':
      return { status: reply.status ?? 200, contentType: JSON_TYPE, body: JSON.stringify(reply.body) ?? 'null', headers: reply.headers }
    case 'text':
      return { status: reply.status ?? 200, contentType: reply.contentType, body: reply.body, headers: reply.headers }
    case 'stream':
      throw new TypeError('a stream reply is written by the server, not rendered')
    default:
      throw new TypeError(`handler returned a Reply of unknown kind ${JSON.stringify((reply as { kind?: unknown }).kind)}`)
  }
}
