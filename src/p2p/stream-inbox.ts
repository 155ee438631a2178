// The receiving end of a libp2p stream, for readers that parse what arrives (job frames; HTTP/1.1 on the
// Go node's chat-proxy tunnel). It listens to the stream's events, remembers how the stream ended or
// failed, wakes the one reader waiting, and pauses the stream while more than `highWaterBytes` wait to be
// read, so that a slow consumer slows the sender down instead of filling our memory.
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Yamux lets a peer send up to its receive window (at most 16 MiB) after we paused; the stream's
 * default 4 MiB read buffer would reset a paused stream before that. */
const PAUSED_READ_BUFFER_BYTES = 16 * 1024 * 1024 + 256 * 1024

/** Where an inbox reports the bytes it holds (a peer's budget, src/p2p/peer-budget.ts): an Error
 * when that is too much, and the stream is then failed with it. */
export interface HeldBytes {
  hold: (bytes: number) => Error | undefined
}

export abstract class StreamInbox {
  protected readonly stream: Stream
  protected readonly highWater: number
  /** the peer closed its side, or the stream closed */
  protected ended = false
  /** why the stream failed (reset, aborted, bad input); reads throw it */
  protected failure?: Error
  private wake?: () => void
  private readonly budget?: HeldBytes

  constructor (stream: Stream, highWaterBytes: number, budget?: HeldBytes) {
    this.stream = stream
    this.highWater = highWaterBytes
    this.budget = budget
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, PAUSED_READ_BUFFER_BYTES)
    // The stream delivers what it already holds in a microtask, after the subclass is constructed.
    stream.addEventListener('message', this.onMessage)
    stream.addEventListener('end', this.onEnd)
    stream.addEventListener('close', this.onClose)
    if (stream.readableEnded || stream.status !== 'open') this.ended = true
  }

  /** Aborts the stream (bad input, or the exchange ends from this side); pending and later reads throw `err`. */
  fail (err: Error): void {
    this.failure ??= err
    this.stream.abort(err)
    this.notify()
  }

  /** Stops listening and forgets what is held; call once the stream is no longer read. */
  dispose (): void {
    this.stream.removeEventListener('message', this.onMessage)
    this.stream.removeEventListener('end', this.onEnd)
    this.stream.removeEventListener('close', this.onClose)
    this.forget()
    this.budget?.hold(0)
  }

  /** Keeps what one 'message' event brought; a throw (bad input) fails the stream. */
  protected abstract receive (data: Uint8Array | Uint8ArrayList): void

  /** Bytes received that the consumer has not taken yet, as the high-water mark counts them. */
  protected abstract get waitingBytes (): number

  /** Drops everything held (dispose). */
  protected abstract forget (): void

  /** Every byte received and not yet taken by the consumer, unfinished pieces included: what the budget
   * counts. */
  protected get heldBytes (): number {
    return this.waitingBytes
  }

  /** Waits for the next event on the stream: bytes, its end or its failure. The consumer wants bytes, so
   * a paused stream is resumed first, whatever the high-water mark says. */
  protected async waitForMore (): Promise<void> {
    if (this.stream.readStatus === 'paused') this.stream.resume()
    await new Promise<void>((resolve) => { this.wake = resolve })
  }

  /** Call after the consumer took bytes: below half the high-water mark, a paused stream reads again. */
  protected consumed (): void {
    this.budget?.hold(this.heldBytes)
    if (this.waitingBytes <= this.highWater / 2 && this.stream.readStatus === 'paused') this.stream.resume()
  }

  private readonly onMessage = (evt: StreamMessageEvent): void => {
    if (this.failure !== undefined) return
    try {
      this.receive(evt.data)
    } catch (err) {
      this.fail(err as Error)
      return
    }
    const over = this.budget?.hold(this.heldBytes)
    if (over !== undefined) {
      this.fail(over)
      return
    }
    if (this.waitingBytes > this.highWater && this.stream.readStatus === 'readable') this.stream.pause()
    this.notify()
  }

  // 'end' comes before the 'close' of a reset or abort in the same call, so a woken reader already sees
  // the failure.
  private readonly onEnd = (): void => {
    this.ended = true
    this.notify()
  }

  private readonly onClose = (evt: StreamCloseEvent): void => {
    if (evt.error !== undefined) this.failure ??= evt.error
    this.ended = true
    this.notify()
  }

  private notify (): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}
