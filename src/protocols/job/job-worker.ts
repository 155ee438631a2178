// The worker's side of the job protocol: reads a job from a stream, runs it with `execute` (this node's own
// models: a job from the network is never forwarded), and writes the answer back as the model produces it.
// On /aicn/job/1.1.0 the stream then waits for the requester's next job; on 1.0.0 it carries one job.
import type { Stream } from '@libp2p/interface'
import { AicnError, ErrorCode, isAicnError, toAicnError } from '../../core/errors.ts'
import { JobKind, type JobRequest, type JobResponse, type JobRunner } from '../../core/job-types.ts'
import type { Lease } from '../../p2p/peer-budget.ts'
import type { job } from '../../proto/index.ts'
import type { InboundJob } from '../../core/running-jobs.ts'
import { FrameBatch, FrameError, FrameReader, parseRequestHead, type FrameReaderOptions } from './job-frames.ts'
import { WholeBody, drop } from '../../core/iterables.ts'
import { JOB_PROTOCOL, clip, failed } from './job-common.ts'

/** An idle reused stream is closed by its requester after 30 s; this only catches requesters that forget. */
const IDLE_TIMEOUT_MS = 5 * 60_000
/** Past the deadline, a job gets this long to report the timeout before its stream is cut. */
const DEADLINE_GRACE_MS = 5_000

export interface WorkerLimits {
  frames: FrameReaderOptions
  /** answers are cut into body frames of at most this */
  chunkBytes: number
  /** a larger request body is refused (BUFFER, status 413); image edits have maxUploadBytes */
  maxRequestBytes: number
  /** the same for image edits (multipart uploads) */
  maxUploadBytes: number
  /** a requester has this long to send its first head on a new stream */
  headTimeoutMs: number
  /** a request body that the job is reading must bring its next frame within this (progress, not the
   * job's deadline: a stalled upload lets go of its stream long before the job would time out); also the
   * time for the rest of a body the worker answered early */
  bodyIdleMs: number
}

/** Serves the jobs of one incoming stream until the requester closes it or something goes wrong; a
 * failure throws (the caller aborts the stream and logs it). */
export async function serveStream (inbound: InboundJob, execute: JobRunner, selfId: string, limits: WorkerLimits, lease?: Lease): Promise<void> {
  const { stream } = inbound
  const reusable = stream.protocol === JOB_PROTOCOL
  const reader = new FrameReader(stream, limits.frames, lease)
  let running = false
  // A reset (or the requester's node going away) means nobody waits for the answer any more.
  const onClose = (): void => {
    if (running) inbound.controller.abort(new AicnError(ErrorCode.STREAM, 'the requester went away'))
  }
  stream.addEventListener('close', onClose)
  try {
    for (let waitMs = limits.headTimeoutMs; ; waitMs = IDLE_TIMEOUT_MS) {
      const first = await nextHead(reader, inbound.controller.signal, waitMs)
      if (first === null) {
        await stream.close()
        return
      }
      // Every job counts against its peer's rate, also the ones that follow on a kept stream.
      const tooFast = lease?.startJob()
      if (tooFast !== undefined) throw tooFast
      running = true
      const limit = first.request_head?.kind === JobKind.IMAGE_EDIT ? limits.maxUploadBytes : limits.maxRequestBytes
      const body = new RequestBody(reader, limit, limits.bodyIdleMs)
      await runJob(stream, first, body, inbound.controller, execute, selfId, limits.chunkBytes)
      running = false
      // The next job may follow once the whole request body was read: the requester sends it after body_end.
      if (!reusable || !(body.complete || await within(reader, limits.bodyIdleMs, 'the rest of the request body', async () => await body.drain()))) {
        await finish(stream)
        return
      }
      // The controller ends the job the stream carries; one that was not used serves the next job too.
      if (inbound.controller.signal.aborted) inbound.controller = new AbortController()
    }
  } finally {
    running = false
    stream.removeEventListener('close', onClose)
    reader.dispose()
  }
}

/** The next job's first frame, or null when the requester closed the stream between jobs. stop() (the
 * signal) ends idle streams too. */
