// The sliced JSON check of large model answers (src/core/json-scan.ts): it must agree with JSON.parse on
// what is well-formed (apart from raw control characters in strings, which it lets through), find the
// top-level error fields, and give the event loop a turn between slices.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { scanJson } from '../../../src/core/json-scan.ts'
import { readModelAnswer } from '../../../src/core/answer.ts'

const scan = async (text: string, slice?: number): Promise<{ problem?: string, fields: Record<string, unknown> }> => await scanJson(Buffer.from(text), slice)

test('well-formed values pass, with their top-level error fields', async () => {
  for (const text of ['{}', '[]', ' [ ] ', '0', '-1.5e+3', '"a\\"b\\\\"', 'true', 'null', '{"a":[1,{"b":[]},"x"],"c":{}}', '[[[]],[{}]]']) {
    assert.equal((await scan(text)).problem, undefined, text)
  }
  const { fields } = await scan('{"data":[{"code":7}],"code":1234,"message":"bad \\"model\\"","error":{"message":"x","type":"y"}}')
  assert.deepEqual(fields, { code: 1234, message: 'bad "model"', error: { message: 'x', type: 'y' } })
  assert.deepEqual((await scan('[{"code":1}]')).fields, {}, 'only the fields of a top-level object')
})

test('malformed input is refused', async () => {
  for (const text of ['', ' ', '{', '[1,]', '{"a":1,}', '{"a" 1}', '{a:1}', '[1 2]', '01', '1.', '-', 'tru', 'nul', '"abc', '{}{}', '{} 1', '[}', '{]', '{"a":1]']) {
    assert.notEqual((await scan(text)).problem, undefined, JSON.stringify(text))
  }
})

test('it agrees with JSON.parse on generated JSON and its damaged variants', async () => {
  await fc.assert(fc.asyncProperty(fc.json(), fc.nat(), fc.integer({ min: 1, max: 64 }), async (json, cut, slice) => {
    assert.equal((await scan(json, slice)).problem, undefined, json)
    const damaged = json.slice(0, cut % (json.length + 1))
    let valid = true
    try { JSON.parse(damaged) } catch { valid = false }
    assert.equal((await scan(damaged, slice)).problem === undefined, valid, JSON.stringify(damaged))
  }), { numRuns: 500 })
})

test('a large answer is checked in slices: other work runs in between', async () => {
  const big = Buffer.from(`[${Array(400_000).fill('0.125').join(',')}]`)
  let turns = 0
  const ticker = setInterval(() => { turns++ }, 0)
  try {
    assert.equal((await scanJson(big, 64 * 1024)).problem, undefined)
  } finally {
    clearInterval(ticker)
  }
  assert.ok(turns >= 2, `the event loop ran ${turns} timers during the scan`)
})

test('readModelAnswer: a large answer passes through as text, its error fields still count', async () => {
  const answer = (body: string, status = 200) => ({ status, contentType: 'application/json', nodeId: 'n', cid: '', body: (async function * () { yield Buffer.from(body) })() })
  const big = JSON.stringify({ data: Array(200_000).fill({ embedding: [0.5, 0.25] }) })
  const ok = await readModelAnswer(answer(big))
  assert.equal(ok.text, big)
  assert.equal((ok.value as { data: unknown[] }).data.length, 200_000)
  await assert.rejects(readModelAnswer(answer(big.slice(0, -1))), /malformed JSON/)
  await assert.rejects(readModelAnswer(answer(JSON.stringify({ code: 1234, message: 'no such model', pad: 'x'.repeat(2_000_000) }))), /no such model/)
})
