// The Go node's stream protocol `/chat-proxy/0.0.1` (docs/protocols.md): one raw HTTP/1.1 request and its
// response on a libp2p stream. Go nodes use it for streamed chat, base64 image generation and image edits
// sent to a directly connected node; we speak it both ways.
//
// Server (start): parses the request under limits on head and body (a peer cannot make us hold more), takes the job kind from the path
// and project/model/cid from the query, and calls `execute` with the body as it arrives. The answer goes
// back chunked, each piece the model produced sent at once (the Go
// receiver let tokens pile up into 4 KiB bursts). A failure before the answer becomes a
// JSON error that a Go requester shows its client; one after the first byte aborts the stream. Unlike the
// Go receiver, images and edits get 5 minutes (the Go receiver gives edits 3 minutes while its requester waits 5), and nothing of the request (method, headers, extra
// query) reaches the model server except the body and its type (a peer must not steer our model server).
// Client (run): writes the request byte for byte as Go's Request.Write does, reads the answer in whichever
// framing the worker chose, and resolves at its head with the body still streaming.
import { STATUS_CODES } from 'node:http'
import { randomUUID } from 'node:crypto'
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface'
import { AicnError, ErrorCode, isAicnError, toAicnError } from '../../core/errors.ts'
import { StreamedAnswer, collect, drop } from '../../core/iterables.ts'
import { boundAnswer } from '../../core/answer-bounds.ts'
import { deadlineFor } from '../../core/deadlines.ts'
import { DEFAULT_TIMEOUT_MS, JobKind, type JobHead, type JobKindValue, type JobRequest, type JobResponse, type JobRunner, type JobTimeouts } from '../../core/job-types.ts'
import type { Logger } from '../../core/logger.ts'
import type { ProtocolComponents } from '../../p2p/components.ts'
import { write } from '../../p2p/stream-write.ts'
import { toGoCode } from '../codes.ts'
import { defaultBudgets, serveWithinBudget, type Lease, type PeerBudgets } from '../../p2p/peer-budget.ts'
import { badJobNames, badToken } from '../../core/identifiers.ts'
import { RunningJobs, cancelError, type InboundJob } from '../../core/running-jobs.ts'
import {
  HttpError, LAST_CHUNK, StreamReader, bodyAllowed, encodeChunk, encodeHead, header, parseRequestHead, parseResponseHead,
  readBody, requestFraming, responseFraming, type BodyFraming, type Headers, type RequestHead, type ResponseHead
} from './http-over-stream.ts'

export const CHAT_PROXY_PROTOCOL = '/chat-proxy/0.0.1'

/** What the chat-proxy service takes from libp2p (src/p2p/components.ts). */
export type ChatProxyComponents = ProtocolComponents

export interface ChatProxyOptions {
  log: Logger
  /** default 64 KiB: a longer request or response head (or trailer) aborts the stream */
  maxHeaderBytes?: number
  /** default 8 MiB: a larger request body is refused (413); JSON jobs are far smaller */
  maxRequestBytes?: number
  /** default 64 MiB: the same for image edits (multipart uploads) */
  maxUploadBytes?: number
  /** default 5 s: a requester has this long to send its request head */
  headTimeoutMs?: number
  /** default 10 s: a request body being read must bring more bytes within this */
  bodyIdleMs?: number
  /** what each peer may take of this node; shared with the job protocol (src/node/node.ts) */
  budgets?: PeerBudgets
  /** default 8 MiB: a request body that ends within this is sent with Content-Length, as Go does; a longer
   * one (an upload still arriving) is streamed chunked instead of held in memory */
  lengthBufferBytes?: number
  /** per kind, for jobs from Go nodes (which send no deadline); default DEFAULT_TIMEOUT_MS */
  timeoutsMs?: JobTimeouts
}

const KiB = 1024
const MiB = 1024 * KiB

/** The path of each job kind. A Go receiver ignores the path (it finds the model by the query); we take
 * the kind from it. Embeddings and completions are ours: Go nodes have none, but two aicn nodes in Go-wire
 * mode still need to send them. */
