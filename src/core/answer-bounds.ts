// The bounds every model answer is read with, where the model runs (src/jobs/local.ts) and again where a
// peer's answer arrives (src/protocols/job/job-requester.ts, src/compat/chat-proxy/chat-proxy.ts), since a worker may be
// hostile too (issue 19): a streamed answer may not send one event longer than MAX_EVENT_BYTES, any
// other answer no more than its kind's MAX_ANSWER_BYTES_BY_KIND. Either is cut with a MODEL error, which
// reaches the client as an error (an SSE error event once streaming).
import { AicnError, ErrorCode } from './errors.ts'
import { MAX_ANSWER_BYTES_BY_KIND, isEventStream } from './answer.ts'
import { boundEvents, watchEvents } from './sse-events.ts'
import type { JobKindValue } from './job-types.ts'

/** `wholeEvents`: where the model runs, a streamed answer leaves in whole events, so that none of an
 * oversized event is passed on and the client's error event is clean; a relayed answer passes as it
 * comes (the worker already cut it), only counted. */
export function boundAnswer (body: AsyncIterable<Uint8Array>, contentType: string, kind: JobKindValue, wholeEvents = false): AsyncIterable<Uint8Array> {
  if (isEventStream(contentType)) return wholeEvents ? boundEvents(body) : watchEvents(body)
  return limitBytes(body, MAX_ANSWER_BYTES_BY_KIND[kind] ?? MAX_ANSWER_BYTES_BY_KIND[0])
}

/** Passes the bytes on, failing once more than `limit` went through; return() reaches the source even
 * before the first next(). */
export function limitBytes (source: AsyncIterable<Uint8Array>, limit: number): AsyncIterableIterator<Uint8Array> {
  const inner = source[Symbol.asyncIterator]()
  let size = 0
  const limited: AsyncIterableIterator<Uint8Array> = {
    [Symbol.asyncIterator]: () => limited,
    async next () {
      const result = await inner.next()
      if (result.done !== true) {
        size += result.value.byteLength
        if (size > limit) {
          inner.return?.().catch(() => {})
          throw new AicnError(ErrorCode.MODEL, `the model's answer is larger than ${limit} bytes`, { status: 502 })
        }
      }
      return result
    },
    async return (value?: unknown) {
      inner.return?.(value).catch(() => {})
      return { done: true, value: undefined }
    }
  }
  return limited
}
