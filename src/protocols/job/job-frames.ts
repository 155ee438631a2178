// Framing of the job protocol (proto/job.proto): every JobFrame travels as a varint length prefix and its
// protobuf bytes. Reading keeps flow control: the stream is paused while decoded frames wait for their
// consumer, so a slow model server slows the uploader down instead of filling our memory. Writing waits
// for the stream to drain.
import { Uint8ArrayList } from 'uint8arraylist'
import type { Stream } from '@libp2p/interface'
import { job } from '../../proto/index.ts'
import { StreamInbox, type HeldBytes } from '../../p2p/stream-inbox.ts'
import { write } from '../../p2p/stream-write.ts'
import { badJobNames, badToken } from '../../core/identifiers.ts'
import { jobDeadline } from '../../core/deadlines.ts'
import { JobKind, MAX_JOB_MS, type JobHead, type JobKindValue } from '../../core/job-types.ts'

export { MAX_JOB_MS }

/** A frame the peer should not have sent (garbage, too large, out of order); the stream is aborted. */
export class FrameError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'FrameError'
  }
}

// ---- writing

/** A whole frame with its length prefix, for heads and `end`. */
export function encodeFrame (frame: job.JobFrame.$Properties): Uint8Array {
  return job.JobFrame.encodeDelimited(frame).finish()
}

/** The bytes before a body chunk: frame length, the tag of `body_chunk` (field 2, length-delimited), chunk
 * length. Together with the chunk they are exactly what encodeFrame({ body_chunk }) gives. */
function bodyFrameHeader (chunkLength: number): Uint8Array {
  const frameLength = 1 + varintLength(chunkLength) + chunkLength
  const header = new Uint8Array(varintLength(frameLength) + 1 + varintLength(chunkLength))
  let offset = writeVarint(header, 0, frameLength)
  header[offset++] = 0x12
  writeVarint(header, offset, chunkLength)
  return header
}

/** A body_chunk frame that references the chunk instead of copying it into a protobuf buffer. */
export function encodeBodyFrame (chunk: Uint8Array): Uint8ArrayList {
  return new Uint8ArrayList(bodyFrameHeader(chunk.byteLength), chunk)
}

/** Frames collected to leave in one write: every libp2p write costs a yamux frame, a noise seal and a
 * syscall on this side and a window update back, which for small jobs is most of their cost. */
export class FrameBatch {
  private readonly parts = new Uint8ArrayList()
  private readonly chunkBytes: number

  constructor (chunkBytes: number) {
    this.chunkBytes = chunkBytes
  }

  get byteLength (): number {
    return this.parts.byteLength
  }

  add (frame: job.JobFrame.$Properties): this {
    this.parts.append(encodeFrame(frame))
    return this
  }

  /** Adds a body in body_chunk frames of at most chunkBytes. */
  addBody (bytes: Uint8Array): this {
    for (let offset = 0; offset < bytes.byteLength; offset += this.chunkBytes) {
      this.parts.append(encodeBodyFrame(bytes.subarray(offset, offset + this.chunkBytes)))
    }
    return this
  }

  /** Sends what was collected (waiting for the stream to drain if needed) and starts a new batch. */
  async flush (stream: Stream): Promise<void> {
    if (this.parts.byteLength === 0) return
    const data = new Uint8ArrayList(...this.parts)
    this.parts.consume(this.parts.byteLength)
    await write(stream, data)
  }
}

function varintLength (value: number): number {
  let length = 1
  while (value >= 0x80) { value = Math.floor(value / 0x80); length++ }
  return length
}

function writeVarint (target: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    target[offset++] = (value & 0x7f) | 0x80
    value = Math.floor(value / 0x80)
  }
  target[offset++] = value
  return offset
}

// ---- reading