const PATHS: Record<JobKindValue, string> = {
  [JobKind.CHAT]: '/api/v0/chat/completion',
  [JobKind.IMAGE_GEN]: '/api/v0/image/gen',
  [JobKind.IMAGE_EDIT]: '/api/v0/image/edit',
  [JobKind.EMBEDDING]: '/api/v0/embeddings',
  [JobKind.COMPLETION]: '/api/v0/completions'
}
const KIND_OF_PATH = new Map<string, JobKindValue>(Object.entries(PATHS).map(([kind, path]) => [path, Number(kind) as JobKindValue]))

/** What Go's requester writes (docs/protocols.md, `/chat-proxy/0.0.1`): a fixed Host and Go's default User-Agent. */
const GO_HOST = '127.0.0.1:8080'
const GO_USER_AGENT = 'Go-http-client/1.1'

/** Our error code, next to the Go-style JSON body of an error answer: an aicn requester gets our code
 * back exactly, a Go requester ignores the field. */
const ERROR_CODE_HEADER = 'X-AICN-Error-Code'

/** Past the deadline, a job gets this long to report the timeout before its stream is cut. */
const DEADLINE_GRACE_MS = 5_000
/** stop() gives running jobs this long to tell their requesters before it cuts the streams. */
const MAX_STREAMS = 256
/** The body of an error answer we read. */
const MAX_ERROR_BODY_BYTES = 64 * KiB


export class ChatProxy implements Startable {
  private readonly components: ChatProxyComponents
  private serving = false
  private readonly log: Logger
  private readonly selfId: string
  private readonly maxHeaderBytes: number
  private readonly maxRequestBytes: number
  private readonly maxUploadBytes: number
  private readonly headTimeoutMs: number
  private readonly bodyIdleMs: number
  private readonly budgets: PeerBudgets
  private readonly lengthBufferBytes: number
  private readonly timeoutsMs: JobTimeouts
  private readonly running = new RunningJobs()
  /** one controller per job sent by run(), so that stop() can end them */
  private execute?: JobRunner

  constructor (components: ChatProxyComponents, options: ChatProxyOptions) {
    this.components = components
    this.log = options.log
    this.selfId = components.peerId.toString()
    this.maxHeaderBytes = options.maxHeaderBytes ?? 64 * KiB
    this.maxRequestBytes = options.maxRequestBytes ?? 8 * MiB
    this.maxUploadBytes = options.maxUploadBytes ?? 64 * MiB
    this.headTimeoutMs = options.headTimeoutMs ?? 5_000
    this.bodyIdleMs = options.bodyIdleMs ?? 10_000
    this.budgets = options.budgets ?? defaultBudgets({ hangUp: async (peer) => { await components.connectionManager.closeConnections(peer) } }, options.log)
    this.lengthBufferBytes = options.lengthBufferBytes ?? 8 * MiB
    this.timeoutsMs = options.timeoutsMs ?? DEFAULT_TIMEOUT_MS
  }

  readonly [Symbol.toStringTag] = '@aicn/chat-proxy'

  /** Go requesters' jobs run with `execute` (this node's own models). Set it before the node starts;
   * until then a request is refused. */
  serveWith (execute: JobRunner): void {
    this.execute = execute
  }

  /** Called by libp2p as the node starts, before it listens. Like the Go receiver, not over relayed
   * connections. */
  async start (): Promise<void> {
    if (this.serving) return
    this.serving = true
    await this.components.registrar.handle(CHAT_PROXY_PROTOCOL, (stream, connection) => { this.accept(stream, connection) }, {
      maxInboundStreams: MAX_STREAMS,
      maxOutboundStreams: MAX_STREAMS
    })
  }

  /** libp2p calls this before it closes any connection: running jobs end with an error their other side
   * still receives. */
  async beforeStop (): Promise<void> {
    await this.stop()
  }

  /** Stops serving; running jobs (both ways) end with "node is stopping". */
  async stop (): Promise<void> {
    this.execute = undefined
    if (this.serving) {
      this.serving = false
      await this.components.registrar.unhandle(CHAT_PROXY_PROTOCOL).catch(() => {})
    }
    await this.running.stopAll(this.selfId)
  }

  // ---- client side

