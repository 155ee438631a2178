// The OpenAI-compatible gateway, driven by the official `openai` package against daemons on loopback:
// an input node B (the gateway) and a worker W with fake models of every kind.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI, { toFile } from 'openai'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { runCli, TestNode, waitFor } from './harness.ts'
import { worstCase } from '../../src/gateway/billing.ts'
import { PriceTable } from '../../src/gateway/pricing.ts'
import { JobKind } from '../../src/core/job-types.ts'

const PSK = 'ab'.repeat(32)
const TOKENS = ['Gateway', ' says', ' hi', '.']

describe('the OpenAI-compatible gateway', () => {
  let b: TestNode
  let w: TestNode
  let model: FakeModelServer
  let slow: FakeModelServer

  /** Creates a key through the admin API and returns its secret and id. */
  const createKey = async (options: Record<string, unknown>): Promise<{ secret: string, id: string }> => {
    const result = await b.call('/api/v0/keys/create', { name: 'test', ...options })
    assert.equal(result.body.code, 0, JSON.stringify(result.body))
    return { secret: result.body.data.secret, id: result.body.data.key.id }
  }
  const client = (apiKey: string, path = '/v1'): OpenAI => new OpenAI({ apiKey, baseURL: `${b.web}${path}`, maxRetries: 0, timeout: 30_000 })
  const keyInfo = async (id: string): Promise<any> => (await b.call('/api/v0/keys/list')).body.data.find((k: any) => k.id === id)

  before(async () => {
    model = await startFakeModelServer({ tokens: TOKENS })
    slow = await startFakeModelServer({ tokens: Array.from({ length: 30 }, () => ' x'), tokenDelayMs: 100 })
    b = await TestNode.start({ mode: 'input', psk: PSK, edit: (c) => { c.Gateway = { RequireKeys: 'always' } } })
    w = await TestNode.start({ psk: PSK, bootstrap: [await b.addr()] })
    const register = await w.call('/api/v0/ai/project/register', {
      project: 'DecentralGPT',
      models: [
        { model: 'Qwen2.5-72B', api: `${model.url}/v1/chat/completions`, type: 0 },
        { model: 'slow-chat', api: `${slow.url}/v1/chat/completions`, type: 0 },
        { model: 'text-davinci', api: `${model.url}/v1/completions`, type: 4 },
        { model: 'embedder', api: `${model.url}/v1/embeddings`, type: 3 },
        { model: 'painter', api: `${model.url}/v1/images/generations`, type: 1 },
        { model: 'editor', api: `${model.url}/v1/images/edits`, type: 2 }
      ]
    })
    assert.equal(register.body.code, 0, JSON.stringify(register.body))
    await waitFor(async () => (await b.call('/api/v0/ai/projects/models', { project: 'DecentralGPT' })).body.data.length === 6, 20_000, 'B to see the models')
  })

  after(async () => {
    await Promise.all([b, w].filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
    await model?.close()
    await slow?.close()
  })

  test('models, chat (stream and not), completions, embeddings and images through the SDK', async () => {
    const { secret } = await createKey({})
    const openai = client(secret)
    const models = await openai.models.list()
    const ids = models.data.map((m) => m.id)
    for (const id of ['Qwen2.5-72B', 'text-davinci', 'embedder', 'painter', 'editor']) assert.ok(ids.includes(id), id)
    assert.equal((models.data.find((m) => m.id === 'Qwen2.5-72B') as any).nodes, 1)

    const chat = await openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [{ role: 'user', content: 'Hello' }], temperature: 0.2 })
    assert.equal(chat.choices[0].message.content, TOKENS.join(''))
    assert.equal(chat.object, 'chat.completion')

    const explicit = await openai.chat.completions.create({ model: 'DecentralGPT/Qwen2.5-72B', messages: [{ role: 'user', content: 'Hello' }] })
    assert.equal(explicit.choices[0].message.content, TOKENS.join(''))

    let streamed = ''
    let sawUsage = false
    for await (const chunk of await openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [{ role: 'user', content: 'Hi' }], stream: true })) {
      streamed += chunk.choices[0]?.delta?.content ?? ''
      if (chunk.usage != null) sawUsage = true
    }
    assert.equal(streamed, TOKENS.join(''))
    assert.equal(sawUsage, false, 'the usage chunk the gateway asked for is not shown to a client that did not')

    let usage: unknown
    for await (const chunk of await openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: true } })) {
      if (chunk.usage != null) usage = chunk.usage
    }
    assert.ok(usage !== undefined, 'a client that asks for usage gets it')

    const completion = await openai.completions.create({ model: 'text-davinci', prompt: 'Say hi' })
    assert.equal(completion.choices[0].text, TOKENS.join(''))

    const embedding = await openai.embeddings.create({ model: 'embedder', input: ['a', 'b'] })
    assert.equal(embedding.data.length, 2)
    assert.equal(embedding.data[0].embedding.length, 8)

    const image = await openai.images.generate({ model: 'painter', prompt: 'a bird', n: 1, response_format: 'b64_json' })
    assert.equal(Buffer.from(image.data?.[0].b64_json ?? '', 'base64').subarray(1, 4).toString(), 'PNG')

    const edit = await openai.images.edit({ model: 'editor', prompt: 'blue', image: await toFile(Buffer.alloc(100_000, 1), 'in.png', { type: 'image/png' }) })
    assert.equal((edit as any).received_bytes, 100_000)

    // Seed 001's names and the /api/v1 prefix work too.
    const seedChat = await client(secret, '/api/v1/ai').chat.completions.create({ model: 'Qwen2.5-72B', messages: [{ role: 'user', content: 'Hello' }] })
    assert.equal(seedChat.choices[0].message.content, TOKENS.join(''))
  })

  test('a missing, wrong or revoked key gets 401', async () => {
    await assert.rejects(client('').chat.completions.create({ model: 'Qwen2.5-72B', messages: [] }), (err: any) => err.status === 401)
    await assert.rejects(client('sk-aicn-wrong').chat.completions.create({ model: 'Qwen2.5-72B', messages: [] }), (err: any) => err.status === 401 && err.code === 'invalid_api_key')
    const { secret, id } = await createKey({})
    assert.equal((await b.call('/api/v0/keys/revoke', { id })).body.code, 0)
    await assert.rejects(client(secret).chat.completions.create({ model: 'Qwen2.5-72B', messages: [] }), (err: any) => err.status === 401)
  })

  test('unknown model 404, model outside the allow-list 403, bad request 400', async () => {
    const { secret } = await createKey({ models: ['embedder'] })
    const openai = client(secret)
    await assert.rejects(openai.chat.completions.create({ model: 'nope-1B', messages: [] }), (err: any) => err.status === 404 && err.code === 'model_not_found')
    await assert.rejects(openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [] }), (err: any) => err.status === 403)
    await assert.rejects(openai.chat.completions.create({ messages: [] } as any), (err: any) => err.status === 400)
    assert.equal((await openai.embeddings.create({ model: 'embedder', input: 'x' })).data.length, 1)
  })

  test('an exhausted balance gets 402 before any work is done', async () => {
    const { secret } = await createKey({ balance_usd: 0.000001 })
    const before = model.requests.length
    await assert.rejects(client(secret).chat.completions.create({ model: 'Qwen2.5-72B', messages: [{ role: 'user', content: 'Hello' }] }), (err: any) => err.status === 402)
    assert.equal(model.requests.length, before)
  })

  test('the per-minute limit: 429 with the rate-limit headers and Retry-After', async () => {
    const { secret } = await createKey({ rpm: 2 })
    const openai = client(secret)
    const first = await openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [] }).withResponse()
    assert.equal(first.response.headers.get('x-ratelimit-limit'), '2')
    assert.equal(first.response.headers.get('x-ratelimit-remaining'), '1')
    assert.ok(!Number.isNaN(Date.parse(first.response.headers.get('x-ratelimit-reset') ?? '')))
    await openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [] })
    await assert.rejects(openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [] }), (err: any) => {
      assert.equal(err.status, 429)
      assert.equal(err.headers.get('x-ratelimit-remaining'), '0')
      assert.ok(Number(err.headers.get('retry-after')) > 0)
      return true
    })
  })

  test('the concurrency limit', async () => {
    const { secret } = await createKey({ concurrency: 1 })
    const openai = client(secret)
    const running = await openai.chat.completions.create({ model: 'slow-chat', messages: [], stream: true })
    const iterator = running[Symbol.asyncIterator]()
    await iterator.next()
    await assert.rejects(openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [] }), (err: any) => err.status === 429)
    running.controller.abort()
    await waitFor(async () => {
      try { await openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [] }); return true } catch { return false }
    }, 10_000, 'the slot to be released')
  })

  test('20 concurrent requests on a key that can afford one: exactly one charged, the rest 402, balance ≥ 0', async () => {
    const body = { model: 'Qwen2.5-72B', messages: [{ role: 'user' as const, content: 'Hi' }], max_tokens: 50 }
    const prices = new PriceTable()
    const worst = worstCase(prices, prices.priceOf('DecentralGPT', 'Qwen2.5-72B'), JobKind.CHAT, body)
    const { secret, id } = await createKey({ balance_usd: worst.microUsd / 1e6 })
    const openai = client(secret)
    const results = await Promise.allSettled(Array.from({ length: 20 }, async () => await openai.chat.completions.create(body)))
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
    assert.ok(results.every((r) => r.status === 'fulfilled' || (r.reason as any).status === 402))
    await waitFor(async () => (await b.call('/api/v0/usage', { id })).body.data[0]?.requests === 1, 10_000, 'the one request to be recorded')
    const usage = (await b.call('/api/v0/usage', { id })).body.data
    assert.equal(usage.length, 1)
    assert.ok(usage[0].costMicroUsd > 0 && usage[0].costMicroUsd <= worst.microUsd, JSON.stringify(usage))
    const balance = (await keyInfo(id)).balanceUsd
    assert.ok(balance >= 0 && balance < worst.microUsd / 1e6, String(balance))
  })

  test('invalid max_tokens is 400; a stream the client cuts is charged for what it delivered', async () => {
    const { secret, id } = await createKey({ balance_usd: 10 })
    const openai = client(secret)
    for (const max of [0, -1, 1.5, '100']) {
      await assert.rejects(openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [], max_tokens: max as number }), (err: any) => err.status === 400 && /max_tokens/.test(err.message), String(max))
    }
    const stream = await openai.chat.completions.create({ model: 'slow-chat', messages: [{ role: 'user', content: 'Hi' }], stream: true })
    let received = 0
    for await (const chunk of stream) {
      if ((chunk.choices[0]?.delta?.content ?? '') !== '') received++
      if (received === 3) break
    }
    await waitFor(async () => (await b.call('/api/v0/usage', { id })).body.data[0]?.requests === 1, 10_000, 'the cut stream to be recorded')
    const usage = (await b.call('/api/v0/usage', { id })).body.data[0]
    assert.ok(usage.completionTokens >= 3 && usage.costMicroUsd > 0, JSON.stringify(usage))
    assert.ok((await keyInfo(id)).balanceUsd < 10)
  })

  test('usage and balance after a mix of requests, and after a restart', async () => {
    const { secret, id } = await createKey({ balance_usd: 1 })
    const openai = client(secret)
    let prompt = 0
    let completion = 0
    for (let i = 0; i < 3; i++) {
      const r = await openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [{ role: 'user', content: 'one two three' }] })
      prompt += r.usage?.prompt_tokens ?? 0
      completion += r.usage?.completion_tokens ?? 0
    }
    for await (const chunk of await openai.chat.completions.create({ model: 'Qwen2.5-72B', messages: [{ role: 'user', content: 'four five' }], stream: true, stream_options: { include_usage: true } })) {
      prompt += chunk.usage?.prompt_tokens ?? 0
      completion += chunk.usage?.completion_tokens ?? 0
    }
    const expectedCost = prompt * 1 + completion * 3 // micro-USD at $1 / $3 per million tokens
    await waitFor(async () => (await keyInfo(id)).balanceMicroUsd === 1_000_000 - expectedCost, 5_000, 'the balance to be charged')
    const usage = await b.call('/api/v0/usage', { id })
    const row = usage.body.data.find((r: any) => r.model === 'Qwen2.5-72B')
    assert.equal(row.requests, 4)
    assert.equal(row.promptTokens, prompt)
    assert.equal(row.completionTokens, completion)
    assert.equal(row.costMicroUsd, expectedCost)

    // The CLI reaches the running daemon.
    const listed = runCli(['keys', 'list', '--config', b.configPath])
    assert.equal(listed.status, 0, listed.stderr)
    assert.ok(listed.stdout.includes(id))

    await b.stop()
    // With the daemon stopped, the CLI opens the database itself.
    const topup = runCli(['keys', 'topup', id, '2', '--config', b.configPath])
    assert.equal(topup.status, 0, topup.stderr)
    await b.launch()
    assert.equal((await keyInfo(id)).balanceMicroUsd, 3_000_000 - expectedCost)
  })

  test('the CLI creates a key whose secret works once printed', async () => {
    const created = runCli(['keys', 'create', '--config', b.configPath, '--name', 'cli', '--rpm', '100'])
    assert.equal(created.status, 0, created.stderr)
    const secret = created.stdout.trim().split('\n').pop() ?? ''
    assert.match(secret, /^sk-aicn-/)
    await waitFor(async () => (await b.call('/api/v0/ai/projects/models', { project: 'DecentralGPT' })).body.data.length === 6, 20_000, 'B to hear W again')
    await waitFor(async () => {
      try { await client(secret).chat.completions.create({ model: 'Qwen2.5-72B', messages: [] }); return true } catch { return false }
    }, 20_000, 'a chat with the new key')
  })
})
