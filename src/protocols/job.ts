// The job protocol `/aicn/job/1.0.0`: a job (chat, image, embedding request) travels to the node that
// serves its model on a stream of its own, and the answer streams back chunk by chunk as the model
// produces it. Wire format: proto/job.proto; framing and flow control: job-frames.ts.
//
// Requester (run): writes the request head, then the body chunks as they come, then half-closes. It reads
// at the same time, so a worker that refuses early is heard at once; run() resolves at the response head.
// Worker (start): reads the head, calls `execute` with the body as it arrives and a signal that fires when
// the requester goes away, the deadline passes or the node stops, then writes the response head, each
// chunk as soon as the model produced it, and `end`.
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { AicnError, ErrorCode, defaultMessage, isAicnError, statusForCode, toAicnError, type ErrorCodeValue } from '../errors.ts'
import type { JobRequest, JobResponse, JobRunner } from '../jobs/types.ts'
import type { Logger } from '../logger.ts'
import type { Host } from '../p2p/host.ts'
import type { job } from '../proto/index.ts'
import { RunningJobs, type InboundJob } from './running-jobs.ts'
import {
  FrameError, FrameReader, encodeBodyFrame, encodeFrame, jobDeadline, parseRequestHead, requestHeadFrame, write,
  type FrameReaderOptions
} from './job-frames.ts'

export const JOB_PROTOCOL = '/aicn/job/1.0.0'

export interface JobProtocolOptions {
  log: Logger
  /** default 1 MiB: a larger frame is a protocol error */
  maxFrameBytes?: number
  /** default 64 KiB: request/response bodies are cut into frames of at most this */
  chunkBytes?: number
  /** default 256 concurrent jobs per connection */
  maxInboundStreams?: number
  /** default 64 MiB: a request body larger than this is refused (BUFFER, status 413) */
  maxRequestBytes?: number
}

const KiB = 1024
const MiB = 1024 * KiB
/** A requester has this long to send its head after opening the stream. */
const HEAD_TIMEOUT_MS = 10_000
/** Past the deadline, a job gets this long to report the timeout before its stream is cut. */
const DEADLINE_GRACE_MS = 5_000
/** stop() gives running jobs this long to tell their requesters before it cuts the streams. */
/** Error texts are clipped to this many characters on the wire. */
const MAX_ERROR_TEXT = 4096


export class JobProtocol {
  private readonly host: Host
  private readonly log: Logger
  private readonly selfId: string
  private readonly chunkBytes: number
  private readonly maxStreams: number
  private readonly maxRequestBytes: number
  private readonly frames: FrameReaderOptions
  private readonly running = new RunningJobs()
  /** one controller per job sent by run(), so that stop() can end them */
  private execute?: JobRunner

  constructor (host: Host, options: JobProtocolOptions) {
    this.host = host
    this.log = options.log
    this.selfId = host.peerId.toString()
    const maxFrameBytes = options.maxFrameBytes ?? MiB
    // A body frame adds at most 11 bytes to its chunk; keep it within what the peer accepts.
    this.chunkBytes = Math.max(1, Math.min(options.chunkBytes ?? 64 * KiB, maxFrameBytes - 16))
    this.maxStreams = options.maxInboundStreams ?? 256
    this.maxRequestBytes = options.maxRequestBytes ?? 64 * MiB
    this.frames = { maxFrameBytes, highWaterBytes: 4 * this.chunkBytes }
  }

  /** Serves incoming jobs with `execute` (this node's own models: a job from the network is never forwarded). */
  async start (execute: JobRunner): Promise<void> {
    this.execute = execute
    await this.host.handle(JOB_PROTOCOL, (stream, connection) => { this.accept(stream, connection) }, {
      maxInboundStreams: this.maxStreams,
      maxOutboundStreams: this.maxStreams,
      // Small jobs may go through a relay; the dispatcher keeps streams and uploads on direct connections.
      runOnLimitedConnection: true
    })
  }

  /** Stops serving; running jobs (both ways) end with "node is stopping". */
  async stop (): Promise<void> {
    this.execute = undefined
    await this.host.unhandle(JOB_PROTOCOL).catch(() => {})
    await this.running.stopAll(this.selfId)
  }

