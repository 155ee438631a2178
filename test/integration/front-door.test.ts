// The HTTP front door as its users and its attackers meet it, on real daemons over 127.0.0.1: the official
// `openai` package against the web listener with `apiKey: 'none'`, web pages that try to drive the node
// (cross-site requests, DNS rebinding), OpenAI-shaped errors on /v1, and keys on every job route.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { readFile } from 'node:fs/promises'
import OpenAI, { toFile } from 'openai'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { TestNode, waitFor } from './harness.ts'

const PSK = 'cd'.repeat(32)
const TOKENS = ['Front', ' door', ' open', '.']
const MODELS = [
  { model: 'door-chat', path: '/v1/chat/completions', type: 0 },
  { model: 'door-text', path: '/v1/completions', type: 4 },
  { model: 'door-embed', path: '/v1/embeddings', type: 3 },
  { model: 'door-paint', path: '/v1/images/generations', type: 1 },
  { model: 'door-edit', path: '/v1/images/edits', type: 2 }
]

interface RawAnswer { status: number, headers: Record<string, string | string[] | undefined>, body: string }

/** A request with headers fetch will not let us set (Host) or that only browsers send (Origin). With
 * `partial`, the body is sent but not ended (its Content-Length announces more): the answer must come anyway. */
async function rawRequest (base: string, method: string, path: string, headers: Record<string, string>, body?: string, partial = false): Promise<RawAnswer> {
  const url = new URL(path, base)
  return await new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path: url.pathname + url.search, headers, setHost: headers.Host === undefined }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text })
        if (partial) req.destroy()
      })
    })
    req.on('error', reject)
    if (partial) req.write(body ?? '')
    else req.end(body)
  })
}

async function registerModels (w: TestNode, model: FakeModelServer, project: string): Promise<void> {
  const register = await w.call('/api/v0/ai/project/register', {
    project,
    models: MODELS.map((m) => ({ model: m.model, api: `${model.url}${m.path}`, type: m.type }))
  })
  assert.equal(register.body.code, 0, JSON.stringify(register.body))
}

