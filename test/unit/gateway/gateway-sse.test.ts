import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tapUsage } from '../../../src/gateway/sse.ts'

const encoder = new TextEncoder()
async function * chunks (...parts: string[]): AsyncGenerator<Uint8Array> { for (const p of parts) yield encoder.encode(p) }
async function read (body: AsyncIterable<Uint8Array>): Promise<string[]> {
  const out: string[] = []
  const decoder = new TextDecoder()
  for await (const c of body) out.push(decoder.decode(c))
  return out
}

const delta = (text: string): string => `data: {"choices":[{"index":0,"delta":{"content":"${text}"}}]}\n\n`
const usageChunk = 'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}\n\n'

test('events pass through whole, each as it completes, and the usage is remembered', async () => {
  const tap = tapUsage(chunks(delta('a'), delta('b').slice(0, 10), delta('b').slice(10), usageChunk, 'data: [DONE]\n\n'), { dropUsageChunk: false })
  const out = await read(tap.body)
  assert.deepEqual(out, [delta('a'), delta('b'), usageChunk, 'data: [DONE]\n\n'])
  assert.deepEqual(tap.usage(), { prompt_tokens: 7, completion_tokens: 3 })
})

test('the usage-only chunk is dropped when the gateway asked for it', async () => {
  const tap = tapUsage(chunks(delta('a') + usageChunk + 'data: [DONE]\n\n'), { dropUsageChunk: true })
  assert.deepEqual((await read(tap.body)).join(''), delta('a') + 'data: [DONE]\n\n')
  assert.deepEqual(tap.usage(), { prompt_tokens: 7, completion_tokens: 3 })
})

test('usage inside a content chunk is kept, CRLF events work, garbage passes untouched', async () => {
  const withUsage = 'data: {"choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}\r\n\r\n'
  const tap = tapUsage(chunks(withUsage, 'data: {not json "usage"}\n\n', ': comment\n\n', 'data: tail-without-end'), { dropUsageChunk: true })
  assert.deepEqual(await read(tap.body), [withUsage, 'data: {not json "usage"}\n\n', ': comment\n\n', 'data: tail-without-end'])
  assert.deepEqual(tap.usage(), { prompt_tokens: 1, completion_tokens: 2 })
})

test('a multi-byte character split across chunks survives', async () => {
  const text = delta('美食')
  const bytes = encoder.encode(text)
  async function * split (): AsyncGenerator<Uint8Array> { yield bytes.subarray(0, 40); yield bytes.subarray(40) }
  assert.deepEqual((await read(tapUsage(split(), { dropUsageChunk: false }).body)).join(''), text)
})
