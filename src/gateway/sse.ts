// Watches an OpenAI-style server-sent event stream on its way to the client: remembers the `usage` the
// model reports (in the last chunk) for metering, and can drop the usage-only chunk when it was the
// gateway, not the client, that asked for it. Events are passed on whole, each as soon as it is complete.

export interface Usage { prompt_tokens: number, completion_tokens: number }

export interface UsageTap {
  body: AsyncIterable<Uint8Array>
  /** the usage the stream reported, once it has been read to its end */
  usage: () => Usage | undefined
}

const EVENT_END = /\r?\n\r?\n/

export function tapUsage (source: AsyncIterable<Uint8Array>, options: { dropUsageChunk: boolean }): UsageTap {
  let usage: Usage | undefined
  const decoder = new TextDecoder()
  const encoder = new TextEncoder()

  /** Returns the event to pass on, or undefined to drop it. */
  const inspect = (event: string): string | undefined => {
    const data = event.split(/\r?\n/).filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trim()).join('\n')
    if (data === '' || data === '[DONE]' || !data.includes('"usage"')) return event
    let parsed: { usage?: unknown, choices?: unknown[] }
    try { parsed = JSON.parse(data) } catch { return event }
    const found = readUsage(parsed.usage)
    if (found === undefined) return event
    usage = found
    const usageOnly = Array.isArray(parsed.choices) && parsed.choices.length === 0
    return options.dropUsageChunk && usageOnly ? undefined : event
  }

  async function * pass (): AsyncGenerator<Uint8Array> {
    let pending = ''
    for await (const chunk of source) {
      pending += decoder.decode(chunk, { stream: true })
      let out = ''
      for (let match = EVENT_END.exec(pending); match !== null; match = EVENT_END.exec(pending)) {
        const end = match.index + match[0].length
        const kept = inspect(pending.slice(0, match.index))
        if (kept !== undefined) out += pending.slice(0, end)
        pending = pending.slice(end)
      }
      if (out !== '') yield encoder.encode(out)
    }
    pending += decoder.decode()
    if (pending !== '' && inspect(pending) !== undefined) yield encoder.encode(pending)
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