/** An input node B (config changed by `edit`) and a worker W serving MODELS of `project`; `stop` ends all. */
async function startNetwork (project: string, edit: (config: any) => void): Promise<{ b: TestNode, w: TestNode, model: FakeModelServer, stop: () => Promise<void> }> {
  const model = await startFakeModelServer({ tokens: TOKENS })
  const nodes: TestNode[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map(async (n) => { await n.destroy() }))
    await model.close()
  }
  try {
    const b = await TestNode.start({ mode: 'input', psk: PSK, edit })
    nodes.push(b)
    const w = await TestNode.start({ psk: PSK, bootstrap: [await b.addr()] })
    nodes.push(w)
    await registerModels(w, model, project)
    await waitFor(async () => (await b.call('/api/v0/ai/projects/models', { project })).body.data.length === MODELS.length, 20_000, 'B to see the models')
    return { b, w, model, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

describe('the front door: keyless local use, browser safety, OpenAI errors', () => {
  let b: TestNode
  let w: TestNode
  let model: FakeModelServer
  const sdk = (): OpenAI => new OpenAI({ apiKey: 'none', baseURL: `${b.web}/v1`, maxRetries: 0, timeout: 30_000 })

  let stop: (() => Promise<void>) | undefined

  before(async () => {
    ({ b, w, model, stop } = await startNetwork('Door', (c) => { c.API.AllowedOrigins = ['http://app.example'] }))
  })

  after(async () => { await stop?.() })

  test('the web listener is not port 6000 and serves the same API', async () => {
    assert.notEqual(b.web, '')
    assert.notEqual(new URL(b.web).port, '6000')
    const id = await (await fetch(`${b.web}/api/v0/id`)).json() as { peer_id: string }
    assert.equal(id.peer_id, b.peerId)
  })

  test('the official SDK with apiKey "none": models, chat, stream, completions, embeddings, images', async () => {
    const openai = sdk()
    const ids = (await openai.models.list()).data.map((m) => m.id)
    for (const m of MODELS) assert.ok(ids.includes(m.model), m.model)

    const chat = await openai.chat.completions.create({ model: 'door-chat', messages: [{ role: 'user', content: 'Hi' }] })
    assert.equal(chat.choices[0].message.content, TOKENS.join(''))

    const chunks: string[] = []
    for await (const chunk of await openai.chat.completions.create({ model: 'door-chat', messages: [{ role: 'user', content: 'Hi' }], stream: true })) {
      const piece = chunk.choices[0]?.delta?.content
      if (piece != null && piece !== '') chunks.push(piece)
    }
    assert.deepEqual(chunks, TOKENS)

    assert.equal((await openai.completions.create({ model: 'door-text', prompt: 'Say hi' })).choices[0].text, TOKENS.join(''))
    assert.equal((await openai.embeddings.create({ model: 'door-embed', input: ['a', 'b', 'c'] })).data.length, 3)
    const image = await openai.images.generate({ model: 'door-paint', prompt: 'a door', response_format: 'b64_json' })
    assert.equal(Buffer.from(image.data?.[0].b64_json ?? '', 'base64').subarray(1, 4).toString(), 'PNG')
    const edit = await openai.images.edit({ model: 'door-edit', prompt: 'blue', image: await toFile(Buffer.alloc(300_000, 7), 'in.png', { type: 'image/png' }) })
    assert.equal((edit as any).received_bytes, 300_000)
  })

  test('other tokens SDKs send where auth is off ("EMPTY", "ollama") work too; a revoked key is still 401', async () => {
    for (const apiKey of ['EMPTY', 'ollama', 'sk-not-one-of-ours']) {
      const openai = new OpenAI({ apiKey, baseURL: `${b.web}/v1`, maxRetries: 0 })
      assert.equal((await openai.chat.completions.create({ model: 'door-chat', messages: [{ role: 'user', content: 'Hi' }] })).choices[0].message.content, TOKENS.join(''))
    }
    const created = await b.call('/api/v0/keys/create', { name: 'to-revoke' })
    assert.equal((await b.call('/api/v0/keys/revoke', { id: created.body.data.key.id })).body.code, 0)
    const revoked = new OpenAI({ apiKey: created.body.data.secret, baseURL: `${b.web}/v1`, maxRetries: 0 })
    await assert.rejects(revoked.chat.completions.create({ model: 'door-chat', messages: [] }), (err: any) => err.status === 401 && err.code === 'invalid_api_key')
  })

  test('a cross-site page cannot create keys, register models or change bootstrap peers; nothing changes', async () => {
    const keysBefore = (await b.call('/api/v0/keys/list')).body.data.length
    const configBefore = await readFile(w.configPath, 'utf8')
    const evil = { Origin: 'http://evil.example', 'Content-Type': 'text/plain' }
    const attempts: Array<[TestNode, string, unknown]> = [
      [b, '/api/v0/keys/create', { name: 'stolen', balance_usd: 5 }],
      [w, '/api/v0/ai/model/register', { project: 'Evil', model: 'x', api: `${model.url}/v1/chat/completions` }],
      [w, '/api/v0/bootstrap/add', { node_addr: await b.addr() }],
      [w, '/api/v0/swarm/disconnect', { node_addr: await b.addr() }]
    ]
    for (const [node, path, body] of attempts) {
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/json']) {
        const answer = await rawRequest(node.web, 'POST', path, { ...evil, 'Content-Type': contentType }, JSON.stringify(body))
        assert.equal(answer.status, 403, `${path} ${contentType}: ${answer.body}`)
        assert.equal(JSON.parse(answer.body).code, 1009)
        assert.equal(answer.headers['access-control-allow-origin'], undefined)
      }
    }
    // A page may not even read answers from another origin.
    assert.equal((await rawRequest(b.web, 'GET', '/api/v0/keys/list', { Origin: 'http://evil.example' })).status, 403)
    assert.equal((await rawRequest(b.web, 'GET', '/v1/models', { Origin: 'null' })).status, 403)
    assert.equal((await b.call('/api/v0/keys/list')).body.data.length, keysBefore)
    assert.equal(await readFile(w.configPath, 'utf8'), configBefore)
    assert.equal((await b.call('/api/v0/id')).status, 200, 'the node keeps serving')
  })

  test('DNS rebinding: a Host that is not this node is refused; loopback names and IP literals pass', async () => {
    for (const host of ['evil.example', `evil.example:${new URL(b.web).port}`, 'localhost.evil.example']) {
      const answer = await rawRequest(b.web, 'GET', '/api/v0/id', { Host: host })
      assert.equal(answer.status, 403, host)
      assert.match(JSON.parse(answer.body).message, /Host .* is not allowed/)
    }
    const v1 = await rawRequest(b.web, 'GET', '/v1/models', { Host: 'evil.example' })
    assert.equal(v1.status, 403)
    assert.equal(JSON.parse(v1.body).error.type, 'permission_error', 'OpenAI shape under /v1')
    for (const host of ['localhost', `127.0.0.1:${new URL(b.web).port}`, 'app.localhost', '[::1]:6080']) {
      assert.equal((await rawRequest(b.web, 'GET', '/api/v0/id', { Host: host })).status, 200, host)
    }
  })

  test('the node\'s own origin (the console) may call it with JSON; a page-style text/plain POST is 415', async () => {
    const own = new URL(b.web).origin
    const json = await rawRequest(b.web, 'POST', '/api/v0/keys/list', { Origin: own, 'Content-Type': 'application/json' }, '{}')
    assert.equal(json.status, 200, json.body)
    const plain = await rawRequest(b.web, 'POST', '/api/v0/keys/create', { Origin: own, 'Content-Type': 'text/plain' }, '{"name":"x"}')
    assert.equal(plain.status, 415, plain.body)
    // curl -d sends x-www-form-urlencoded and no Origin: the Go node's clients keep working.
    const curl = await rawRequest(b.api, 'POST', '/api/v0/bootstrap/list', { 'Content-Type': 'application/x-www-form-urlencoded' }, '{}')
    assert.equal(curl.status, 200)
  })

  test('CORS is opt-in: an allowed origin gets a preflight and the header, others get nothing', async () => {
    const preflight = await rawRequest(b.web, 'OPTIONS', '/v1/chat/completions', { Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' })
    assert.equal(preflight.status, 204)
    assert.equal(preflight.headers['access-control-allow-origin'], 'http://app.example')
    const models = await rawRequest(b.web, 'GET', '/v1/models', { Origin: 'http://app.example' })
    assert.equal(models.status, 200)
    assert.equal(models.headers['access-control-allow-origin'], 'http://app.example')
    const own = await rawRequest(b.web, 'GET', '/v1/models', { Origin: new URL(b.web).origin })
    assert.equal(own.status, 200)
    assert.equal(own.headers['access-control-allow-origin'], undefined, 'same-origin needs no CORS header')
  })

  test('OpenAI-shaped errors for every bad request under /v1 and /api/v1, and the node keeps serving', async () => {
    const cases: Array<{ name: string, method: string, path: string, headers?: Record<string, string>, body?: string, status: number, partial?: boolean }> = [
      { name: 'malformed JSON', method: 'POST', path: '/v1/chat/completions', headers: { 'Content-Type': 'application/json' }, body: '{"model":', status: 400 },
      { name: 'a JSON array', method: 'POST', path: '/v1/embeddings', headers: { 'Content-Type': 'application/json' }, body: '[1]', status: 400 },
      { name: 'too large', method: 'POST', path: '/v1/chat/completions', headers: { 'Content-Type': 'application/json', 'Content-Length': String(2 * 1024 * 1024) }, body: '{"model":"', status: 413, partial: true },
      { name: 'unknown path', method: 'GET', path: '/v1/nope', status: 404 },
      { name: 'unknown path under /api/v1', method: 'POST', path: '/api/v1/chat/nope', body: '{}', status: 404 },
      { name: 'wrong method', method: 'GET', path: '/v1/chat/completions', status: 405 },
      { name: 'unknown model', method: 'POST', path: '/v1/chat/completions', headers: { 'Content-Type': 'application/json' }, body: '{"model":"nope","messages":[]}', status: 404 },
      { name: 'no model', method: 'POST', path: '/v1/chat/completions', headers: { 'Content-Type': 'application/json' }, body: '{"messages":[]}', status: 400 }
    ]
    for (const c of cases) {
      const answer = await rawRequest(b.web, c.method, c.path, c.headers ?? {}, c.body, c.partial)
      assert.equal(answer.status, c.status, `${c.name}: ${answer.body.slice(0, 200)}`)
      const error = JSON.parse(answer.body).error
      assert.equal(typeof error?.message, 'string', c.name)
      assert.equal(typeof error?.type, 'string', c.name)
      assert.ok('param' in error && 'code' in error, c.name)
    }
    // The same mistakes on /api/v0 keep the /api/v0 envelope.
    const v0 = await rawRequest(b.web, 'GET', '/api/v0/nope', {})
    assert.deepEqual(Object.keys(JSON.parse(v0.body)).sort(), ['code', 'message'])
    assert.equal((await sdk().chat.completions.create({ model: 'door-chat', messages: [{ role: 'user', content: 'Hi' }] })).choices[0].message.content, TOKENS.join(''))
  })

  test('an image edit for an unknown model is refused before the upload is read', async () => {
    const boundary = 'xyz'
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nno-such-editor\r\n--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n`
    // Announces 50 MB and sends only the head: the answer must not wait for the rest.
    const answer = await rawRequest(b.web, 'POST', '/v1/images/edits', { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': String(50_000_000) }, head, true)
    assert.equal(answer.status, 404)
    assert.equal(JSON.parse(answer.body).error.code, 'model_not_found')
  })
})

describe('keys required: every job route, /api/v0 included, needs a key', () => {
  let b: TestNode
  let w: TestNode

  let stop: (() => Promise<void>) | undefined

  before(async () => {
    ({ b, w, stop } = await startNetwork('Locked', (c) => { c.Gateway = { RequireKeys: 'always' } }))
  })

  after(async () => { await stop?.() })

  test('401 without a key or with an unknown one, on /api/v0 and /v1; a valid key works', async () => {
    const chat = { project: 'Locked', model: 'door-chat', messages: [{ role: 'user', content: 'Hi' }] }
    const image = { project: 'Locked', model: 'door-paint', prompt: 'x' }
    const routes: Array<[string, unknown]> = [
      ['/api/v0/chat/completion/proxy', chat],
      [`/api/v0/chat/completion?node_id=${w.peerId}`, { ...chat, node_id: w.peerId }],
      ['/api/v0/image/gen/proxy', image],
      ['/api/v0/image/gen', { ...image, node_id: w.peerId }],
      ['/api/v0/image/edit/proxy?project=Locked&model=door-edit', undefined],
      [`/api/v0/image/edit?project=Locked&model=door-edit&node_id=${w.peerId}`, undefined],
      ['/v1/chat/completions', { model: 'door-chat', messages: [] }]
    ]
    for (const [path, body] of routes) {
      for (const authorization of [undefined, 'Bearer none', 'Bearer sk-aicn-unknown']) {
        const headers: Record<string, string> = body === undefined ? { 'Content-Type': 'multipart/form-data; boundary=b' } : { 'Content-Type': 'application/json' }
        if (authorization !== undefined) headers.Authorization = authorization
        const answer = await rawRequest(b.api, 'POST', path, headers, body === undefined ? '--b--\r\n' : JSON.stringify(body))
        assert.equal(answer.status, 401, `${path} ${String(authorization)}: ${answer.body}`)
      }
    }
    const created = await b.call('/api/v0/keys/create', { name: 'door' })
    const secret: string = created.body.data.secret
    const ok = await rawRequest(b.api, 'POST', '/api/v0/chat/completion/proxy', { 'Content-Type': 'application/json', Authorization: `Bearer ${secret}` }, JSON.stringify(chat))
    assert.equal(ok.status, 200, ok.body)
    assert.equal(JSON.parse(ok.body).data.choices[0].message.content, TOKENS.join(''))
    // Reading the network needs no key.
    assert.equal((await b.call('/api/v0/ai/projects/list')).status, 200)
  })

  test('identifiers with CRLF are 400 at the edge, and nothing leaks: a key with concurrency 1 keeps working', async () => {
    const created = await b.call('/api/v0/keys/create', { name: 'crlf', concurrency: 1, balance_usd: 1 })
    const auth = { 'Content-Type': 'application/json', Authorization: `Bearer ${created.body.data.secret as string}` }
    const chat = { project: 'Locked', model: 'door-chat', messages: [{ role: 'user', content: 'Hi' }] }
    const bad: Array<[string, unknown]> = [
      ['/api/v0/chat/completion', { ...chat, node_id: `${w.peerId}\r\nX-Evil: 1` }],
      ['/api/v0/chat/completion', { ...chat, node_id: w.peerId, cid: 'abc\r\nX-Evil: 1' }],
      ['/api/v0/chat/completion/proxy', { ...chat, project: 'Locked\r\nX-Evil: 1' }],
      ['/api/v0/chat/completion/proxy', { ...chat, model: 'door-chat\n' }],
      ['/v1/chat/completions', { model: 'door-chat\r\nX-Evil: 1', messages: [] }]
    ]
    for (const [path, body] of bad) {
      const answer = await rawRequest(b.api, 'POST', path, auth, JSON.stringify(body))
      assert.equal(answer.status, 400, `${path}: ${answer.body}`)
      assert.equal(answer.headers['x-evil'], undefined)
    }
    for (let i = 0; i < 3; i++) {
      const ok = await rawRequest(b.api, 'POST', '/api/v0/chat/completion/proxy', auth, JSON.stringify(chat))
      assert.equal(ok.status, 200, `the concurrency slot was released (${i}): ${ok.body}`)
    }
  })

  test('/api/v0 model calls are metered like /v1: usage charged to the key, balance and limits enforced', async () => {
    const chat = { project: 'Locked', model: 'door-chat', messages: [{ role: 'user', content: 'Hi' }] }
    const call = async (secret: string, body: unknown = chat, path = '/api/v0/chat/completion/proxy'): Promise<RawAnswer> =>
      await rawRequest(b.api, 'POST', path, { 'Content-Type': 'application/json', Authorization: `Bearer ${secret}` }, JSON.stringify(body))

    const paying = await b.call('/api/v0/keys/create', { name: 'v0-meter', balance_usd: 1 })
    assert.equal((await call(paying.body.data.secret)).status, 200)
    assert.equal((await call(paying.body.data.secret, { ...chat, stream: true })).status, 200)
    // A call is settled when its answer has ended, just after the client has it.
    const usageOf = async (): Promise<any[]> => (await b.call('/api/v0/usage', { id: paying.body.data.key.id })).body.data
    await waitFor(async () => (await usageOf())[0]?.requests === 2, 10_000, 'both calls to be recorded')
    const usage = await usageOf()
    assert.equal(usage.length, 1, JSON.stringify(usage))
    assert.ok(usage[0].promptTokens > 0 && usage[0].costMicroUsd > 0, JSON.stringify(usage))
    const balance = (await b.call('/api/v0/keys/list')).body.data.find((k: any) => k.id === paying.body.data.key.id).balanceUsd
    assert.ok(balance < 1, `charged: ${String(balance)}`)

    const broke = await b.call('/api/v0/keys/create', { name: 'v0-broke', balance_usd: 0 })
    const refused = await call(broke.body.data.secret)
    assert.equal(refused.status, 402, refused.body)

    const limited = await b.call('/api/v0/keys/create', { name: 'v0-rpm', rpm: 1 })
    assert.equal((await call(limited.body.data.secret)).status, 200)
    const second = await call(limited.body.data.secret)
    assert.equal(second.status, 429, second.body)
    assert.ok(second.headers['retry-after'] !== undefined)

    const onlyEmbed = await b.call('/api/v0/keys/create', { name: 'v0-allow', models: ['door-embed'] })
    assert.equal((await call(onlyEmbed.body.data.secret)).status, 403)
  })
})