  /** Sends a job to a (Go) worker; resolves at the response head, with the body still streaming. */
  async run (peer: PeerId, request: JobRequest, signal: AbortSignal): Promise<JobResponse> {
    const node = peer.toString()
    const { head } = request
    const path = PATHS[head.kind]
    if (path === undefined) throw new AicnError(ErrorCode.UNSUPPORTED, `${CHAT_PROXY_PROTOCOL} carries no jobs of kind ${head.kind}`)
    if (/[\r\n\0]/.test(head.contentType)) throw new AicnError(ErrorCode.PARAM, 'the request\'s Content-Type contains a line break')
    // The answer's X-AICN-CID is this cid: it must be fit for a header (src/core/identifiers.ts).
    const badName = badJobNames(head)
    if (badName !== undefined) throw new AicnError(ErrorCode.PARAM, `the job is invalid: ${badName}`)
    if (signal.aborted) throw cancelError(node, head.deadline, signal.reason)

    const { controller, release } = this.running.sendTo(node, head, signal, 0)

    let stream: Stream
    try {
      stream = await this.components.connectionManager.openStream(peer, [CHAT_PROXY_PROTOCOL], { signal: controller.signal, maxOutboundStreams: MAX_STREAMS })
    } catch (err) {
      release()
      throw controller.signal.aborted ? controller.signal.reason as AicnError : dialError(node, err)
    }

    const call = new Call(stream, node, controller.signal, release)
    if (controller.signal.aborted) call.abandon(controller.signal.reason as AicnError)
    else controller.signal.addEventListener('abort', () => { call.abandon(controller.signal.reason as AicnError) }, { once: true })
    void call.upload((length) => requestHead(path, head, length), request.body, this.lengthBufferBytes)

    const responseHead = await call.head(this.maxHeaderBytes)
    const framing = call.framing(responseHead)
    // The node is the peer at the other end of the stream, never what the answer says.
    const response = { status: responseHead.status, contentType: header(responseHead.headers, 'content-type') ?? '', nodeId: node, cid: head.cid }
    // The content type goes into our client's response headers.
    const bad = badToken('content type', response.contentType)
    if (bad !== undefined) throw call.fail(new AicnError(ErrorCode.STREAM, `node ${node} sent an invalid HTTP answer: ${bad}`))
    const code = ourErrorCode(responseHead)
    if (code !== undefined) {
      const message = await call.errorMessage(framing)
      return { ...response, error: { code, message }, body: nothing() }
    }
    // A worker may be hostile too: its answer is read with the same bounds as a model's.
    return { ...response, body: boundAnswer(new ResponseBody(call, readBody(call.reader, framing, this.maxHeaderBytes)), response.contentType, head.kind) }
  }

  // ---- server side

  private accept (stream: Stream, connection: Connection): void {
    const execute = this.execute
    if (execute === undefined) {
      stream.abort(new Error('this node does not serve chat-proxy requests any more'))
      return
    }
    // Garbage, a requester that went away, an answer that broke off: the stream is aborted (a Go
    // requester reports a read error) and the node keeps serving.
    serveWithinBudget(stream, connection.remotePeer.toString(), { budgets: this.budgets, running: this.running, log: this.log, what: 'chat-proxy' },
      async (job, lease) => { await this.serve(job, execute, lease) })
  }

  private async serve ({ stream, controller }: InboundJob, execute: JobRunner, lease: Lease): Promise<void> {
    const { signal } = controller
    const reader = new StreamReader(stream, MiB, lease)
    let answered = false
    // A reset (or the requester's node going away) before the answer ended: nobody waits for it any more.
    const onClose = (): void => {
      if (!answered) controller.abort(new AicnError(ErrorCode.STREAM, 'the requester went away'))
    }
    stream.addEventListener('close', onClose)
    const headMs = this.headTimeoutMs
    let timer = setTimeout(() => { reader.fail(new HttpError(`no request head within ${headMs} ms`)) }, headMs)
    try {
      const bytes = await reader.readHead(this.maxHeaderBytes)
      clearTimeout(timer)
      if (bytes === null) {
        await stream.close()
        return
      }
      const requestHead = parseRequestHead(bytes)
      const tooFast = lease.startJob()
      if (tooFast !== undefined) throw tooFast
      const body = new RequestBody(reader, requestFraming(requestHead), { limit: this.maxRequestBytes, maxTrailerBytes: this.maxHeaderBytes, idleMs: this.bodyIdleMs, lease })

      let response: JobResponse
      try {
        const request = await this.jobRequest(requestHead, body)
        const { deadline } = request.head
        // At the deadline the job is told to stop and may still report the timeout; after the grace, the
        // stream is cut, whatever the job or the requester does.
        timer = setTimeout(() => { controller.abort(new AicnError(ErrorCode.TIMEOUT, 'the job\'s deadline passed')) }, deadline - Date.now())
        const cut = setTimeout(() => { stream.abort(new AicnError(ErrorCode.TIMEOUT, 'the job\'s deadline passed')) }, deadline + DEADLINE_GRACE_MS - Date.now())
        cut.unref()
        stream.addEventListener('close', () => { clearTimeout(cut) }, { once: true })
        this.log.debug({ path: requestHead.target.split('?')[0].slice(0, 64), project: request.head.project, model: request.head.model }, 'chat-proxy request')
        response = await execute(request, signal)
      } catch (err) {
        // A body that broke the protocol (or a stream that broke) cannot be answered.
        if (body.broken !== undefined) throw body.broken
        response = failed(body.error ?? (isAicnError(err) ? err : signal.aborted && isAicnError(signal.reason) ? signal.reason : toAicnError(err)))
      }
      await answer(stream, requestHead.minor, response)
      answered = true
      await stream.close()
    } finally {
      answered = true
      clearTimeout(timer)
      stream.removeEventListener('close', onClose)
      // Whatever of the request nobody read is dropped, but the requester may finish sending it: Go
      // writes the whole request before it reads the answer.
      reader.discard()
    }
  }