export interface FrameReaderOptions {
  /** a longer frame is a protocol error */
  maxFrameBytes: number
  /** the stream is paused while more than this many bytes of decoded frames wait to be read */
  highWaterBytes: number
  /** a frame whose first bytes arrived must be complete within this (unless we paused the stream);
   * unset: no limit. A peer cannot park megabytes in unfinished frames (docs/protocols.md, "Budgets"). */
  frameMs?: number
}

/** Reads JobFrames from a stream, one at a time, in order. Frames without a known case are skipped. */
export class FrameReader extends StreamInbox {
  private readonly maxFrameBytes: number
  private readonly maxPrefixBytes: number
  /** received bytes not yet cut into frames */
  private readonly pending: Uint8Array[] = []
  private pendingBytes = 0
  /** whole frames waiting for next() */
  private readonly frames: Uint8Array[] = []
  private queuedBytes = 0
  private readonly frameMs?: number
  /** runs while a frame is unfinished (frameMs) */
  private frameTimer?: NodeJS.Timeout

  constructor (stream: Stream, options: FrameReaderOptions, budget?: HeldBytes) {
    super(stream, options.highWaterBytes, budget)
    this.maxFrameBytes = options.maxFrameBytes
    this.maxPrefixBytes = varintLength(options.maxFrameBytes)
    this.frameMs = options.frameMs
  }

  /** The next frame; null when the peer closed its side; throws when the stream failed. */
  async next (): Promise<job.JobFrame | null> {
    for (;;) {
      const frame = this.poll()
      if (frame !== undefined) return frame
      await this.waitForMore()
    }
  }

  /** What next() would give without waiting: a frame, null or a throw; undefined when it would wait. */
  poll (): job.JobFrame | null | undefined {
    for (;;) {
      const bytes = this.frames.shift()
      if (bytes === undefined) break
      this.queuedBytes -= bytes.byteLength
      this.consumed()
      const frame = this.decode(bytes)
      if (frame.frame !== undefined) return frame
    }
    if (this.failure !== undefined) throw this.failure
    if (this.ended) return null
    return undefined
  }

  /** Nothing received and nothing wrong: the stream can carry another job. */
  isIdle (): boolean {
    return this.frames.length === 0 && this.pendingBytes === 0 && this.failure === undefined && !this.ended &&
      this.stream.status === 'open' && this.stream.writeStatus === 'writable'
  }

  protected receive (data: Uint8Array | Uint8ArrayList): void {
    const unfinished = this.pendingBytes > 0
    if (data instanceof Uint8Array) this.append(data)
    else for (const buf of data) this.append(buf)
    this.cut()
    // A new unfinished frame starts its clock; one that stays unfinished keeps the clock it had.
    if (this.frameMs !== undefined && this.pendingBytes > 0 && !unfinished) this.startFrameClock(this.frameMs)
  }

  protected get waitingBytes (): number {
    return this.queuedBytes
  }

  protected override get heldBytes (): number {
    return this.queuedBytes + this.pendingBytes
  }

  protected forget (): void {
    this.frames.length = 0
    this.pending.length = 0
    this.queuedBytes = 0
    this.pendingBytes = 0
    clearTimeout(this.frameTimer)
  }

  private startFrameClock (ms: number): void {
    if (this.frameTimer !== undefined) {
      this.frameTimer.refresh()
      return
    }
    this.frameTimer = setTimeout(() => {
      if (this.pendingBytes === 0 || this.failure !== undefined) return
      // While we hold the stream back, the rest of the frame cannot come: not the peer's fault.
      if (this.stream.readStatus === 'paused') {
        this.frameTimer?.refresh()
        return
      }
      this.fail(new FrameError(`a frame stayed unfinished for ${ms} ms (${this.pendingBytes} bytes)`))
    }, ms)
    this.frameTimer.unref()
  }

  private decode (bytes: Uint8Array): job.JobFrame {
    try {
      return job.JobFrame.decode(bytes)
    } catch (err) {
      const error = new FrameError(`undecodable frame: ${(err as Error).message}`)
      this.fail(error)
      throw error
    }
  }

