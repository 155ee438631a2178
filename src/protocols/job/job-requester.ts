// The requester's side of the job protocol: sends a job to a worker and reads the answer as it arrives.
// It writes the head and the body while it reads, so a worker that refuses early is heard at once; run()
// resolves at the response head. On /aicn/job/1.1.0 the stream goes back to the pool once the job is over
// both ways.
import type { PeerId, Stream } from '@libp2p/interface'
import { AicnError, ErrorCode, defaultMessage, isAicnError, statusForCode, type ErrorCodeValue } from '../../core/errors.ts'
import { StreamedAnswer, WholeBody, drop } from '../../core/iterables.ts'
import { boundAnswer } from '../../core/answer-bounds.ts'
import type { JobRequest, JobResponse } from '../../core/job-types.ts'
import type { StreamDialer } from '../../p2p/components.ts'
import type { job } from '../../proto/index.ts'
import { JOB_PROTOCOL, JOB_PROTOCOLS, nothing } from './job-common.ts'
import { FrameBatch, FrameError, FrameReader, requestHeadFrame, type FrameReaderOptions } from './job-frames.ts'
import { StreamPool, type Channel } from './job-pool.ts'
import { MAX_NAME_CHARS, badJobNames, badToken } from '../../core/identifiers.ts'
import { cancelError, type RunningJobs } from '../../core/running-jobs.ts'

/** Past the deadline, the worker gets this long to report the timeout before we give up on it. Short: a
 * client's `timeout` must hold to within a second even when the worker is gone (issue 13, part 8); the
 * client sees code 1004 either way, only the message differs. */
const DEADLINE_GRACE_MS = 500

export interface RequesterOptions {
  frames: FrameReaderOptions
  /** bodies are cut into frames of at most this */
  chunkBytes: number
  /** concurrent job streams per connection */
  maxStreams: number
  /** a kept stream is closed after this long unused */
  idleStreamMs?: number
}

export class JobRequester {
  private readonly dialer: Pick<StreamDialer, 'openStream'>
  private readonly running: RunningJobs
  private readonly options: RequesterOptions
  private readonly pool: StreamPool

  constructor (dialer: Pick<StreamDialer, 'openStream'>, running: RunningJobs, options: RequesterOptions) {
    this.dialer = dialer
    this.running = running
    this.options = options
    this.pool = new StreamPool({ idleMs: options.idleStreamMs })
  }

  /** Idle streams kept for later jobs. */
  get idleStreams (): number {
    return this.pool.size
  }

  /** Closes the idle streams (the node stops). */
  close (): void {
    this.pool.closeAll()
  }

  async run (peer: PeerId, request: JobRequest, signal: AbortSignal): Promise<JobResponse> {
    const node = peer.toString()
    // A name the worker would refuse, or that could not go back into our client's headers (the answer
    // names the cid), is refused here already.
    const bad = badJobNames(request.head)
    if (bad !== undefined) throw new AicnError(ErrorCode.PARAM, `the job is invalid: ${bad}`)
    if (signal.aborted) throw cancelError(node, request.head.deadline, signal.reason)
    const pooled = this.pool.take(node)
    if (pooled !== undefined) {
      try {
        return await this.attempt(peer, request, signal, pooled)
      } catch (err) {
        // A kept stream can die while it waits (its connection closed, the worker stopped): unless the
        // job was given up, or its body cannot be sent twice, try once more on a new stream.
        if (signal.aborted || !(request.body instanceof WholeBody) || !isStreamFailure(err)) throw err
      }
    }
    return await this.attempt(peer, request, signal)
  }

