// Calls the model servers registered on this node: one keep-alive connection pool (undici), bodies
// streamed both ways and never buffered, transport failures mapped to the API's model-error code.
//
// It uses undici's dispatch() with a handler of its own rather than request(): request() wraps every
// answer in a Node Readable, parses every response header and registers an async resource, which
// together cost about as much as the rest of a small job's work on the worker. Here the answer is a
// small async iterable with the same backpressure (undici pauses the socket while too much is unread).
import { Agent, buildConnector, errors as undiciErrors, type Dispatcher } from 'undici'
import { AicnError, ErrorCode } from '../core/errors.ts'
import { WholeBody } from '../core/iterables.ts'
import { pinnedLookup, type ModelTargets } from './model-target.ts'

export interface ModelCall {
  url: string
  contentType: string
  body: AsyncIterable<Uint8Array> | Uint8Array
  /** the job's: aborting it cancels the call, also halfway through the answer */
  signal: AbortSignal
  /** the whole call, answer included, must end within this */
  timeoutMs: number
}

export interface ModelAnswer {
  status: number
  contentType: string
  body: AsyncIterable<Uint8Array>
}

/** Unread answer bytes above which the connection is paused, and below which it resumes. */
const HIGH_WATER_BYTES = 256 * 1024
const LOW_WATER_BYTES = 64 * 1024
/** Parsed model URLs kept; a node serves a handful of models. */
const MAX_TARGETS = 256
const CONNECT_TIMEOUT_MS = 10_000

interface Target { origin: string, path: string }

export class ModelClient {
  private readonly agent: Agent
  private readonly targets = new Map<string, Target>()

  /** `targets`: the rules of src/models/model-target.ts, applied to every new connection (the node
   * always passes them; tests of the client alone may leave them out). */
  constructor (options: { connectionsPerOrigin?: number, targets?: ModelTargets } = {}) {
    this.agent = new Agent({
      connections: options.connectionsPerOrigin ?? 128,
      keepAliveTimeout: 30_000,
      // A model may think for minutes between two tokens; the job's deadline bounds the whole call instead.
      bodyTimeout: 0,
      connect: options.targets === undefined ? { timeout: CONNECT_TIMEOUT_MS } : checkedConnector(options.targets)
    })
  }

  async call (call: ModelCall): Promise<ModelAnswer> {
    const target = this.target(call.url)
    return await new Promise<ModelAnswer>((resolve, reject) => {
      const exchange = new ModelExchange(call, target.origin, resolve, reject)
      if (exchange.settled) return
      try {
        this.agent.dispatch({
          origin: target.origin,
          path: target.path,
          method: 'POST',
          headers: { 'content-type': call.contentType, accept: 'application/json, text/event-stream' },
          // undici sends async iterables as they come (its types leave them out of dispatch()'s options)
          body: bodyOf(call.body) as Dispatcher.DispatchOptions['body'],
          headersTimeout: call.timeoutMs,
          bodyTimeout: 0
        }, exchange)
      } catch (err) {
        exchange.onError(err as Error)
      }
    })
  }

  async close (): Promise<void> {
    await this.agent.close()
  }

