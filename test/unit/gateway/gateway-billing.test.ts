// Exact billing's pure rules (src/gateway/billing.ts): the worst case reserved, the cost settled.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { countingEvents, DEFAULT_MAX_OUTPUT_TOKENS, settledCost, worstCase } from '../../../src/gateway/billing.ts'
import { PriceTable } from '../../../src/gateway/pricing.ts'
import { JobKind } from '../../../src/core/job-types.ts'

const prices = new PriceTable()
const price = prices.priceOf('P', 'm') // $1 in, $3 out per million tokens: 1 and 3 micro-USD a token

describe('worstCase', () => {
  const messages = [{ role: 'user', content: 'Hello' }]
  const input = Buffer.byteLength(JSON.stringify(messages))

  it('reserves every input byte as a token and the output cap asked for, the smaller of the two fields', () => {
    assert.deepEqual(worstCase(prices, price, JobKind.CHAT, { messages, max_tokens: 10 }), { inputTokens: input, outputTokens: 10, microUsd: input + 30 })
    assert.equal(worstCase(prices, price, JobKind.CHAT, { messages, max_completion_tokens: 7 }).outputTokens, 7)
    assert.equal(worstCase(prices, price, JobKind.CHAT, { messages, max_tokens: 50, max_completion_tokens: 7 }).outputTokens, 7)
  })

  it('without a cap (or with null: no cap, as in OpenAI\'s API) reserves the default cap, never nothing', () => {
    assert.equal(worstCase(prices, price, JobKind.CHAT, { messages }).outputTokens, DEFAULT_MAX_OUTPUT_TOKENS)
    assert.equal(worstCase(prices, price, JobKind.CHAT, { messages, max_tokens: null }).outputTokens, DEFAULT_MAX_OUTPUT_TOKENS)
  })

  it('refuses 1e400, which JSON.parse makes Infinity (and which went on to the model as null)', () => {
    const huge = JSON.parse('{"max_tokens": 1e400}') as Record<string, unknown>
    assert.throws(() => worstCase(prices, price, JobKind.CHAT, { messages, ...huge }), (err: any) => err.status === 400)
  })

  it('refuses caps that are not integers from 1 to 1,000,000 with 400', () => {
    for (const bad of [0, -5, 1.5, 1e7, '100', true, {}]) {
      assert.throws(() => worstCase(prices, price, JobKind.CHAT, { messages, max_tokens: bad }), (err: any) => err.status === 400 && /max_tokens/.test(err.message), String(bad))
      assert.throws(() => worstCase(prices, price, JobKind.COMPLETION, { prompt: 'x', max_completion_tokens: bad }), (err: any) => err.status === 400, String(bad))
    }
  })

  it('embeddings and images have no output tokens', () => {
    assert.equal(worstCase(prices, price, JobKind.EMBEDDING, { input: ['a', 'b'] }).outputTokens, 0)
    assert.equal(worstCase(prices, price, JobKind.IMAGE_GEN, { prompt: 'a cat' }).outputTokens, 0)
  })
})

describe('settledCost', () => {
  const worst = worstCase(prices, price, JobKind.CHAT, { messages: [{ role: 'user', content: 'x'.repeat(400) }], max_tokens: 100 })

  it('charges the reported usage when it is within the worst case', () => {
    assert.deepEqual(settledCost(prices, price, worst, { prompt_tokens: 100, completion_tokens: 20 }, { events: 0 }), { promptTokens: 100, completionTokens: 20, microUsd: 160 })
  })

  it('clamps hostile usage: negative is nothing free, huge is never more than reserved', () => {
    assert.equal(settledCost(prices, price, worst, { prompt_tokens: -5e9, completion_tokens: -1 }, { events: 0 }).microUsd, 0)
    for (const usage of [{ prompt_tokens: 5e9, completion_tokens: 9e9 }, { prompt_tokens: 1e300, completion_tokens: 1e300 }, { prompt_tokens: Infinity, completion_tokens: NaN }]) {
      const settled = settledCost(prices, price, worst, usage, { events: 0 })
      assert.ok(settled.microUsd <= worst.microUsd, JSON.stringify(usage))
      assert.ok(settled.promptTokens <= worst.inputTokens && settled.completionTokens <= worst.outputTokens)
    }
  })

  it('without usage charges what was delivered: streamed events, or a whole answer\'s bytes', () => {
    const streamed = settledCost(prices, price, worst, undefined, { events: 12 })
    assert.equal(streamed.completionTokens, 12)
    assert.ok(streamed.promptTokens > 0 && streamed.microUsd > 0)
    assert.equal(settledCost(prices, price, worst, undefined, { bytes: 400 }).completionTokens, 100)
    assert.equal(settledCost(prices, price, worst, undefined, { events: 1e6 }).completionTokens, 100, 'clamped to the cap')
  })
})

describe('countingEvents', () => {
  it('counts data: events at line starts across chunks', async () => {
    const chunks = ['data: {"a":1}\n\n', 'data: {"b":"data: not an event"}\n\ndata: [DONE]', '\n\n'].map((t) => Buffer.from(t))
    const counted = countingEvents((async function * () { yield * chunks })())
    const out: Buffer[] = []
    for await (const c of counted.body) out.push(Buffer.from(c))
    assert.equal(Buffer.concat(out).toString(), chunks.join(''))
    assert.equal(counted.events(), 3)
  })
})
