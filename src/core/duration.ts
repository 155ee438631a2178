// Go `time.Duration` strings, because the config file is shared with the Go node (`"180s"`, `"1h"`,
// `"1m30s"`) and because latencies are printed the way Go prints them (`208.878448ms`).
// Arithmetic is done in integer nanoseconds with BigInt, like Go's int64, so that `1.5h` or
// `208.878448ms` come out exact; the public unit is the millisecond (fractional where needed).

const NS_PER_MS = 1_000_000n
const MAX_NS = (1n << 63n) - 1n

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign, which Go prints
  'μs': 1_000n, // U+03BC Greek mu, which Go also accepts
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n
}

// One `<number><unit>` component: digits with an optional fraction (at least one digit on either
// side of the point), then a unit made of anything that is not a digit, sign or point.
const COMPONENT = /^(\d*)(?:\.(\d*))?([^\d.+-]+)/

/**
 * Parses a Go duration string (`180s`, `1h`, `1m30s`, `1.5h`, `300ms`, `-2s`, `0`) into milliseconds.
 * Throws a plain Error `invalid duration "<text>"`; callers add the key name.
 */
export function parseDuration (text: string): number {
  const fail = (): never => { throw new Error(`invalid duration ${JSON.stringify(text)}`) }
  let rest = text
  let negative = false
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-')
    rest = rest.slice(1)
  }
  // Go accepts a bare zero without a unit, and nothing else without a unit.
  if (rest === '0') return 0
  if (rest === '') fail()

  let total = 0n
  while (rest !== '') {
    const match = COMPONENT.exec(rest)
    if (match == null) return fail()
    const [whole, intDigits, fracDigits = '', unitName] = match
    if (intDigits === '' && fracDigits === '') fail()
    const unit = UNIT_NS[unitName]
    if (unit === undefined) fail()
    const scale = 10n ** BigInt(fracDigits.length)
    total += BigInt(intDigits === '' ? 0 : intDigits) * unit
    total += (BigInt(fracDigits === '' ? 0 : fracDigits) * unit) / scale
    if (total > MAX_NS) fail()
    rest = rest.slice(whole.length)
  }
  return nsToMs(negative ? -total : total)
}

function nsToMs (ns: bigint): number {
  // Split so that the whole milliseconds stay exact and only the sub-millisecond part is a fraction.
  const whole = ns / NS_PER_MS
  const frac = ns % NS_PER_MS
  return Number(whole) + Number(frac) / 1e6
}

/**
 * Formats milliseconds like Go's `time.Duration.String()`: `0s`, `1.5µs`, `208.878448ms`, `1.5s`,
 * `2m0s`, `1h0m0s`. The value is rounded to whole nanoseconds first.
 */
export function formatDuration (ms: number): string {
  if (!Number.isFinite(ms)) throw new Error(`cannot format duration ${ms}`)
  let ns = BigInt(Math.round(ms * 1e6))
  if (ns === 0n) return '0s'
  const negative = ns < 0n
  if (negative) ns = -ns

  let text: string
  if (ns < 1_000n) {
    text = `${ns}ns`
  } else if (ns < 1_000_000n) {
    text = `${withFraction(ns, 3)}µs`
  } else if (ns < 1_000_000_000n) {
    text = `${withFraction(ns, 6)}ms`
  } else {
    // Go writes seconds with up to nine fraction digits, then whole minutes and hours in front.
    const seconds = withFraction(ns % 60_000_000_000n, 9)
    const totalMinutes = ns / 60_000_000_000n
    if (totalMinutes === 0n) {
      text = `${seconds}s`
    } else if (totalMinutes < 60n) {
      text = `${totalMinutes}m${seconds}s`
    } else {
      text = `${totalMinutes / 60n}h${totalMinutes % 60n}m${seconds}s`
    }
  }
  return negative ? `-${text}` : text
}

/** `value / 10^digits` in decimal, without trailing zeros or a bare point (Go's fmtFrac). */
function withFraction (value: bigint, digits: number): string {
  const scale = 10n ** BigInt(digits)
  const whole = value / scale
  const frac = (value % scale).toString().padStart(digits, '0').replace(/0+$/, '')
  return frac === '' ? whole.toString() : `${whole}.${frac}`
}
