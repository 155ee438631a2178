// Numbers and ids as people read them.

/** The end of a peer id, which is where ids differ (they all start with 16Uiu2 or 12D3Koo). */
export function shortId (id: string): string {
  return id.length > 12 ? `…${id.slice(-8)}` : id
}

export function duration (seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—'
  if (seconds < 60) return `${Math.floor(seconds)} s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`
}

export function ago (ms: number | null): string {
  if (ms === null) return 'never'
  if (ms < 1000) return 'just now'
  return `${duration(ms / 1000)} ago`
}

export function latency (us: number): string {
  if (!(us > 0)) return '—'
  return us < 1000 ? `${us} µs` : `${(us / 1000).toFixed(us < 10_000 ? 1 : 0)} ms`
}

export function bytes (n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n) || n <= 0) return '—'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++ }
  return `${value.toFixed(value < 10 && unit > 0 ? 1 : 0)} ${units[unit]}`
}

export function usd (value: number | null): string {
  if (value === null) return 'unmetered'
  return `$${value.toFixed(value !== 0 && Math.abs(value) < 0.01 ? 6 : 2)}`
}

export const CONNECTIVITY: Record<number, string> = { 0: 'not connected', 1: 'connected', 4: 'relayed' }

export function plural (n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
