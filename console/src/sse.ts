// Reads an OpenAI-style server-sent event stream as it arrives: each `data:` payload once its event is
// complete, `[DONE]` ends it. Chunks may cut an event anywhere, even inside a UTF-8 character.

export async function * sseData (body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<string> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let pending = ''
  const onAbort = (): void => { void reader.cancel().catch(() => {}) }
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    for (;;) {
      const { value, done } = await reader.read()
      pending += done ? decoder.decode() : decoder.decode(value, { stream: true })
      for (let end = nextEnd(pending); end !== undefined; end = nextEnd(pending)) {
        const data = dataOf(pending.slice(0, end.at))
        pending = pending.slice(end.at + end.length)
        if (data === '[DONE]') return
        if (data !== undefined) yield data
      }
      if (done) {
        const data = dataOf(pending)
        if (data !== undefined && data !== '[DONE]') yield data
        return
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort)
    reader.releaseLock()
  }
}

function nextEnd (text: string): { at: number, length: number } | undefined {
  const match = /\r?\n\r?\n/.exec(text)
  return match === null ? undefined : { at: match.index, length: match[0].length }
}

/** The event's data lines joined, or undefined for an event without data (comments, keep-alives). */
function dataOf (event: string): string | undefined {
  const lines = event.split(/\r?\n/).filter((line) => line.startsWith('data:')).map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
  return lines.length === 0 ? undefined : lines.join('\n')
}