  /** The job a request asks for; an AicnError for requests we answer with an error. */
  private async jobRequest (request: RequestHead, body: RequestBody): Promise<JobRequest> {
    const url = new URL(request.target, 'http://localhost')
    const kind = KIND_OF_PATH.get(url.pathname)
    if (kind === undefined) throw new AicnError(ErrorCode.UNSUPPORTED, `no such path: ${url.pathname}`, { status: 404 })
    if (request.method !== 'POST') throw new AicnError(ErrorCode.PARAM, `${request.method} is not allowed on ${url.pathname}`, { status: 405 })
    // URLSearchParams decodes like Go's url.ParseQuery: %XX and '+' for space; the first value wins.
    const query = url.searchParams
    const project = query.get('project') ?? ''
    const model = query.get('model') ?? ''
    if (project === '' || model === '') throw new AicnError(ErrorCode.PARAM, 'the query needs project and model')
    const cid = query.get('cid') ?? ''
    const contentType = header(request.headers, 'content-type')
    const bad = badJobNames({ project, model, cid, contentType })
    if (bad !== undefined) throw new AicnError(ErrorCode.PARAM, `the request is invalid: ${bad}`)
    body.limit = kind === JobKind.IMAGE_EDIT ? this.maxUploadBytes : this.maxRequestBytes
    if (body.declaredBytes > body.limit) throw tooLarge(body.limit)

    const json = kind !== JobKind.IMAGE_EDIT
    const head: JobHead = {
      requestId: randomUUID(),
      project,
      model,
      cid,
      kind,
      contentType: contentType ?? (json ? 'application/json' : ''),
      stream: false,
      deadline: deadlineFor(kind, this.timeoutsMs)
    }
    if (kind !== JobKind.CHAT) return { head, body: body.chunks() }
    // Only a chat body says whether the answer streams; it is small JSON, read it whole (held against the
    // peer's budget until the stream ends).
    const bytes = await collect(body.chunks(true), body.limit) ?? new Uint8Array(0)
    return { head: { ...head, stream: streamFlag(bytes) }, body: once(bytes) }
  }
}

// ---- server helpers

/** The request body for `execute`: as it arrives, within the size limit. */
class RequestBody {
  /** the body broke the HTTP syntax or the stream failed: the stream is aborted, not answered */
  broken?: Error
  /** the body was refused (too large): answered */
  error?: AicnError
  /** a larger body is refused; set once the job's kind is known */
  limit: number
  private readonly reader: StreamReader
  private readonly framing: BodyFraming
  private readonly maxTrailerBytes: number
  private readonly idleMs: number
  private readonly lease: Lease

  constructor (reader: StreamReader, framing: BodyFraming, options: { limit: number, maxTrailerBytes: number, idleMs: number, lease: Lease }) {
    this.reader = reader
    this.framing = framing
    this.limit = options.limit
    this.maxTrailerBytes = options.maxTrailerBytes
    this.idleMs = options.idleMs
    this.lease = options.lease
  }

