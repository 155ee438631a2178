// One readable line per log event, for a person at a terminal (issue 15: JSON with numeric levels and
// epoch times is for machines). pino hands each stream the JSON line; this turns it into
//   2026-12-04 21:05:01.123 INFO  model DecentralGPT/Llama3 is down: connect ECONNREFUSED  project=… model=…
// A line that is not JSON is passed on as it is. No dependency: pino-pretty would pull in a dozen.
import type { DestinationStream } from 'pino'

const LEVELS: Record<number, [string, string]> = {
  10: ['TRACE', '\u001b[90m'],
  20: ['DEBUG', '\u001b[90m'],
  30: ['INFO ', '\u001b[32m'],
  40: ['WARN ', '\u001b[33m'],
  50: ['ERROR', '\u001b[31m'],
  60: ['FATAL', '\u001b[35m']
}
const RESET = '\u001b[0m'
/** Fields every line has, shown in the prefix (or not at all). */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name'])
/** A field longer than this is cut: one event stays one line. */
const MAX_FIELD = 300

export function formatLine (json: string, options: { color: boolean }): string {
  let event: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(json)
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return json
    event = parsed as Record<string, unknown>
  } catch {
    return json
  }
  const [name, color] = LEVELS[Number(event.level)] ?? ['LOG  ', '']
  const time = typeof event.time === 'number' ? localTime(new Date(event.time)) : ''
  const fields = Object.entries(event)
    .filter(([key]) => !HIDDEN.has(key))
    .map(([key, value]) => `${key}=${fieldText(value)}`)
  const level = options.color ? `${color}${name}${RESET}` : name
  const message = typeof event.msg === 'string' ? event.msg : ''
  return `${time} ${level} ${message}${fields.length > 0 ? '  ' + fields.join(' ') : ''}`.replace(/[\r\n]+/g, ' ') + '\n'
}

function fieldText (value: unknown): string {
  const text = typeof value === 'string' ? (/[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value) : JSON.stringify(value) ?? String(value)
  return text.length > MAX_FIELD ? `${text.slice(0, MAX_FIELD)}…` : text
}

function localTime (date: Date): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0')
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
}

/** A pino destination that writes each JSON line to `destination` as a readable line. */
export function prettyStream (destination: DestinationStream, options: { color: boolean }): DestinationStream {
  const stream: DestinationStream & { flushSync?: () => void } = {
    write (chunk: string) {
      // pino writes one event per call, ending in a newline.
      for (const line of chunk.split('\n')) if (line !== '') destination.write(formatLine(line, options))
    }
  }
  const flush = (destination as { flushSync?: () => void }).flushSync
  if (flush !== undefined) stream.flushSync = () => { flush.call(destination) }
  return stream
}