  /** Sends a job to `peer`; resolves when the response head arrives, with the body still streaming. */
  async run (peer: PeerId, request: JobRequest, signal: AbortSignal): Promise<JobResponse> {
    const node = peer.toString()
    const { head } = request
    if (signal.aborted) throw cancelError(node, head.deadline, signal.reason)

    // Everything that ends the job from this side goes through one controller: the caller's signal, the
    // deadline (plus the grace the worker has to report it), and stop().
    const controller = new AbortController()
    const onCallerAbort = (): void => { controller.abort(cancelError(node, head.deadline, signal.reason)) }
    signal.addEventListener('abort', onCallerAbort, { once: true })
    const timer = setTimeout(() => {
      controller.abort(new AicnError(ErrorCode.TIMEOUT, `node ${node} did not finish the job before its deadline`))
    }, jobDeadline(head.deadline, head.kind) - Date.now() + DEADLINE_GRACE_MS)
    this.running.outbound.add(controller)
    const release = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onCallerAbort)
      this.running.outbound.delete(controller)
    }

    let stream: Stream
    try {
      stream = await this.host.dialProtocol(peer, JOB_PROTOCOL, { signal: controller.signal, maxOutboundStreams: this.maxStreams, runOnLimitedConnection: true })
    } catch (err) {
      release()
      throw controller.signal.aborted ? controller.signal.reason as AicnError : dialError(node, err)
    }

    const exchange = new Exchange(stream, node, new FrameReader(stream, this.frames), controller.signal, release)
    if (controller.signal.aborted) exchange.abandon(controller.signal.reason as AicnError)
    else controller.signal.addEventListener('abort', () => { exchange.abandon(controller.signal.reason as AicnError) }, { once: true })
    void exchange.upload(encodeFrame(requestHeadFrame(head)), request.body, this.chunkBytes)

    const frame = await exchange.read('answering')
    if (frame.frame !== 'response_head') throw exchange.protocolError(`expected a response head, got ${frame.frame ?? 'nothing'}`)
    const rh = frame.response_head ?? {}
    const code = rh.error_code ?? 0
    const response = { status: rh.status ?? 0, contentType: rh.content_type ?? '', nodeId: rh.node_id ?? '', cid: rh.cid ?? '' }
    if (response.nodeId === '') response.nodeId = node
    if (code === 0) return { ...response, body: new ResponseBody(exchange) }
    exchange.complete()
    if (response.status === 0) response.status = statusForCode(code)
    const message = rh.error_message ?? ''
    return { ...response, error: { code, message: message !== '' ? message : defaultMessage(code) }, body: nothing() }
  }

  // ---- worker side

  private accept (stream: Stream, connection: Connection): void {
    const execute = this.execute
    if (execute === undefined) {
      stream.abort(new Error('this node does not serve jobs any more'))
      return
    }
    // Garbage, a requester that went away, a broken stream: the job is over, the node keeps serving.
    this.running.serve(stream, async (job) => { await this.serve(job, execute) }, (err) => {
      this.log.debug({ err: err.message, peer: connection.remotePeer.toString() }, 'job stream failed')
    })
  }

  private async serve ({ stream, controller }: InboundJob, execute: JobRunner): Promise<void> {
    const { signal } = controller
    const reader = new FrameReader(stream, this.frames)
    let finished = false
    // A reset (or the requester's node going away) means nobody waits for the answer any more.
    const onClose = (): void => {
      if (!finished) controller.abort(new AicnError(ErrorCode.STREAM, 'the requester went away'))
    }
    stream.addEventListener('close', onClose)
    let timer = setTimeout(() => { reader.fail(new FrameError(`no job head within ${HEAD_TIMEOUT_MS} ms`)) }, HEAD_TIMEOUT_MS)
    try {
      const first = await reader.next()
      clearTimeout(timer)
      if (first === null) {
        await stream.close()
        return
      }
      if (first.frame !== 'request_head') {
        const err = new FrameError(`expected a request head, got ${first.frame ?? 'nothing'}`)
        reader.fail(err)
        throw err
      }
      let head: JobRequest['head']
      try {
        head = parseRequestHead(first.request_head ?? {})
      } catch (err) {
        await this.answer(stream, failed(new AicnError(ErrorCode.PARAM, (err as Error).message)), () => undefined)
        finished = true
        await this.finish(stream)
        return
      }

      // At the deadline the job is told to stop and may still report the timeout; after the grace, the
      // stream is cut, whatever the job does.
      timer = setTimeout(() => {
        const timeout = new AicnError(ErrorCode.TIMEOUT, 'the job\'s deadline passed')
        controller.abort(timeout)
        timer = setTimeout(() => { stream.abort(timeout) }, DEADLINE_GRACE_MS)
      }, head.deadline - Date.now())

      const body = new RequestBody(reader, this.maxRequestBytes)
      // What went wrong, in the requester's terms: a broken request body explains a failing model call.
      const failure = (err: unknown): AicnError => {
        if (body.error !== undefined) return body.error
        if (isAicnError(err)) return err
        if (signal.aborted && isAicnError(signal.reason)) return signal.reason
        return toAicnError(err)
      }
      let response: JobResponse
      try {
        response = await execute({ head, body: body.chunks() }, signal)
      } catch (err) {
        response = failed(failure(err))
      }
      await this.answer(stream, response, failure)
      finished = true
      await this.finish(stream)
    } finally {
      finished = true
      clearTimeout(timer)
      stream.removeEventListener('close', onClose)
      reader.dispose()
    }
  }

  /** Writes the response head, the body as it comes (each chunk at once, with backpressure), and `end`. */
  private async answer (stream: Stream, response: JobResponse, failure: (err: unknown) => AicnError | undefined): Promise<void> {
    const chunks = response.body[Symbol.asyncIterator]()
    const head: job.JobResponseHead.$Properties = { status: response.status, content_type: response.contentType, node_id: this.selfId, cid: response.cid }
    if (response.error !== undefined) {
      drop(chunks)
      head.error_code = response.error.code
      head.error_message = clip(response.error.message)
      await write(stream, Buffer.concat([encodeFrame({ response_head: head }), encodeFrame({ end: {} })]))
      return
    }
    let end: job.JobEnd.$Properties = {}
    try {
      await write(stream, encodeFrame({ response_head: head }))
      for (;;) {
        let next: IteratorResult<Uint8Array>
        try {
          next = await chunks.next()
        } catch (err) {
          const error = failure(err) ?? toAicnError(err)
          end = { error_code: error.code, error_message: clip(error.message) }
          break
        }
        if (next.done === true) break
        const chunk = next.value
        for (let offset = 0; offset < chunk.byteLength; offset += this.chunkBytes) {
          await write(stream, encodeBodyFrame(chunk.subarray(offset, offset + this.chunkBytes)))
        }
      }
    } catch (err) {
      // The stream failed (the requester went away): stop the model's answer.
      drop(chunks)
      throw err
    }
    await write(stream, encodeFrame({ end }))
  }

  /** Half-closes after the answer; a requester still uploading gets a reset, as nothing reads its body. */
  private async finish (stream: Stream): Promise<void> {
    await stream.close()
    if (stream.remoteWriteStatus === 'writable') stream.abort(new Error('the job was answered before its body ended'))
  }
}