  private target (url: string): Target {
    let target = this.targets.get(url)
    if (target !== undefined) return target
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new AicnError(ErrorCode.MODEL, `model server address "${url}" is not a URL`, { status: 502 })
    }
    target = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` }
    if (this.targets.size >= MAX_TARGETS) this.targets.clear()
    this.targets.set(url, target)
    return target
  }
}

/** Opens connections only to addresses the model-target rules allow, checked now rather than when the
 * model was registered: a host name may resolve elsewhere today (DNS rebinding), and the node's listeners
 * may have changed. The socket goes to exactly the checked addresses (a pinned lookup), so DNS is not
 * asked a second time. */
function checkedConnector (targets: ModelTargets): buildConnector.connector {
  return (options, callback) => {
    const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80)
    targets.addresses(options.hostname, port).then((addresses) => {
      buildConnector({ timeout: CONNECT_TIMEOUT_MS, lookup: pinnedLookup(addresses) })(options, callback)
    }, (err: Error) => {
      callback(new AicnError(ErrorCode.MODEL, `refused to call the model: ${err.message}`, { status: 502 }), null)
    })
  }
}

/** Bytes known in advance leave with the request head in one write; a stream goes out as it arrives. */
function bodyOf (body: ModelCall['body']): Uint8Array | AsyncIterable<Uint8Array> {
  if (body instanceof WholeBody) return body.bytes
  return body
}

/** One call to a model: undici's handler. Resolves at the response head; the answer then streams
 * through `AnswerBody`. Ends exactly once: completed, failed, aborted by the job or past its time. */
class ModelExchange implements Dispatcher.DispatchHandlers {
  settled = false
  private readonly origin: string
  private readonly signal: AbortSignal
  private readonly resolve: (answer: ModelAnswer) => void
  private readonly reject: (err: unknown) => void
  private readonly timer: NodeJS.Timeout
  private abortCall?: (err: Error) => void
  private body?: AnswerBody
  /** why the call was ended from this side, if it was */
  private reason?: Error

  constructor (call: ModelCall, origin: string, resolve: (answer: ModelAnswer) => void, reject: (err: unknown) => void) {
    this.origin = origin
    this.signal = call.signal
    this.resolve = resolve
    this.reject = reject
    this.timer = setTimeout(() => { this.stop(this.timeoutError()) }, call.timeoutMs)
    if (call.signal.aborted) this.onAbort()
    else call.signal.addEventListener('abort', this.onAbort, { once: true })
  }

  onConnect (abort: (err?: Error) => void): void {
    this.abortCall = abort
    if (this.reason !== undefined) abort(this.reason)
  }

  onHeaders (status: number, rawHeaders: Buffer[] | string[] | null, resume: () => void): boolean {
    if (status < 200) return true // 100 Continue and other interim answers
    this.body = new AnswerBody(resume, (err) => { this.stop(err) })
    this.settled = true
    this.resolve({ status, contentType: header(rawHeaders, 'content-type'), body: this.body })
    return true
  }

  onData (chunk: Buffer): boolean {
    return this.body?.push(chunk) ?? true
  }

  onComplete (): void {
    this.finish()
    this.body?.end()
  }

  onError (err: Error): void {
    this.finish()
    const error = this.reason ?? err
    if (this.body !== undefined) {
      this.body.fail(error)
    } else if (!this.settled) {
      this.settled = true
      this.reject(modelCallError(error, this.origin, this.signal))
    }
  }

  onUpgrade (): void {
    this.onError(new Error('the model server switched protocols'))
  }

  /** Ends the call from this side (the job was cancelled, its time ran out, or the answer was abandoned). */
  private stop (reason: Error): void {
    if (this.reason !== undefined) return
    this.reason = reason
    if (this.abortCall !== undefined) this.abortCall(reason)
    else this.onError(reason) // not dispatched yet, or no connection yet: undici calls onError later too, which is harmless
  }

  private finish (): void {
    clearTimeout(this.timer)
    this.signal.removeEventListener('abort', this.onAbort)
  }

  private readonly onAbort = (): void => {
    const reason: unknown = this.signal.reason
    this.stop(reason instanceof Error ? reason : new Error('cancelled'))
  }

  private timeoutError (): AicnError {
    return this.body === undefined
      ? new AicnError(ErrorCode.TIMEOUT, `model server at ${this.origin} did not answer in time`)
      : new AicnError(ErrorCode.TIMEOUT, 'the model did not finish before the job\'s deadline')
  }
}

/** A model's answer as it arrives. Unread chunks wait here; past HIGH_WATER_BYTES undici stops reading
 * the socket until the reader catches up. Leaving early (return()) ends the call. */
class AnswerBody implements AsyncIterableIterator<Uint8Array> {
  private readonly chunks: Buffer[] = []
  private queued = 0
  private paused = false
  private ended = false
  private error?: Error
  private wake?: () => void
  private readonly resume: () => void
  private readonly abandon: (err: Error) => void

  constructor (resume: () => void, abandon: (err: Error) => void) {
    this.resume = resume
    this.abandon = abandon
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  async next (): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      const chunk = this.chunks.shift()
      if (chunk !== undefined) {
        this.queued -= chunk.byteLength
        if (this.paused && this.queued <= LOW_WATER_BYTES) {
          this.paused = false
          this.resume()
        }
        return { done: false, value: chunk }
      }
      if (this.error !== undefined) throw this.error
      if (this.ended) return { done: true, value: undefined }
      await new Promise<void>((resolve) => { this.wake = resolve })
    }
  }

  async return (): Promise<IteratorResult<Uint8Array>> {
    if (!this.ended && this.error === undefined) {
      this.error = new Error('the answer was abandoned')
      this.abandon(this.error)
    }
    this.chunks.length = 0
    this.queued = 0
    return { done: true, value: undefined }
  }

  /** false: stop reading the socket until resume() */
  push (chunk: Buffer): boolean {
    if (this.error !== undefined) return true
    this.chunks.push(chunk)
    this.queued += chunk.byteLength
    this.notify()
    if (this.queued >= HIGH_WATER_BYTES) this.paused = true
    return !this.paused
  }

  end (): void {
    this.ended = true
    this.notify()
  }

  fail (err: Error): void {
    this.error ??= err
    this.notify()
  }

  private notify (): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}

/** A response header's value from undici's raw list (name, value, name, value…); '' when absent. */
function header (raw: Buffer[] | string[] | null, name: string): string {
  if (raw === null) return ''
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i].toString('latin1')
    if (key.length === name.length && key.toLowerCase() === name) return raw[i + 1].toString('latin1')
  }
  return ''
}

function modelCallError (err: unknown, origin: string, signal: AbortSignal): AicnError {
  if (err instanceof AicnError) return err
  if (signal.aborted) {
    const reason: unknown = signal.reason
    if (reason instanceof AicnError) return reason
    if (reason instanceof Error && reason.name === 'TimeoutError') return new AicnError(ErrorCode.TIMEOUT, `model server at ${origin} did not answer in time`)
    return new AicnError(ErrorCode.STREAM, 'cancelled')
  }
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.ConnectTimeoutError) {
    return new AicnError(ErrorCode.TIMEOUT, `model server at ${origin} did not answer in time`)
  }
  const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code
  const detail = code ?? (err as Error).message
  return new AicnError(ErrorCode.MODEL, `model server at ${origin} is unreachable: ${detail}`, { status: 502 })
}