  /** Sends the job on a kept stream or a new one; resolves at the response head, with the body still
   * streaming. */
  private async attempt (peer: PeerId, request: JobRequest, signal: AbortSignal, pooled?: Channel): Promise<JobResponse> {
    const node = peer.toString()
    const { controller, release } = this.running.sendTo(node, request.head, signal, DEADLINE_GRACE_MS)
    let channel = pooled
    if (channel === undefined) {
      try {
        const stream = await this.dialer.openStream(peer, JOB_PROTOCOLS, { signal: controller.signal, maxOutboundStreams: this.options.maxStreams, runOnLimitedConnection: true })
        channel = { stream, reader: new FrameReader(stream, this.options.frames) }
      } catch (err) {
        release()
        throw controller.signal.aborted ? controller.signal.reason as AicnError : dialError(node, err)
      }
    }

    const exchange = new Exchange(channel, node, controller.signal, release, this.pool)
    if (controller.signal.aborted) exchange.abandon(controller.signal.reason as AicnError)
    else controller.signal.addEventListener('abort', () => { exchange.abandon(controller.signal.reason as AicnError) }, { once: true })
    void exchange.upload(requestHeadFrame(request.head), request.body, this.options.chunkBytes)

    const frame = await exchange.read('answering')
    if (frame.frame !== 'response_head') throw exchange.protocolError(`expected a response head, got ${frame.frame ?? 'nothing'}`)
    const rh = frame.response_head ?? {}
    const code = rh.error_code ?? 0
    // The node that served the job is the peer at the other end of the stream (the connection is
    // authenticated), whatever the answer says: a worker cannot take credit, or blame, for another.
    const response = { status: rh.status ?? 0, contentType: rh.content_type ?? '', nodeId: node, cid: rh.cid ?? '' }
    // The cid and content type go into our client's response headers.
    const bad = badToken('cid', response.cid, MAX_NAME_CHARS) ?? badToken('content type', response.contentType)
    if (bad !== undefined) throw exchange.protocolError(`the answer's head is invalid: ${bad}`)
    // A worker may be hostile too: its answer is read with the same bounds as a model's.
    if (code === 0) return { ...response, body: boundAnswer(new ResponseBody(exchange), response.contentType, request.head.kind) }
    // An error head comes with its `end`: read it, so the stream is ready for the next job.
    const end = await exchange.read('the answer ended')
    if (end.frame !== 'end') throw exchange.protocolError(`expected the end of an error answer, got ${end.frame ?? 'nothing'}`)
    // A worker refusing a body over its limit cannot read the rest of it: that stream is not reused.
    exchange.complete(code !== ErrorCode.BUFFER)
    if (response.status === 0) response.status = statusForCode(code)
    const message = rh.error_message ?? ''
    return { ...response, error: { code, message: message !== '' ? message : defaultMessage(code) }, body: nothing() }
  }
}

/** One job on one stream, requester side: owns the stream until the job is over both ways, then hands it
 * back to the pool (1.1.0, job complete) or lets it go. */
class Exchange {
  readonly node: string
  private readonly channel: Channel
  private readonly stream: Stream
  private readonly reader: FrameReader
  private readonly reusable: boolean
  private readonly signal: AbortSignal
  private readonly release: () => void
  private readonly pool: StreamPool
  /** the answer ended (complete) or the job was given up (abandoned) */
  private finished = false
  private abandoned = false
  private keep = true
  private uploading = true
  /** the whole body (and body_end, or the half-close on 1.0.0) went out */
  private uploaded = false

  constructor (channel: Channel, node: string, signal: AbortSignal, release: () => void, pool: StreamPool) {
    this.channel = channel
    this.stream = channel.stream
    this.reader = channel.reader
    this.reusable = channel.stream.protocol === JOB_PROTOCOL
    this.node = node
    this.signal = signal
    this.release = release
    this.pool = pool
  }

  /** Writes the head and the body, then body_end (1.1.0) or a half-close (1.0.0). A body known in advance
   * leaves with its head in one write. Stops early, on 1.1.0 still with body_end, once the answer ended. */
  async upload (head: job.JobFrame.$Properties, body: AsyncIterable<Uint8Array>, chunkBytes: number): Promise<void> {
    const batch = new FrameBatch(chunkBytes).add(head)
    try {
      if (body instanceof WholeBody) batch.addBody(body.bytes)
      else if (!await this.uploadStream(batch, body)) return
      if (this.reusable) await batch.add({ body_end: {} }).flush(this.stream)
      else {
        await batch.flush(this.stream)
        await this.stream.close()
      }
      this.uploaded = true
    } catch {
      // Writing failed: the stream is gone, and reading the answer reports why.
    } finally {
      this.uploading = false
      this.settle()
    }
  }

