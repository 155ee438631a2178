// Small helpers for answer bodies, which are async iterables of byte chunks.

/** Wraps an iterable so that `done` runs exactly once when iteration ends (completed = true), fails (with
 * the error) or is abandoned by its reader (neither) — including when return() is called before the first
 * next(), where a generator's finally never runs. */
export function finishing<T> (source: AsyncIterable<T>, done: (completed: boolean, error?: unknown) => void, mapError: (err: unknown) => unknown = (err) => err): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator] () {
      const inner = source[Symbol.asyncIterator]()
      let finished = false
      const finish = (completed: boolean, error?: unknown): void => {
        if (finished) return
        finished = true
        done(completed, error)
      }
      return {
        async next () {
          try {
            const result = await inner.next()
            if (result.done === true) finish(true)
            return result
          } catch (err) {
            finish(false, err ?? new Error('the answer failed'))
            throw mapError(err)
          }
        },
        async return (value?: unknown) {
          finish(false)
          // Not awaited: a pending next() of the source would make return() wait for it.
          inner.return?.(value).catch(() => {})
          return { done: true, value: value as T }
        }
      }
    }
  }
}

/** Reads a whole body, refusing to hold more than `limit` bytes. */
export async function collect (body: AsyncIterable<Uint8Array>, limit: number): Promise<Uint8Array | undefined> {
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.byteLength
    if (size > limit) return undefined
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/** Drains and discards a body so that its resources (busy counter, stream) are released. */
export async function discard (body: AsyncIterable<Uint8Array>): Promise<void> {
  const iterator = body[Symbol.asyncIterator]()
  await iterator.return?.()
}

/** A body whose bytes are all known in advance (a JSON request): it iterates like any body, and lets a
 * sender that can use them whole (the job protocol, to send head and body in one write) have them. */
export class WholeBody implements AsyncIterable<Uint8Array> {
  readonly bytes: Uint8Array

  constructor (bytes: Uint8Array) {
    this.bytes = bytes
  }

  async * [Symbol.asyncIterator] (): AsyncGenerator<Uint8Array> {
    yield this.bytes
  }
}

/** An answer read piece by piece from a peer's stream: once it ended or failed it stays done, and a reader
 * that stops early (return(), e.g. a client that went away) abandons it, so its stream is not reused. */
export abstract class StreamedAnswer implements AsyncIterableIterator<Uint8Array> {
  [Symbol.asyncIterator] (): this {
    return this
  }

  private done = false

  async next (): Promise<IteratorResult<Uint8Array>> {
    if (this.done) return DONE
    try {
      const value = await this.pull()
      if (value !== undefined) return { done: false, value }
      this.done = true
      return DONE
    } catch (err) {
      this.done = true
      throw err
    }
  }

  async return (): Promise<IteratorResult<Uint8Array>> {
    if (!this.done) {
      this.done = true
      this.abandon()
    }
    return DONE
  }

  /** The next non-empty piece; undefined once the answer ended well. Throws when it failed. */
  protected abstract pull (): Promise<Uint8Array | undefined>

  /** Gives the answer up (the reader stopped early). */
  protected abstract abandon (): void
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }

/** Lets go of an iterator we stop reading, without waiting for it. */
export function drop (iterator: AsyncIterator<unknown>): void {
  Promise.resolve(iterator.return?.()).catch(() => {})
}