  /** The Content-Length, or 0 */
  get declaredBytes (): number {
    return this.framing.kind === 'length' ? this.framing.length : 0
  }

  /** The body's pieces; `kept`: the caller holds on to them, so they count against the peer's budget.
   * Each piece must come within idleMs of asking for it (progress, not the job's deadline). */
  async * chunks (kept = false): AsyncGenerator<Uint8Array> {
    let size = 0
    const pieces = readBody(this.reader, this.framing, this.maxTrailerBytes)
    const idleMs = this.idleMs
    let timer: NodeJS.Timeout | undefined
    try {
      for (;;) {
        timer = setTimeout(() => { this.reader.fail(new HttpError(`the request body brought nothing new for ${idleMs} ms`)) }, idleMs)
        const next = await pieces.next()
        clearTimeout(timer)
        if (next.done === true) return
        const piece = next.value
        size += piece.byteLength
        if (size > this.limit) throw (this.error = tooLarge(this.limit))
        if (kept) {
          const over = this.lease.keep(piece.byteLength)
          if (over !== undefined) throw over
        }
        yield piece
      }
    } catch (err) {
      if (err !== this.error) this.broken ??= err as Error
      throw err
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Writes the answer: an error as a complete JSON answer, a model's answer chunked as it comes (each piece
 * sent at once), or, to an HTTP/1.0 requester, delimited by the end of the stream. Throws when the answer
 * breaks off after its head; the caller then aborts the stream. */
async function answer (stream: Stream, minor: number, response: JobResponse): Promise<void> {
  const chunks = response.body[Symbol.asyncIterator]()
  if (response.error !== undefined) {
    drop(chunks)
    await write(stream, errorAnswer(response.status, response.error.code, response.error.message))
    return
  }
  const status = response.status >= 200 && response.status <= 599 ? response.status : 502
  const hasBody = bodyAllowed(status)
  const chunked = hasBody && minor === 1
  const headers: Headers = []
  if (response.contentType !== '') headers.push(['Content-Type', response.contentType])
  if (chunked) headers.push(['Transfer-Encoding', 'chunked'])
  let head: Buffer
  try {
    head = encodeHead(statusLine(status), headers)
  } catch {
    drop(chunks)
    await write(stream, errorAnswer(502, ErrorCode.MODEL, 'the model answered with an invalid Content-Type'))
    return
  }
  try {
    await write(stream, head)
    if (!hasBody) {
      drop(chunks)
      return
    }
    for (;;) {
      const next = await chunks.next()
      if (next.done === true) break
      // An empty chunk would end a chunked body.
      if (next.value.byteLength === 0) continue
      await write(stream, chunked ? encodeChunk(next.value) : next.value)
    }
  } catch (err) {
    drop(chunks)
    throw err
  }
  if (chunked) await write(stream, LAST_CHUNK)
}

/** A complete error answer. The JSON is what a Go requester reads: with exactly `application/json` (no
 * parameters: the Go node compares the whole header) a
 * Go chat requester decodes it and shows `{code, message}` to its client, an image requester reads the same
 * fields, an edit requester passes the answer through. */
function errorAnswer (status: number, code: number, message: string): Buffer {
  const body = Buffer.from(JSON.stringify({ code: toGoCode(code), message }))
  return Buffer.concat([encodeHead(statusLine(status >= 400 && status <= 599 ? status : 500), [
    ['Content-Type', 'application/json'],
    [ERROR_CODE_HEADER, String(code)],
    ['Content-Length', String(body.byteLength)]
  ]), body])
}

/** The status line as Go writes it. */
function statusLine (status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? `status code ${status}`}`
}

/** The chat body's `stream` flag; keys match case-insensitively, as with Go's encoding/json. */
function streamFlag (bytes: Uint8Array): boolean {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    return false
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  let flag = false
  for (const [key, v] of Object.entries(value)) if (key.toLowerCase() === 'stream') flag = v === true
  return flag
}

function tooLarge (limit: number): AicnError {
  return new AicnError(ErrorCode.BUFFER, `the request body exceeds ${limit} bytes`, { status: 413 })
}

/** A JobResponse for a job that failed before the model answered. */
function failed (err: AicnError): JobResponse {
  return { status: err.status, contentType: '', nodeId: '', cid: '', error: { code: err.code, message: err.message }, body: nothing() }
}

// ---- client helpers

/** The request head exactly as Go's Request.Write produces it: Host, User-Agent, the body's length (or
 * chunked), then the other fields sorted by name; the query sorted by key and escaped like Go's
 * url.Values.Encode. */
function requestHead (path: string, head: JobHead, length: number | undefined): Buffer {
  const query = `cid=${goQueryEscape(head.cid)}&model=${goQueryEscape(head.model)}&project=${goQueryEscape(head.project)}`
  const headers: Headers = [['Host', GO_HOST], ['User-Agent', GO_USER_AGENT]]
  headers.push(length === undefined ? ['Transfer-Encoding', 'chunked'] : ['Content-Length', String(length)])
  if (head.contentType !== '') headers.push(['Content-Type', head.contentType])
  return encodeHead(`POST ${path}?${query} HTTP/1.1`, headers)
}

/** Go's url.QueryEscape: everything but letters, digits and -_.~ as %XX, space as '+'. */
export function goQueryEscape (value: string): string {
  return encodeURIComponent(value)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+')
}

/** The code an aicn server put next to its error answer; undefined for any other answer. */
function ourErrorCode (head: ResponseHead): number | undefined {
  const value = header(head.headers, ERROR_CODE_HEADER)
  return value !== undefined && /^\d{1,9}$/.test(value) ? Number(value) : undefined
}

/** The requester's side of one request: owns the stream until the answer ended or was abandoned. */
class Call {
  readonly node: string
  readonly reader: StreamReader
  private readonly stream: Stream
  private readonly signal: AbortSignal
  private readonly release: () => void
  private finished = false
  private uploading = true
  private answering = false

  constructor (stream: Stream, node: string, signal: AbortSignal, release: () => void) {
    this.stream = stream
    this.node = node
    this.reader = new StreamReader(stream)
    this.signal = signal
    this.release = release
  }

  /** Writes the request; runs while the answer is read. Like Go, never half-closes: the write side is
   * closed with the stream once the answer was read. */
  async upload (head: (length: number | undefined) => Buffer, body: AsyncIterable<Uint8Array>, lengthBufferBytes: number): Promise<void> {
    const chunks = body[Symbol.asyncIterator]()
    try {
      const buffered: Uint8Array[] = []
      let size = 0
      let next: IteratorResult<Uint8Array> | undefined
      while (size <= lengthBufferBytes) {
        next = await this.pull(chunks)
        if (next === undefined) return
        if (next.done === true) break
        buffered.push(next.value)
        size += next.value.byteLength
      }
      if (next?.done === true) {
        await write(this.stream, head(size))
        for (const piece of buffered) if (piece.byteLength > 0) await write(this.stream, piece)
        return
      }
      await write(this.stream, head(undefined))
      for (const piece of buffered) if (piece.byteLength > 0) await write(this.stream, encodeChunk(piece))
      for (;;) {
        next = await this.pull(chunks)
        if (next === undefined) return
        if (next.done === true) break
        if (next.value.byteLength > 0) await write(this.stream, encodeChunk(next.value))
      }
      await write(this.stream, LAST_CHUNK)
    } catch {
      // Writing failed: the stream is gone, and reading the answer reports why.
      drop(chunks)
    } finally {
      this.uploading = false
    }
  }

  /** The response head, after any interim (1xx) answers. */
  async head (maxBytes: number): Promise<ResponseHead> {
    for (;;) {
      let head: ResponseHead
      try {
        const bytes = await this.reader.readHead(maxBytes)
        if (bytes === null) throw new AicnError(ErrorCode.STREAM, `node ${this.node} closed the chat-proxy stream without answering`)
        head = parseResponseHead(bytes)
      } catch (err) {
        throw this.fail(this.errorFrom(err))
      }
      if (head.status >= 200) {
        this.answering = true
        return head
      }
      if (head.status === 101) throw this.fail(new AicnError(ErrorCode.STREAM, `node ${this.node} switched protocols instead of answering`))
    }
  }

  framing (head: ResponseHead): BodyFraming {
    try {
      return responseFraming(head)
    } catch (err) {
      throw this.fail(this.errorFrom(err))
    }
  }

  /** The message of an aicn server's error answer. */
  async errorMessage (framing: BodyFraming): Promise<string> {
    let bytes: Uint8Array | undefined
    try {
      bytes = await collect(readBody(this.reader, framing, MAX_ERROR_BODY_BYTES), MAX_ERROR_BODY_BYTES)
    } catch (err) {
      throw this.fail(this.errorFrom(err))
    }
    this.complete()
    try {
      const parsed = JSON.parse(Buffer.from(bytes ?? []).toString('utf8')) as { message?: unknown }
      if (typeof parsed.message === 'string') return parsed.message
    } catch {}
    return `node ${this.node} failed the job`
  }

  /** The answer was read to its end: close the stream, as Go's requester does. */
  complete (): void {
    if (this.finished) return
    this.finished = true
    this.end()
    // An upload still running means the worker answered before reading all of it: nothing will read the
    // rest, so reset rather than finish sending.
    if (this.uploading) this.stream.abort(new Error('the answer came before the request was sent'))
    else this.stream.close().catch(() => {})
  }

  /** Ends the call from this side: the worker's job is told through the reset. */
  abandon (err: AicnError): void {
    if (this.finished) return
    this.finished = true
    // Through the reader, so that a read in progress or to come throws `err`.
    this.reader.fail(err)
    this.end()
  }

  fail (err: AicnError): AicnError {
    this.abandon(err)
    return err
  }

  errorFrom (err: unknown): AicnError {
    if (this.signal.aborted && isAicnError(this.signal.reason)) return this.signal.reason
    if (isAicnError(err)) return err
    if (err instanceof HttpError) return new AicnError(ErrorCode.STREAM, `node ${this.node} sent an invalid HTTP answer: ${err.message}`)
    if ((err as Error)?.name === 'StreamResetError') {
      // A Go receiver resets the stream when it does not serve the model or cannot reach it.
      const when = this.answering ? 'in the middle of its answer' : 'instead of answering (a Go node does this when it does not serve the model or cannot reach it)'
      return new AicnError(ErrorCode.STREAM, `node ${this.node} reset the chat-proxy stream ${when}`)
    }
    return new AicnError(ErrorCode.STREAM, `the chat-proxy stream to node ${this.node} failed: ${(err as Error)?.message ?? String(err)}`)
  }

  /** The next piece of the request body; undefined once the call is over or the body failed. */
  private async pull (chunks: AsyncIterator<Uint8Array>): Promise<IteratorResult<Uint8Array> | undefined> {
    if (this.finished) {
      drop(chunks)
      return undefined
    }
    let next: IteratorResult<Uint8Array>
    try {
      next = await chunks.next()
    } catch (err) {
      // The body's source failed (the client's upload broke off or was too large): the job cannot go on.
      this.abandon(isAicnError(err) ? err : new AicnError(ErrorCode.STREAM, `reading the request body failed: ${(err as Error).message}`))
      return undefined
    }
    if (this.finished) {
      drop(chunks)
      return undefined
    }
    return next
  }

  private end (): void {
    this.reader.dispose()
    this.release()
  }
}

/** The answer's body as it arrives; throws an AicnError if it breaks off. Leaving early (break, return(),
 * even before the first next()) abandons the call. */
class ResponseBody extends StreamedAnswer {
  private readonly call: Call
  private readonly pieces: AsyncGenerator<Uint8Array>

  constructor (call: Call, pieces: AsyncGenerator<Uint8Array>) {
    super()
    this.call = call
    this.pieces = pieces
  }

  protected async pull (): Promise<Uint8Array | undefined> {
    try {
      for (;;) {
        const next = await this.pieces.next()
        if (next.done === true) {
          this.call.complete()
          return undefined
        }
        if (next.value.byteLength > 0) return next.value
      }
    } catch (err) {
      throw this.call.fail(this.call.errorFrom(err))
    }
  }

  protected abandon (): void {
    this.call.abandon(new AicnError(ErrorCode.STREAM, 'the answer was abandoned'))
  }
}

async function * nothing (): AsyncGenerator<Uint8Array> {}

async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.byteLength > 0) yield bytes
}

function dialError (node: string, err: unknown): AicnError {
  const error = err as Error
  if (error?.name === 'UnsupportedProtocolError') {
    return new AicnError(ErrorCode.ROUTING, `node ${node} does not speak ${CHAT_PROXY_PROTOCOL}`, { status: 502 })
  }
  return new AicnError(ErrorCode.ROUTING, `cannot reach node ${node}: ${error?.message ?? String(err)}`, { status: 502 })
}
