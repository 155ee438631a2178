// Exact billing for metered keys: reserve the request's worst case before any work, settle with what it
// really used, clamped to that worst case. A key's balance therefore never goes below zero, and concurrent
// requests can never spend more than it holds (src/gateway/keys.ts runs reservations per key, in order).
// Nothing the model reports is trusted beyond the reservation: usage is clamped to sane ranges, and when it
// is missing (a stream the client cut, a model that sends none) the cost comes from what was delivered.
import { AicnError, ErrorCode } from '../core/errors.ts'
import { JobKind, type JobKindValue } from '../core/job-types.ts'
import type { Price, PriceTable } from './pricing.ts'
import type { Usage } from './sse.ts'

/** Output tokens reserved when the client sets no max_tokens/max_completion_tokens: the largest context of
 * the models the network serves today (128k), so no answer can cost more than was reserved. */
export const DEFAULT_MAX_OUTPUT_TOKENS = 131_072
/** Largest max_tokens accepted. */
const MAX_OUTPUT_TOKENS = 1_000_000
/** A rough tokens-per-byte ratio for an estimate from text (about 4 bytes a token in English). */
const BYTES_PER_TOKEN = 4

export interface WorstCase { inputTokens: number, outputTokens: number, microUsd: number }

/** The most a request can cost: every byte of its input a token (no tokenizer does worse), and the output
 * cap it asked for. An output cap that is not an integer in 1…1,000,000 is refused with 400; null means no
 * cap, as in OpenAI's API (the default cap, never a free request; a JSON 1e400 parses to Infinity: 400). */
export function worstCase (prices: PriceTable, price: Price, kind: JobKindValue, body: Record<string, unknown> | undefined): WorstCase {
  const inputTokens = Buffer.byteLength(JSON.stringify(body?.messages ?? body?.prompt ?? body?.input ?? ''))
  const outputTokens = kind === JobKind.EMBEDDING || kind === JobKind.IMAGE_GEN || kind === JobKind.IMAGE_EDIT ? 0 : outputCap(body)
  return { inputTokens, outputTokens, microUsd: prices.costMicroUsd(price, inputTokens, outputTokens) }
}

function outputCap (body: Record<string, unknown> | undefined): number {
  let cap: number | undefined
  for (const field of ['max_tokens', 'max_completion_tokens']) {
    if (body === undefined || !(field in body)) continue
    const value = body[field]
    if (value === null) continue
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_OUTPUT_TOKENS) {
      throw new AicnError(ErrorCode.PARAM, `${field} must be an integer from 1 to ${MAX_OUTPUT_TOKENS}`)
    }
    cap = Math.min(cap ?? value, value)
  }
  return cap ?? DEFAULT_MAX_OUTPUT_TOKENS
}

export interface Settled { promptTokens: number, completionTokens: number, microUsd: number }

/** What was delivered when the model reported no usage: streamed events (about a token each), or the
 * bytes of a whole answer. */
export type Delivered = { events: number } | { bytes: number }

/** What a finished request is charged: the model's usage clamped to the worst case, or, when there is
 * none, an estimate from what was sent and delivered; never more than the worst case. */
export function settledCost (prices: PriceTable, price: Price, worst: WorstCase, usage: Usage | undefined, delivered: Delivered): Settled {
  const promptTokens = usage === undefined ? Math.ceil(worst.inputTokens / BYTES_PER_TOKEN) : clamp(usage.prompt_tokens, worst.inputTokens)
  const estimated = 'events' in delivered ? delivered.events : Math.ceil(delivered.bytes / BYTES_PER_TOKEN)
  const completionTokens = clamp(usage === undefined ? estimated : usage.completion_tokens, worst.outputTokens)
  return { promptTokens, completionTokens, microUsd: Math.min(prices.costMicroUsd(price, promptTokens, completionTokens), worst.microUsd) }
}

/** Tokens as a whole number from 0 to `max`: negative, fractional-looking or absurd counts cannot buy
 * anything free or cost more than reserved. */
function clamp (tokens: number, max: number): number {
  return Number.isFinite(tokens) && tokens > 0 ? Math.min(Math.ceil(tokens), max) : 0
}

/** Passes a server-sent event stream on and counts its `data:` events, each about one token: what a
 * stream delivered when no usage arrives (the client cut it, or the model sends none). */
export function countingEvents (source: AsyncIterable<Uint8Array>): { body: AsyncIterable<Uint8Array>, events: () => number } {
  let events = 0
  async function * pass (): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      const text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1')
      for (let at = text.indexOf('data:'); at >= 0; at = text.indexOf('data:', at + 5)) {
        if (at === 0 || text.charCodeAt(at - 1) === 10) events++
      }
      yield chunk
    }
  }
  return { body: pass(), events: () => events }
}