/** The request body as `execute` sees it: body_chunk bytes as they arrive, ending at the requester's
 * half-close. */
class RequestBody {
  /** why the body broke off, if it did */
  error?: AicnError
  private readonly reader: FrameReader
  private readonly limit: number

  constructor (reader: FrameReader, limit: number) {
    this.reader = reader
    this.limit = limit
  }

  async * chunks (): AsyncGenerator<Uint8Array> {
    let size = 0
    try {
      for (;;) {
        const frame = await this.reader.next()
        if (frame === null) return
        if (frame.frame !== 'body_chunk') {
          const err = new FrameError(`unexpected ${frame.frame ?? 'empty'} frame in the request body`)
          this.reader.fail(err)
          throw err
        }
        const chunk = frame.body_chunk ?? EMPTY
        size += chunk.byteLength
        if (size > this.limit) throw new AicnError(ErrorCode.BUFFER, `the request body exceeds ${this.limit} bytes`)
        if (chunk.byteLength > 0) yield chunk
      }
    } catch (err) {
      this.error = isAicnError(err) ? err : new AicnError(ErrorCode.STREAM, `the request body broke off: ${(err as Error).message}`)
      throw this.error
    }
  }
}

/** The requester's side of one job: owns the stream until the answer ended or was abandoned. */
class Exchange {
  readonly node: string
  private readonly stream: Stream
  private readonly reader: FrameReader
  private readonly signal: AbortSignal
  private readonly release: () => void
  private finished = false

  constructor (stream: Stream, node: string, reader: FrameReader, signal: AbortSignal, release: () => void) {
    this.stream = stream
    this.node = node
    this.reader = reader
    this.signal = signal
    this.release = release
  }

  /** Writes the head and the body, then half-closes; runs while the answer is read. */
  async upload (head: Uint8Array, body: AsyncIterable<Uint8Array>, chunkBytes: number): Promise<void> {
    const chunks = body[Symbol.asyncIterator]()
    try {
      await write(this.stream, head)
      for (;;) {
        let next: IteratorResult<Uint8Array>
        try {
          next = await chunks.next()
        } catch (err) {
          // The body's source failed (the client's upload broke off or was too large): the job cannot go on.
          this.abandon(isAicnError(err) ? err : new AicnError(ErrorCode.STREAM, `reading the request body failed: ${(err as Error).message}`))
          return
        }
        if (next.done === true) break
        if (this.finished) {
          drop(chunks)
          return
        }
        const chunk = next.value
        for (let offset = 0; offset < chunk.byteLength; offset += chunkBytes) {
          await write(this.stream, encodeBodyFrame(chunk.subarray(offset, offset + chunkBytes)))
        }
      }
      await this.stream.close()
    } catch {
      // Writing failed: the stream is gone, and reading the answer reports why.
      drop(chunks)
    }
  }

