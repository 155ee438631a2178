// Watches an OpenAI-style server-sent event stream on its way to the client: remembers the `usage` the
// model reports (in the last chunk) for metering, and can drop the usage-only chunk when it was the
// gateway, not the client, that asked for it. Events are passed on whole, each as soon as it is complete.
import { splitEvents } from '../core/sse-events.ts'

export interface Usage { prompt_tokens: number, completion_tokens: number }

export interface UsageTap {
  body: AsyncIterable<Uint8Array>
  /** the usage the stream reported, once it has been read to its end */
  usage: () => Usage | undefined
}

const USAGE = Buffer.from('"usage"')

export function tapUsage (source: AsyncIterable<Uint8Array>, options: { dropUsageChunk: boolean }): UsageTap {
  let usage: Usage | undefined

  /** Whether to pass the event on (false: drop it). Only an event that mentions "usage" is decoded and
   * parsed, and none is longer than MAX_EVENT_BYTES (src/core/sse-events.ts). */
  const keep = (event: Uint8Array): boolean => {
    const bytes = Buffer.isBuffer(event) ? event : Buffer.from(event.buffer, event.byteOffset, event.byteLength)
    if (bytes.indexOf(USAGE) === -1) return true
    const data = bytes.toString('utf8').split(/\r?\n/).filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trim()).join('\n')
    if (data === '' || data === '[DONE]') return true
    let parsed: { usage?: unknown, choices?: unknown[] }
    try { parsed = JSON.parse(data) } catch { return true }
    const found = readUsage(parsed?.usage)
    if (found === undefined) return true
    usage = found
    const usageOnly = Array.isArray(parsed.choices) && parsed.choices.length === 0
    return !(options.dropUsageChunk && usageOnly)
  }

  // Events are passed on whole, each as soon as it is complete; an event longer than the limit ends the
  // stream with an AicnError (the gateway writes it as an SSE error event).
  async function * pass (): AsyncGenerator<Uint8Array> {
    for await (const events of splitEvents(source)) {
      const kept = events.filter(keep)
      if (kept.length > 0) yield kept.length === 1 ? kept[0] : Buffer.concat(kept)
    }
  }

  return { body: pass(), usage: () => usage }
}

export function readUsage (value: unknown): Usage | undefined {
  const u = value as Partial<Usage> | null | undefined
  if (u == null || typeof u !== 'object') return undefined
  const prompt = Number(u.prompt_tokens ?? 0)
  const completion = Number(u.completion_tokens ?? 0)
  if (!Number.isFinite(prompt) || !Number.isFinite(completion)) return undefined
  return { prompt_tokens: Math.max(0, Math.floor(prompt)), completion_tokens: Math.max(0, Math.floor(completion)) }
}