  private append (buf: Uint8Array): void {
    if (buf.byteLength === 0) return
    this.pending.push(buf)
    this.pendingBytes += buf.byteLength
  }

  /** Moves every complete frame from `pending` to `frames`. */
  private cut (): void {
    while (this.pendingBytes > 0) {
      let length = 0
      let prefix = 0
      for (;;) {
        if (prefix === this.maxPrefixBytes) throw new FrameError('frame length prefix too long')
        if (prefix === this.pendingBytes) return
        const byte = this.byteAt(prefix)
        length += (byte & 0x7f) * 2 ** (7 * prefix)
        prefix++
        if (byte < 0x80) break
      }
      if (length > this.maxFrameBytes) throw new FrameError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`)
      if (this.pendingBytes < prefix + length) return
      this.take(prefix)
      const frame = this.take(length)
      // An empty frame is a JobFrame with no case set: nothing to read.
      if (length > 0) {
        this.frames.push(frame)
        this.queuedBytes += length
      }
    }
  }

  private byteAt (index: number): number {
    for (const buf of this.pending) {
      if (index < buf.byteLength) return buf[index]
      index -= buf.byteLength
    }
    throw new RangeError('index out of range')
  }

  /** Removes `length` bytes from the front of `pending`; a view when they lie in one buffer, else a copy. */
  private take (length: number): Uint8Array {
    this.pendingBytes -= length
    const first = this.pending[0]
    if (length === 0) return EMPTY
    if (first.byteLength >= length) {
      if (first.byteLength === length) this.pending.shift()
      else this.pending[0] = first.subarray(length)
      return first.subarray(0, length)
    }
    const out = Buffer.allocUnsafe(length)
    let filled = 0
    while (filled < length) {
      const buf = this.pending[0]
      const n = Math.min(buf.byteLength, length - filled)
      out.set(n === buf.byteLength ? buf : buf.subarray(0, n), filled)
      filled += n
      if (n === buf.byteLength) this.pending.shift()
      else this.pending[0] = buf.subarray(n)
    }
    return out
  }
}

const EMPTY = new Uint8Array(0)

// ---- heads

const KINDS = new Set<number>(Object.values(JobKind))

/** JobHead carries no API path yet; a head that has one (`path`) sends it along. */
type HeadWithPath = JobHead & { path?: string }

export function requestHeadFrame (head: HeadWithPath): job.JobFrame.$Properties {
  return {
    request_head: {
      request_id: head.requestId,
      project: head.project,
      model: head.model,
      cid: head.cid,
      kind: head.kind,
      content_type: head.contentType,
      stream: head.stream,
      deadline_unix_ms: head.deadline,
      path: head.path ?? ''
    }
  }
}

/** Checks a received request head; throws a message for the requester when it is unusable. */
export function parseRequestHead (head: job.JobRequestHead.$Properties): HeadWithPath {
  const missing = (['request_id', 'project', 'model'] as const).filter((key) => (head[key] ?? '') === '')
  if (missing.length > 0) throw new Error(`the job head lacks ${missing.join(', ')}`)
  const kind = head.kind ?? 0
  if (!KINDS.has(kind)) throw new Error(`unknown job kind ${kind}`)
  const parsed: HeadWithPath = {
    requestId: head.request_id ?? '',
    project: head.project ?? '',
    model: head.model ?? '',
    cid: head.cid ?? '',
    kind: kind as JobKindValue,
    contentType: head.content_type ?? '',
    stream: head.stream ?? false,
    deadline: jobDeadline(Number(head.deadline_unix_ms ?? 0), kind as JobKindValue)
  }
  const bad = badJobNames(parsed) ?? badToken('path', head.path ?? '')
  if (bad !== undefined) throw new Error(`the job head is invalid: ${bad}`)
  if ((head.path ?? '') !== '') parsed.path = head.path ?? ''
  return parsed
}