async function nextHead (reader: FrameReader, signal: AbortSignal, waitMs: number): Promise<job.JobFrame | null> {
  return await within(reader, waitMs, 'a job head', async () => {
    const frame = await reader.next()
    if (frame !== null && frame.frame !== 'request_head') {
      const err = new FrameError(`expected a request head, got ${frame.frame ?? 'nothing'}`)
      reader.fail(err)
      throw err
    }
    return frame
  }, signal)
}

/** Runs `read` on the stream with a time limit (and until `signal` aborts): then the reader fails, which
 * resets the stream and makes the read in progress throw. */
async function within<T> (reader: FrameReader, ms: number, what: string, read: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const timer = setTimeout(() => { reader.fail(new FrameError(`${what} did not come within ${ms} ms`)) }, ms)
  const onAbort = (): void => { reader.fail(signal?.reason as Error) }
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    if (signal?.aborted === true) onAbort()
    return await read()
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}

async function runJob (stream: Stream, first: job.JobFrame, body: RequestBody, controller: AbortController, execute: JobRunner, selfId: string, chunkBytes: number): Promise<void> {
  const { signal } = controller
  let head: JobRequest['head']
  try {
    head = parseRequestHead(first.request_head ?? {})
  } catch (err) {
    await answer(stream, failed(new AicnError(ErrorCode.PARAM, (err as Error).message)), toAicnError, selfId, chunkBytes, false)
    return
  }

  // At the deadline the job is told to stop and may still report the timeout; after the grace, the
  // stream is cut, whatever the job does.
  let timer = setTimeout(() => {
    const timeout = new AicnError(ErrorCode.TIMEOUT, 'the job\'s deadline passed')
    controller.abort(timeout)
    timer = setTimeout(() => { stream.abort(timeout) }, DEADLINE_GRACE_MS)
  }, head.deadline - Date.now())
  try {
    // What went wrong, in the requester's terms: a broken request body explains a failing model call.
    const failure = (err: unknown): AicnError => {
      if (body.error !== undefined) return body.error
      if (isAicnError(err)) return err
      if (signal.aborted && isAicnError(signal.reason)) return signal.reason
      return toAicnError(err)
    }
    let response: JobResponse
    try {
      const chunks = body.start()
      response = body.error !== undefined ? failed(body.error) : await execute({ head, body: chunks }, signal)
    } catch (err) {
      response = failed(failure(err))
    }
    await answer(stream, response, failure, selfId, chunkBytes, head.stream)
  } finally {
    clearTimeout(timer)
  }
}

/** Writes the response head, the body and `end`. A streamed answer leaves chunk by chunk, each as soon as
 * the model produced it (backpressure included); any other answer leaves in writes of up to chunkBytes,
 * so that a small one is a single write: head, body and end. */
async function answer (stream: Stream, response: JobResponse, failure: (err: unknown) => AicnError, selfId: string, chunkBytes: number, streamed: boolean): Promise<void> {
  const chunks = response.body[Symbol.asyncIterator]()
  const head: job.JobResponseHead.$Properties = { status: response.status, content_type: response.contentType, node_id: selfId, cid: response.cid }
  const batch = new FrameBatch(chunkBytes)
  if (response.error !== undefined) {
    drop(chunks)
    head.error_code = response.error.code
    head.error_message = clip(response.error.message)
    await batch.add({ response_head: head }).add({ end: {} }).flush(stream)
    return
  }
  let end: job.JobEnd.$Properties = {}
  try {
    batch.add({ response_head: head })
    if (streamed) await batch.flush(stream)
    for (;;) {
      let next: IteratorResult<Uint8Array>
      try {
        next = await chunks.next()
      } catch (err) {
        const error = failure(err)
        end = { error_code: error.code, error_message: clip(error.message) }
        break
      }
      if (next.done === true) break
      batch.addBody(next.value)
      if (streamed || batch.byteLength >= chunkBytes) await batch.flush(stream)
    }
  } catch (err) {
    // The stream failed (the requester went away): stop the model's answer.
    drop(chunks)
    throw err
  }
  await batch.add({ end }).flush(stream)
}

