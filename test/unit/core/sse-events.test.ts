// Bounded reading of server-sent events (src/core/sse-events.ts) and the gateway's usage tap on top of it
// (src/gateway/sse.ts): events split anywhere, CRLF, an event over the limit, and a 20 MB event without
// a blank line, which must cost linear work and end with the documented error.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventScanner, boundEvents, splitEvents, watchEvents, MAX_EVENT_BYTES } from '../../../src/core/sse-events.ts'
import { tapUsage } from '../../../src/gateway/sse.ts'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'

const enc = (s: string): Uint8Array => Buffer.from(s)
async function * from (parts: Array<string | Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? enc(p) : p
}
async function events (parts: string[], max?: number): Promise<string[]> {
  const out: string[] = []
  for await (const batch of splitEvents(from(parts), max)) for (const e of batch) out.push(Buffer.from(e).toString())
  return out
}

test('events are cut at blank lines, whatever the chunking', async () => {
  const text = 'data: a\n\ndata: b\r\n\r\ndata: c\n\r\n: comment\ndata: d\n\ntail'
  const expected = ['data: a\n\n', 'data: b\r\n\r\n', 'data: c\n\r\n', ': comment\ndata: d\n\n', 'tail']
  assert.deepEqual(await events([text]), expected)
  // every split point, and one byte at a time
  for (let i = 1; i < text.length; i++) assert.deepEqual(await events([text.slice(0, i), text.slice(i)]), expected, `split at ${i}`)
  assert.deepEqual(await events([...text]), expected)
})

test('an event over the limit fails with MODEL, also when it arrives in one chunk', async () => {
  await assert.rejects(events(['data: ' + 'x'.repeat(100) + '\n\n'], 64), (err: unknown) => err instanceof AicnError && err.code === ErrorCode.MODEL && /longer than 64 bytes/.test(err.message))
  await assert.rejects(events(['data: ', 'x'.repeat(40), 'x'.repeat(40)], 64), /longer than 64/)
  // exactly at the limit is fine
  const exact = 'data: ' + 'x'.repeat(56) + '\n\n'
  assert.equal(exact.length, 64)
  assert.deepEqual(await events([exact, exact], 64), [exact, exact])
})

test('a 20 MB event without a blank line is refused after about 1 MiB, with linear work', async () => {
  const chunk = new Uint8Array(64 * 1024).fill(0x61)
  let fed = 0
  async function * endless (): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 320; i++) { fed += chunk.byteLength; yield chunk }
  }
  const tap = tapUsage(endless(), { dropUsageChunk: true })
  await assert.rejects((async () => { for await (const _ of tap.body) { /* nothing passes */ } })(), /longer than 1048576 bytes/)
  assert.ok(fed <= MAX_EVENT_BYTES + chunk.byteLength, `read ${fed} bytes before giving up`)
})

test('the scanner keeps only a count, not the bytes', () => {
  const scanner = new EventScanner(10)
  assert.deepEqual(scanner.ends(enc('abc\n')), [])
  assert.equal(scanner.pendingBytes, 4)
  assert.deepEqual(scanner.ends(enc('\nab')), [1])
  assert.equal(scanner.pendingBytes, 2)
  assert.throws(() => scanner.ends(enc('123456789')), /longer than 10/)
})

test('boundEvents passes whole events on, holds an unfinished one, and lets the source go when it fails or is left', async () => {
  let returned = 0
  const source = (parts: string[]): AsyncIterable<Uint8Array> => ({
    [Symbol.asyncIterator] () {
      const it = from(parts)
      return { next: async () => await it.next(), return: async () => { returned++; return { done: true, value: undefined } } }
    }
  })
  const out: string[] = []
  for await (const c of boundEvents(source(['data: a\n', '\ndata: b\n\nda', 'ta: c\n\ntail']), 16)) out.push(Buffer.from(c).toString())
  assert.deepEqual(out, ['data: a\n\ndata: b\n\n', 'data: c\n\n', 'tail'])
  await assert.rejects((async () => { for await (const _ of boundEvents(source(['data: ' + 'y'.repeat(20)]), 16)) { /* */ } })(), /longer than 16/)
  assert.equal(returned, 1, 'the source was let go after the oversized event')
  const early = boundEvents(source(['a']))
  await early.return?.()
  assert.equal(returned, 2, 'return() before the first next() reaches the source')
})

test('the usage tap still finds usage in events split across chunks, with UTF-8 split too', async () => {
  const usage = 'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
  const text = Buffer.from('data: {"choices":[{"delta":{"content":"é中"}}]}\n\n' + usage + 'data: [DONE]\n\n')
  const parts: Uint8Array[] = []
  for (let i = 0; i < text.length; i += 7) parts.push(text.subarray(i, i + 7))
  const tap = tapUsage(from(parts), { dropUsageChunk: true })
  const out: Buffer[] = []
  for await (const c of tap.body) out.push(Buffer.from(c))
  assert.equal(Buffer.concat(out).toString(), 'data: {"choices":[{"delta":{"content":"é中"}}]}\n\ndata: [DONE]\n\n')
  assert.deepEqual(tap.usage(), { prompt_tokens: 5, completion_tokens: 2 })
})

test('watchEvents passes a relayed stream chunk by chunk and fails it past the limit', async () => {
  const out: string[] = []
  for await (const c of watchEvents(from(['data: a', '\n\n', 'data: b\n\n']), 16)) out.push(Buffer.from(c).toString())
  assert.deepEqual(out, ['data: a', '\n\n', 'data: b\n\n'])
  const seen: string[] = []
  await assert.rejects((async () => { for await (const c of watchEvents(from(['data: 0123', '456789abcdef']), 16)) seen.push(Buffer.from(c).toString()) })(), /longer than 16/)
  assert.deepEqual(seen, ['data: 0123'])
})
