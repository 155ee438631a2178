// Checks that a large JSON answer is well-formed and picks out its top-level fields that say whether it is
// an error (`code`, `message`, `error`), without building the whole value and without holding the event
// loop: the bytes are scanned in slices of SLICE_BYTES, with a turn of the event loop between slices.
// JSON.parse of a 24 MB array of numbers takes over 300 ms on this machine, during which the node
// answers nothing (issue 19, hostile models). Small answers are still parsed whole (src/core/answer.ts).
//
// The scan follows RFC 8259's grammar with one leniency: raw control characters inside strings are not
// refused (JSON.parse would); whatever reads the answer later parses it properly anyway.

/** Bytes scanned in one turn of the event loop. */
export const SLICE_BYTES = 256 * 1024
/** Deeper nesting is refused (an answer is not that deep; the HTTP API refuses 128 in requests). */
const MAX_DEPTH = 512
/** A top-level field's value larger than this is not kept (an error's message is short). */
const MAX_FIELD_BYTES = 64 * 1024
/** The top-level fields kept: whether the answer is an error, and the usage the gateway meters. */
const FIELDS = new Set(['code', 'message', 'error', 'usage'])

export interface JsonScan {
  /** undefined when the bytes are one well-formed JSON value; else what is wrong */
  problem?: string
  /** the kept top-level fields of an object, parsed */
  fields: Record<string, unknown>
}

const enum State { Value, AfterValue, Key, Colon, String, Number, Literal }

const QUOTE = 0x22
const BACKSLASH = 0x5c

function isSpace (b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09
}

/** Scans `bytes`; awaits a turn of the event loop every SLICE_BYTES. */
export async function scanJson (bytes: Uint8Array, sliceBytes = SLICE_BYTES): Promise<JsonScan> {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const fields: Record<string, unknown> = {}
  const stack: number[] = [] // 0x7b '{' or 0x5b '['
  let state = State.Value
  let literal = ''
  let literalAt = 0
  let stringIsKey = false
  let keyStart = 0
  let key = ''
  let valueStart = -1
  let sawValue = false
  let nextPause = sliceBytes
  const fail = (message: string, at: number): JsonScan => ({ problem: `${message} at byte ${at}`, fields })

  /** A value just ended at `end`: keep it if it is a wanted top-level field. */
  const valueEnded = (end: number): void => {
    if (valueStart >= 0 && stack.length === 1 && end - valueStart <= MAX_FIELD_BYTES) {
      try { fields[key] = JSON.parse(buf.toString('utf8', valueStart, end)) } catch {}
    }
    if (stack.length === 1) valueStart = -1
  }

  let i = 0
  while (i < buf.byteLength) {
    if (i >= nextPause) {
      nextPause = i + sliceBytes
      await new Promise<void>((resolve) => { setImmediate(resolve) })
    }
    const b = buf[i]
    switch (state) {
      case State.String: {
        // Jump to the next quote; it ends the string unless an odd number of backslashes precede it.
        const q = buf.indexOf(QUOTE, i)
        if (q === -1) return fail('unterminated string', buf.byteLength)
        let slashes = 0
        for (let j = q - 1; j >= i - 1 && buf[j] === BACKSLASH; j--) slashes++
        i = q + 1
        if (slashes % 2 === 1) continue
        if (stringIsKey) {
          // Only the top-level object's keys matter; a nested key must not replace the one being read.
          if (stack.length === 1) key = q - keyStart <= 16 ? buf.toString('utf8', keyStart, q) : ''
          state = State.Colon
        } else {
          state = State.AfterValue
          valueEnded(i)
        }
        continue
      }
      case State.Number:
        if ((b >= 0x30 && b <= 0x39) || b === 0x2e || b === 0x65 || b === 0x45 || b === 0x2b || b === 0x2d) { i++; continue }
        if (!/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(buf.toString('latin1', literalAt, i))) return fail('malformed number', literalAt)
        state = State.AfterValue
        valueEnded(i)
        continue // the byte is looked at again as what follows a value
      case State.Literal:
        if (buf.toString('latin1', i, i + literal.length) !== literal) return fail('unknown literal', literalAt)
        i += literal.length
        state = State.AfterValue
        valueEnded(i)
        continue
    }
    if (isSpace(b)) { i++; continue }
    switch (state) {
      case State.Value:
        if (sawValue && stack.length === 0) return fail('more than one value', i)
        if (stack.length === 1 && FIELDS.has(key) && stack[0] === 0x7b) valueStart = i
        sawValue = true
        if (b === 0x7b || b === 0x5b) {
          if (stack.length >= MAX_DEPTH) return fail('nesting too deep', i)
          stack.push(b)
          state = b === 0x7b ? State.Key : State.Value
          i++
          // An empty container closes at once.
          if (state === State.Value) {
            let j = i
            while (j < buf.byteLength && isSpace(buf[j])) j++
            if (buf[j] === 0x5d) { stack.pop(); i = j + 1; state = State.AfterValue; valueEnded(i) }
          }
          continue
        }
        if (b === QUOTE) { state = State.String; stringIsKey = false; i++; continue }
        if (b === 0x2d || (b >= 0x30 && b <= 0x39)) { state = State.Number; literalAt = i; i++; continue }
        if (b === 0x74) literal = 'true'
        else if (b === 0x66) literal = 'false'
        else if (b === 0x6e) literal = 'null'
        else return fail('unexpected character', i)
        state = State.Literal
        literalAt = i
        continue
      case State.Key:
        if (b === 0x7d && !sawKeyIn(buf, i)) { stack.pop(); i++; state = State.AfterValue; valueEnded(i); continue }
        if (b !== QUOTE) return fail('expected a key', i)
        state = State.String
        stringIsKey = true
        keyStart = i + 1
        i++
        continue
      case State.Colon:
        if (b !== 0x3a) return fail('expected a colon', i)
        state = State.Value
        i++
        continue
      case State.AfterValue: {
        const top = stack[stack.length - 1]
        if (top === undefined) return fail('more than one value', i)
        if (b === 0x2c) { state = top === 0x7b ? State.Key : State.Value; if (stack.length === 1) key = ''; i++; continue }
        if ((b === 0x7d && top === 0x7b) || (b === 0x5d && top === 0x5b)) {
          stack.pop()
          i++
          valueEnded(i)
          continue
        }
        return fail('expected a comma or the end of a container', i)
      }
    }
  }
  if (state === State.Number) {
    if (!/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(buf.toString('latin1', literalAt))) return fail('malformed number', literalAt)
    state = State.AfterValue
  }
  if (!sawValue) return fail('no value', 0)
  if (stack.length > 0 || state !== State.AfterValue) return fail('unexpected end', buf.byteLength)
  return { fields }
}

/** Whether the object opened before `at` already has a key (then a '}' right after a ',' is an error).
 * Called only when '}' follows where a key is expected: look back past spaces for '{'. */
function sawKeyIn (buf: Buffer, at: number): boolean {
  let j = at - 1
  while (j >= 0 && isSpace(buf[j])) j--
  return buf[j] !== 0x7b
}
