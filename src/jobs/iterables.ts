// Small helpers for answer bodies, which are async iterables of byte chunks.

/** Wraps an iterable so that `done` runs exactly once when iteration ends (completed = true), fails or is
 * abandoned — including when return() is called before the first next(), where a generator's finally
 * never runs. */
export function finishing<T> (source: AsyncIterable<T>, done: (completed: boolean) => void, mapError: (err: unknown) => unknown = (err) => err): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator] () {
      const inner = source[Symbol.asyncIterator]()
      let finished = false
      const finish = (completed: boolean): void => {
        if (finished) return
        finished = true
        done(completed)
      }
      return {
        async next () {
          try {
            const result = await inner.next()
            if (result.done === true) finish(true)
            return result
          } catch (err) {
            finish(false)
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

/** Lets go of an iterator we stop reading, without waiting for it. */
export function drop (iterator: AsyncIterator<unknown>): void {
  Promise.resolve(iterator.return?.()).catch(() => {})
}