/** Half-closes after the answer; a requester still uploading gets a reset, as nothing reads its body. */
async function finish (stream: Stream): Promise<void> {
  await stream.close()
  if (stream.remoteWriteStatus === 'writable') stream.abort(new Error('the job was answered before its body ended'))
}

/** The request body as `execute` sees it: body_chunk bytes as they arrive, up to body_end (or the
 * requester's half-close on 1.0.0). Reads are served one at a time, so that drain() can take over from an
 * execute that stopped reading halfway. */
class RequestBody {
  /** why the body broke off, if it did */
  error?: AicnError
  private readonly reader: FrameReader
  private readonly limit: number
  private readonly idleMs: number
  private size = 0
  /** body_end seen: the stream can carry the next job */
  complete = false
  /** the stream ended (or failed) instead */
  private ended = false
  private reading: Promise<unknown> = Promise.resolve()

  constructor (reader: FrameReader, limit: number, idleMs: number) {
    this.reader = reader
    this.limit = limit
    this.idleMs = idleMs
  }

  /** The body for execute. When all of it is here already (a small job comes in one write, head, body
   * and body_end together) it is a WholeBody, which the model client sends in one write with its own
   * head; else its chunks as they arrive. A body found broken here sets `error`. */
  start (): AsyncIterable<Uint8Array> {
    const early: Uint8Array[] = []
    try {
      for (let frame = this.reader.poll(); frame !== undefined; frame = this.reader.poll()) {
        const chunk = this.accept(frame)
        if (chunk === null) return new WholeBody(early.length === 1 ? early[0] : Buffer.concat(early))
        if (chunk !== undefined) early.push(chunk)
      }
    } catch (err) {
      this.broke(err)
    }
    return this.chunks(early)
  }

  private async * chunks (early: Uint8Array[]): AsyncGenerator<Uint8Array> {
    if (this.error !== undefined) throw this.error
    yield * early
    try {
      for (let chunk = await this.read(); chunk !== null; chunk = await this.read()) yield chunk
    } catch (err) {
      throw this.broke(err)
    }
  }

  private broke (err: unknown): AicnError {
    this.error ??= isAicnError(err) ? err : new AicnError(ErrorCode.STREAM, `the request body broke off: ${(err as Error).message}`)
    return this.error
  }

  /** Reads and discards the rest of the body; true when it ended with body_end within the size limit. */
  async drain (): Promise<boolean> {
    try {
      while (await this.read() !== null);
      return this.complete
    } catch {
      return false
    }
  }

  private async read (): Promise<Uint8Array | null> {
    const next = this.reading.then(async () => await this.readFrame())
    this.reading = next.catch(() => {})
    return await next
  }

  private async readFrame (): Promise<Uint8Array | null> {
    if (this.error !== undefined) throw this.error
    for (;;) {
      if (this.complete || this.ended) return null
      let frame = this.reader.poll()
      if (frame === undefined) frame = await this.nextWithin()
      const chunk = this.accept(frame)
      if (chunk !== undefined) return chunk
    }
  }

  /** The next frame, which must come within idleMs: the clock runs only while the job waits for it. */
  private async nextWithin (): Promise<job.JobFrame | null> {
    const timer = setTimeout(() => {
      this.reader.fail(new FrameError(`the request body brought nothing new for ${this.idleMs} ms`))
    }, this.idleMs)
    try {
      return await this.reader.next()
    } finally {
      clearTimeout(timer)
    }
  }

  /** Takes one frame of the body: its bytes, null at the end, undefined for nothing (an empty chunk). */
  private accept (frame: job.JobFrame | null): Uint8Array | null | undefined {
    if (frame === null) {
      this.ended = true
      return null
    }
    if (frame.frame === 'body_end') {
      this.complete = true
      return null
    }
    if (frame.frame !== 'body_chunk') {
      const err = new FrameError(`unexpected ${frame.frame ?? 'empty'} frame in the request body`)
      this.reader.fail(err)
      throw err
    }
    const chunk = frame.body_chunk
    if (chunk == null || chunk.byteLength === 0) return undefined
    this.size += chunk.byteLength
    if (this.size > this.limit) {
      this.error = new AicnError(ErrorCode.BUFFER, `the request body exceeds ${this.limit} bytes`)
      throw this.error
    }
    return chunk
  }
}