  /** The next frame of the answer; on any failure the job is abandoned and an AicnError thrown. */
  async read (before: string): Promise<job.JobFrame> {
    let frame: job.JobFrame | null
    try {
      frame = await this.reader.next()
    } catch (err) {
      throw this.fail(this.errorFrom(err))
    }
    if (frame === null) throw this.fail(new AicnError(ErrorCode.STREAM, `node ${this.node} closed the stream before ${before}`))
    return frame
  }

  protocolError (message: string): AicnError {
    const err = new FrameError(message)
    this.reader.fail(err)
    return this.fail(this.errorFrom(err))
  }

  /** The answer is complete: the stream closes on its own once the worker's side is closed too. */
  complete (): void {
    if (this.finished) return
    this.finished = true
    if (this.stream.writeStatus === 'writable') this.stream.abort(new Error('the job was answered before its body was sent'))
    this.end()
  }

  /** Ends the job from this side; the worker's execute signal fires. */
  abandon (err: AicnError): void {
    if (this.finished) return
    this.finished = true
    // Through the reader, so that a read in progress or to come throws `err`, even on a stream that
    // had already closed.
    this.reader.fail(err)
    this.end()
  }

  private fail (err: AicnError): AicnError {
    this.abandon(err)
    return err
  }

  private end (): void {
    this.reader.dispose()
    this.release()
  }

  private errorFrom (err: unknown): AicnError {
    if (this.signal.aborted && isAicnError(this.signal.reason)) return this.signal.reason
    if (isAicnError(err)) return err
    if (err instanceof FrameError) return new AicnError(ErrorCode.STREAM, `node ${this.node} sent an invalid frame: ${err.message}`)
    return new AicnError(ErrorCode.STREAM, `the job stream to node ${this.node} failed: ${(err as Error).message}`)
  }
}

/** The answer's body as it arrives; ends at `end`, throws an AicnError if the job fails on the way.
 * Leaving early (break, return(), even before the first next()) abandons the job. */
class ResponseBody implements AsyncIterableIterator<Uint8Array> {
  private readonly exchange: Exchange
  private done = false

  constructor (exchange: Exchange) {
    this.exchange = exchange
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  async next (): Promise<IteratorResult<Uint8Array>> {
    if (this.done) return DONE
    try {
      for (;;) {
        const frame = await this.exchange.read('the answer ended')
        if (frame.frame === 'body_chunk') {
          const chunk = frame.body_chunk ?? EMPTY
          if (chunk.byteLength > 0) return { done: false, value: chunk }
        } else if (frame.frame === 'end') {
          this.done = true
          this.exchange.complete()
          const code = frame.end?.error_code ?? 0
          if (code !== 0) throw remoteError(code, frame.end?.error_message ?? '')
          return DONE
        } else {
          throw this.exchange.protocolError(`unexpected ${frame.frame ?? 'empty'} frame in the answer`)
        }
      }
    } catch (err) {
      this.done = true
      throw err
    }
  }

  async return (): Promise<IteratorResult<Uint8Array>> {
    if (!this.done) {
      this.done = true
      this.exchange.abandon(new AicnError(ErrorCode.STREAM, 'the answer was abandoned'))
    }
    return DONE
  }
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }
const EMPTY = new Uint8Array(0)

async function * nothing (): AsyncGenerator<Uint8Array> {}

/** A JobResponse for a job that failed before the model answered. */
function failed (err: AicnError): JobResponse {
  return { status: err.status, contentType: '', nodeId: '', cid: '', error: { code: err.code, message: err.message }, body: nothing() }
}

/** Lets go of an iterator we stop reading, without waiting for it. */
function drop (iterator: AsyncIterator<unknown>): void {
  Promise.resolve(iterator.return?.()).catch(() => {})
}

function clip (text: string): string {
  return text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}…` : text
}

function remoteError (code: number, message: string): AicnError {
  return new AicnError(code as ErrorCodeValue, message !== '' ? message : defaultMessage(code), { status: statusForCode(code) })
}

/** Why the caller's signal ended the job: its deadline, or the client went away. */
function cancelError (node: string, deadline: number, reason: unknown): AicnError {
  if (isAicnError(reason)) return reason
  if ((deadline > 0 && Date.now() >= deadline) || (reason as Error | undefined)?.name === 'TimeoutError') {
    return new AicnError(ErrorCode.TIMEOUT, `the job to node ${node} ran past its deadline`)
  }
  return new AicnError(ErrorCode.STREAM, 'cancelled')
}

function dialError (node: string, err: unknown): AicnError {
  const error = err as Error
  if (error?.name === 'UnsupportedProtocolError') {
    return new AicnError(ErrorCode.ROUTING, `node ${node} does not run jobs (it does not speak ${JOB_PROTOCOL})`, { status: 502 })
  }
  return new AicnError(ErrorCode.ROUTING, `cannot reach node ${node}: ${error?.message ?? String(err)}`, { status: 502 })
}