  /** Sends a body that arrives in chunks; false when its source failed and the job was abandoned. */
  private async uploadStream (batch: FrameBatch, body: AsyncIterable<Uint8Array>): Promise<boolean> {
    await batch.flush(this.stream)
    const chunks = body[Symbol.asyncIterator]()
    try {
      while (!this.finished) {
        let next: IteratorResult<Uint8Array>
        try {
          next = await chunks.next()
        } catch (err) {
          // The body's source failed (the client's upload broke off or was too large): the job cannot go on.
          this.abandon(isAicnError(err) ? err : new AicnError(ErrorCode.STREAM, `reading the request body failed: ${(err as Error).message}`))
          return false
        }
        if (next.done === true) return true
        await batch.addBody(next.value).flush(this.stream)
      }
      // The worker answered already and reads the rest of the body only to skip it.
      drop(chunks)
      return !this.abandoned
    } catch (err) {
      drop(chunks)
      throw err
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

  /** The answer ended; `keep` = false when the stream must not carry another job. */
  complete (keep = true): void {
    if (this.finished) return
    this.finished = true
    this.keep = keep
    this.release()
    this.settle()
  }

  /** Ends the job from this side; the worker's execute signal fires. */
  abandon (err: AicnError): void {
    if (this.finished) return
    this.finished = true
    this.abandoned = true
    // Through the reader, so that a read in progress or to come throws `err`, even on a stream that
    // had already closed.
    this.reader.fail(err)
    this.reader.dispose()
    this.release()
  }

  /** Once the job is over both ways: back to the pool, or let the stream go. */
  private settle (): void {
    if (!this.finished || this.uploading || this.abandoned) return
    if (this.reusable && this.uploaded && this.keep) {
      this.pool.put(this.node, this.channel)
      return
    }
    this.reader.dispose()
    // On 1.0.0 a stream whose body went out closes by itself once the worker closes its side.
    if (!this.reusable && this.stream.writeStatus !== 'writable') return
    this.stream.abort(new Error('the job stream is not reused'))
  }

  private fail (err: AicnError): AicnError {
    this.abandon(err)
    return err
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
class ResponseBody extends StreamedAnswer {
  private readonly exchange: Exchange

  constructor (exchange: Exchange) {
    super()
    this.exchange = exchange
  }

  protected async pull (): Promise<Uint8Array | undefined> {
    for (;;) {
      const frame = await this.exchange.read('the answer ended')
      if (frame.frame === 'body_chunk') {
        const chunk = frame.body_chunk
        if (chunk != null && chunk.byteLength > 0) return chunk
      } else if (frame.frame === 'end') {
        this.exchange.complete()
        const code = frame.end?.error_code ?? 0
        if (code !== 0) throw remoteError(code, frame.end?.error_message ?? '')
        return undefined
      } else {
        throw this.exchange.protocolError(`unexpected ${frame.frame ?? 'empty'} frame in the answer`)
      }
    }
  }

  protected abandon (): void {
    this.exchange.abandon(new AicnError(ErrorCode.STREAM, 'the answer was abandoned'))
  }
}

function isStreamFailure (err: unknown): boolean {
  return err instanceof AicnError && err.code === ErrorCode.STREAM
}

function remoteError (code: number, message: string): AicnError {
  return new AicnError(code as ErrorCodeValue, message !== '' ? message : defaultMessage(code), { status: statusForCode(code) })
}

function dialError (node: string, err: unknown): AicnError {
  const error = err as Error
  if (error?.name === 'UnsupportedProtocolError') {
    return new AicnError(ErrorCode.ROUTING, `node ${node} does not run jobs (it does not speak ${JOB_PROTOCOLS.join(' or ')})`, { status: 502 })
  }
  return new AicnError(ErrorCode.ROUTING, `cannot reach node ${node}: ${error?.message ?? String(err)}`, { status: 502 })
}
