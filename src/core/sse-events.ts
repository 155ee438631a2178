// Server-sent events from a model, read with a bound on each event. A model (or a worker) that never sends
// the blank line that ends an event once made the gateway collect 20 MB into one string and search it
// again for every chunk that arrived: the event loop stalled for seconds and the process grew past
// 800 MB (issue 19). Here events are found by scanning each byte once (native indexOf between line
// feeds), and an event longer than the limit ends the stream with an AicnError the HTTP side turns into
// an SSE error event. Used by the gateway's usage tap (src/gateway/sse.ts) and on the worker for every
// streamed answer of a local model (src/jobs/local.ts).
import { AicnError, ErrorCode } from './errors.ts'

/** Longest server-sent event we pass on (a token event is a few hundred bytes). */
export const MAX_EVENT_BYTES = 1024 * 1024

const LF = 0x0a
const CR = 0x0d

export function eventTooLarge (limit: number): AicnError {
  return new AicnError(ErrorCode.MODEL, `the model sent a server-sent event longer than ${limit} bytes`, { status: 502 })
}

/** Finds where events end, chunk after chunk. An event ends at a blank line: LF, an optional CR, LF
 * (so "\n\n" and "\r\n\r\n"), as the gateway has always split them. */
export class EventScanner {
  readonly maxEventBytes: number
  /** 0: inside a line; 1: just after LF; 2: after LF CR */
  private state = 0
  /** bytes of the event not yet ended */
  private current = 0

  constructor (maxEventBytes = MAX_EVENT_BYTES) {
    this.maxEventBytes = maxEventBytes
  }

  /** Bytes of the unfinished event so far. */
  get pendingBytes (): number {
    return this.current
  }

  /** The offsets in `chunk` just after each event that ends in it; throws when an event grows past the
   * limit (then the stream is over). */
  ends (chunk: Uint8Array): number[] {
    const out: number[] = []
    let last = 0
    let i = 0
    while (i < chunk.byteLength) {
      if (this.state === 0) {
        const lf = chunk.indexOf(LF, i)
        if (lf === -1) break
        this.state = 1
        i = lf + 1
        continue
      }
      const byte = chunk[i]
      if (this.state === 1 && byte === CR) {
        this.state = 2
        i++
        continue
      }
      this.state = 0
      if (byte !== LF) continue
      i++
      const length = this.current + i - last
      if (length > this.maxEventBytes) throw eventTooLarge(this.maxEventBytes)
      out.push(i)
      this.current = 0
      last = i
    }
    this.current += chunk.byteLength - last
    if (this.current > this.maxEventBytes) throw eventTooLarge(this.maxEventBytes)
    return out
  }
}

/** Cuts a byte stream into whole events (each with its blank line); the rest at the end comes last. */
export async function * splitEvents (source: AsyncIterable<Uint8Array>, maxEventBytes = MAX_EVENT_BYTES): AsyncGenerator<Uint8Array[]> {
  const scanner = new EventScanner(maxEventBytes)
  let parts: Uint8Array[] = []
  for await (const chunk of source) {
    const ends = scanner.ends(chunk)
    if (ends.length === 0) {
      if (chunk.byteLength > 0) parts.push(chunk)
      continue
    }
    const events: Uint8Array[] = []
    let from = 0
    for (const end of ends) {
      parts.push(chunk.subarray(from, end))
      events.push(parts.length === 1 ? parts[0] : Buffer.concat(parts))
      parts = []
      from = end
    }
    if (from < chunk.byteLength) parts.push(chunk.subarray(from))
    yield events
  }
  if (parts.length > 0) yield [join(parts)]
}

/** Passes a stream on in whole events: each chunk's complete events leave at once, the start of an
 * unfinished one waits for its end (at most the limit). An event that grows past the limit fails the
 * stream, and since none of it was passed on, the client's error event that follows is a clean one.
 * Not a generator: return() must reach the source even before the first next() (the model call is
 * cancelled then). */
export function boundEvents (source: AsyncIterable<Uint8Array>, maxEventBytes = MAX_EVENT_BYTES): AsyncIterableIterator<Uint8Array> {
  const scanner = new EventScanner(maxEventBytes)
  const inner = source[Symbol.asyncIterator]()
  let held: Uint8Array[] = []
  let done = false
  const bounded: AsyncIterableIterator<Uint8Array> = {
    [Symbol.asyncIterator]: () => bounded,
    async next () {
      while (!done) {
        const result = await inner.next()
        if (result.done === true) {
          done = true
          // What followed the last blank line: passed on as it is, as the gateway always did.
          if (held.length > 0) return { done: false, value: join(held) }
          break
        }
        const chunk = result.value
        let ends: number[]
        try {
          ends = scanner.ends(chunk)
        } catch (err) {
          done = true
          held = []
          // The rest of the answer is not wanted: let the source go (the model call ends).
          inner.return?.().catch(() => {})
          throw err
        }
        if (ends.length === 0) {
          if (chunk.byteLength > 0) held.push(chunk)
          continue
        }
        const last = ends[ends.length - 1]
        held.push(last === chunk.byteLength ? chunk : chunk.subarray(0, last))
        const value = join(held)
        held = last < chunk.byteLength ? [chunk.subarray(last)] : []
        return { done: false, value }
      }
      return { done: true, value: undefined }
    },
    async return (value?: unknown) {
      done = true
      held = []
      inner.return?.(value).catch(() => {})
      return { done: true, value: undefined }
    }
  }
  return bounded
}

/** Passes a stream through as it comes (chunk by chunk, unfinished events too), failing it when one
 * event grows past the limit: for answers relayed from a peer, which the worker already cut into events.
 * return() reaches the source even before the first next(). */
export function watchEvents (source: AsyncIterable<Uint8Array>, maxEventBytes = MAX_EVENT_BYTES): AsyncIterableIterator<Uint8Array> {
  const scanner = new EventScanner(maxEventBytes)
  const inner = source[Symbol.asyncIterator]()
  const watched: AsyncIterableIterator<Uint8Array> = {
    [Symbol.asyncIterator]: () => watched,
    async next () {
      const result = await inner.next()
      if (result.done !== true) {
        try {
          scanner.ends(result.value)
        } catch (err) {
          inner.return?.().catch(() => {})
          throw err
        }
      }
      return result
    },
    async return (value?: unknown) {
      inner.return?.(value).catch(() => {})
      return { done: true, value: undefined }
    }
  }
  return watched
}

function join (parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts)
}
