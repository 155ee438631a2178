import { describe, it, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { inflateSync } from 'node:zlib'
import { startFakeModelServer, parseMultipart, type FakeModelServer, type FakeModelServerOptions } from '../../../scripts/fake-model.ts'

const servers: FakeModelServer[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close()
})

async function start (options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
  const server = await startFakeModelServer(options)
  servers.push(server)
  return server
}

async function postJson (url: string, body: unknown): Promise<{ status: number, headers: Headers, json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, headers: res.headers, json: await res.json() }
}

/** Reads a server-sent event stream, noting for each `data:` payload which network read brought it. */
async function readEvents (res: Response): Promise<Array<{ data: string, read: number }>> {
  const events: Array<{ data: string, read: number }> = []
  const decoder = new TextDecoder()
  let pending = ''
  let read = 0
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    read++
    pending += decoder.decode(chunk, { stream: true })
    let end: number
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const event = pending.slice(0, end)
      pending = pending.slice(end + 2)
      assert.ok(event.startsWith('data: '), `event line: ${event}`)
      events.push({ data: event.slice('data: '.length), read })
    }
  }
  assert.equal(pending, '', 'the stream ends on an event boundary')
  return events
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** Checks signature, chunk CRCs (via a second implementation: zlib's inflate checks IDAT) and size. */
function assertPng (png: Buffer): void {
  assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE)
  assert.equal(png.toString('latin1', 12, 16), 'IHDR')
  const width = png.readUInt32BE(16)
  const height = png.readUInt32BE(20)
  assert.ok(width >= 1 && height >= 1)
  const idatAt = png.indexOf('IDAT')
  const idatLength = png.readUInt32BE(idatAt - 4)
  const pixels = inflateSync(png.subarray(idatAt + 4, idatAt + 4 + idatLength))
  assert.equal(pixels.length, height * (1 + width * 3))
  assert.equal(png.toString('latin1', png.length - 8, png.length - 4), 'IEND')
  assert.equal(png.readUInt32BE(png.length - 4), 0xae426082, 'the well-known CRC of an empty IEND chunk')
}

function multipartBody (boundary: string, parts: Array<{ name: string, filename?: string, data: Buffer | string }>): Buffer {
  const pieces: Buffer[] = []
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename !== undefined ? `; filename="${part.filename}"` : ''}`
    const type = part.filename !== undefined ? 'Content-Type: image/png\r\n' : ''
    pieces.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`), Buffer.from(part.data), Buffer.from('\r\n'))
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`))
  return Buffer.concat(pieces)
}

/** Sends a body in pieces of `piece` bytes, as separate writes. */
async function postPieces (url: string, headers: http.OutgoingHttpHeaders, body: Buffer, piece: number): Promise<{ status: number, json: any }> {
  return await new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }) })
    })
    req.on('error', reject)
    for (let at = 0; at < body.length; at += piece) req.write(body.subarray(at, at + piece))
    req.end()
  })
}

describe('fake model server: chat', () => {
  it('answers a non-streaming chat in the OpenAI shape and echoes every parameter', async () => {
    const server = await start({ tokens: ['Hi', ' there', '!'] })
    const request = {
      model: 'llama-3',
      messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'hello there world' }] }],
      stream: false,
      temperature: 0.3,
      top_p: 0.9,
      max_tokens: 5,
      stop: ['\n', '。'],
      tools: [{ type: 'function', function: { name: 'f', parameters: {} } }]
    }
    const { status, headers, json } = await postJson(`${server.url}/v1/chat/completions`, request)
    assert.equal(status, 200)
    assert.match(headers.get('content-type') ?? '', /^application\/json/)
    assert.match(json.id, /^chatcmpl-/)
    assert.equal(json.object, 'chat.completion')
    assert.ok(Number.isInteger(json.created) && Math.abs(json.created - Date.now() / 1000) < 60)
    assert.equal(json.model, 'llama-3')
    assert.deepEqual(json.choices, [{ index: 0, message: { role: 'assistant', content: 'Hi there!' }, finish_reason: 'stop' }])
    assert.deepEqual(json.usage, { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 })
    const { messages, ...params } = request
    assert.deepEqual(JSON.parse(headers.get('x-fake-params') ?? ''), params)
  })

  it('streams a chat token by token, ending with [DONE]', async () => {
    const tokens = ['one', ' two', ' three', ' four']
    const server = await start({ tokens, tokenDelayMs: 20, model: 'm' })
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ messages: [{ role: 'user', content: 'count' }], stream: true, stream_options: { include_usage: true } })
    })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'text/event-stream')
    assert.equal(res.headers.get('transfer-encoding'), 'chunked')
    const events = await readEvents(res)
    assert.equal(events.at(-1)?.data, '[DONE]')
    const all = events.slice(0, -1).map((e) => JSON.parse(e.data))
    // As OpenAI does: the usage comes last, in a chunk of its own with no choices.
    const usageChunk = all.at(-1)
    assert.deepEqual(usageChunk.choices, [])
    assert.deepEqual(usageChunk.usage, { prompt_tokens: 1, completion_tokens: 4, total_tokens: 5 })
    const chunks = all.slice(0, -1)
    assert.equal(chunks.length, tokens.length + 2)
    for (const chunk of chunks) {
      assert.equal(chunk.object, 'chat.completion.chunk')
      assert.equal(chunk.model, 'm')
      assert.equal(chunk.id, chunks[0].id)
      assert.equal(chunk.choices[0].index, 0)
    }
    assert.deepEqual(chunks[0].choices[0], { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null })
    assert.deepEqual(chunks.slice(1, -1).map((c) => c.choices[0].delta.content), tokens)
    assert.ok(chunks.slice(1, -1).every((c) => c.choices[0].finish_reason === null))
    assert.deepEqual(chunks.at(-1).choices[0], { index: 0, delta: {}, finish_reason: 'stop' })
    // Each token was flushed on its own: the first and the last arrive in different network reads,
    // and every token arrives in a later read than the one before it.
    const reads = events.slice(1, 1 + tokens.length).map((e) => e.read)
    for (let i = 1; i < reads.length; i++) assert.ok(reads[i] > reads[i - 1], `token ${i} arrived separately (reads ${reads.join(',')})`)
  })

  it('leaves usage out of a stream unless asked', async () => {
    const server = await start({ tokens: ['a'] })
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [], stream: true }) })
    const events = await readEvents(res)
    assert.equal(JSON.parse(events.at(-2)?.data ?? '').usage, undefined)
  })

  it('survives a client that leaves in the middle of a stream', { timeout: 20_000 }, async () => {
    let serverSawLeave!: () => void
    const left = new Promise<void>((resolve) => { serverSawLeave = resolve })
    // Every token after the first waits for the client to leave: the stream is cut in its middle.
    const beforeToken = async (index: number, signal: AbortSignal): Promise<void> => {
      if (index === 0) return
      if (!signal.aborted) await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
      serverSawLeave()
    }
    const server = await start({ tokens: ['a', 'b', 'c', 'd', 'e'], beforeToken })
    const controller = new AbortController()
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [], stream: true }), signal: controller.signal })
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    controller.abort()
    await left
    assert.equal(server.abortedStreams, 1)
    const { status } = await postJson(`${server.url}/v1/chat/completions`, { messages: [] })
    assert.equal(status, 200)
  })
})

describe('fake model server: completions and embeddings', () => {
  it('answers text completions, streamed or not', async () => {
    const server = await start({ tokens: ['x', 'y'] })
    const { json, headers } = await postJson(`${server.url}/v1/completions`, { model: 'c', prompt: 'say two words', max_tokens: 2 })
    assert.equal(json.object, 'text_completion')
    assert.deepEqual(json.choices, [{ text: 'xy', index: 0, logprobs: null, finish_reason: 'stop' }])
    assert.deepEqual(json.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 })
    assert.deepEqual(JSON.parse(headers.get('x-fake-params') ?? ''), { model: 'c', max_tokens: 2 })

    const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'p', stream: true }) })
    const events = await readEvents(res)
    assert.equal(events.at(-1)?.data, '[DONE]')
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data))
    assert.deepEqual(chunks.map((c) => c.choices[0].text), ['x', 'y', ''])
    assert.deepEqual(chunks.map((c) => c.choices[0].finish_reason), [null, null, 'stop'])
    assert.ok(chunks.every((c) => c.object === 'text_completion'))
  })

  it('gives deterministic embeddings', async () => {
    const server = await start()
    const a = await postJson(`${server.url}/v1/embeddings`, { model: 'e', input: 'hello world' })
    const b = await postJson(`${server.url}/v1/embeddings`, { model: 'e', input: ['hello world', 'other text'] })
    assert.equal(a.json.object, 'list')
    assert.equal(a.json.model, 'e')
    assert.deepEqual(a.json.usage, { prompt_tokens: 2, total_tokens: 2 })
    const [first] = a.json.data
    assert.equal(first.object, 'embedding')
    assert.equal(first.index, 0)
    assert.equal(first.embedding.length, 8)
    assert.ok(first.embedding.every((x: unknown) => typeof x === 'number' && Number.isFinite(x)))
    assert.deepEqual(b.json.data[0].embedding, first.embedding, 'same text, same vector')
    assert.notDeepEqual(b.json.data[1].embedding, first.embedding, 'other text, other vector')
    assert.deepEqual(b.json.data.map((d: { index: number }) => d.index), [0, 1])

    const base64 = await postJson(`${server.url}/v1/embeddings`, { input: 'hello world', encoding_format: 'base64' })
    const floats = new Float32Array(new Uint8Array(Buffer.from(base64.json.data[0].embedding, 'base64')).buffer)
    assert.deepEqual(Array.from(floats), first.embedding.map((x: number) => Math.fround(x)))
  })
})

describe('fake model server: images', () => {
  it('generates images as URLs it serves, or inline', async () => {
    const server = await start()
    const { status, json, headers } = await postJson(`${server.url}/v1/images/generations`, { prompt: 'a cat', n: 2, size: '256x256' })
    assert.equal(status, 200)
    assert.ok(Number.isInteger(json.created))
    assert.equal(json.data.length, 2)
    assert.deepEqual(JSON.parse(headers.get('x-fake-params') ?? ''), { n: 2, size: '256x256' })
    for (const item of json.data) {
      assert.ok(item.url.startsWith(`http://127.0.0.1:${server.port}/files/`) && item.url.endsWith('.png'), item.url)
      const res = await fetch(item.url)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'image/png')
      assertPng(Buffer.from(await res.arrayBuffer()))
    }
    const inline = await postJson(`${server.url}/v1/images/generations`, { prompt: 'a dog', response_format: 'b64_json' })
    assert.equal(inline.json.data.length, 1)
    assertPng(Buffer.from(inline.json.data[0].b64_json, 'base64'))

    assert.equal((await fetch(`${server.url}/files/nope.png`)).status, 404)
    const bad = await postJson(`${server.url}/v1/images/generations`, { prompt: 'x', response_format: 'gif' })
    assert.equal(bad.status, 400)
  })

  it('counts the bytes of uploaded images without needing them whole', async () => {
    const server = await start()
    const image = Buffer.alloc(300 * 1024, 7)
    const boundary = '----fake-boundary-1234'
    const body = multipartBody(boundary, [
      { name: 'prompt', data: 'make it blue' },
      { name: 'image[]', filename: 'a.png', data: image },
      { name: 'image[]', filename: 'b.png', data: image.subarray(0, 1000) },
      { name: 'mask', filename: 'mask.png', data: Buffer.alloc(10) },
      { name: 'n', data: '2' }
    ])
    const { status, json } = await postPieces(`${server.url}/v1/images/edits`,
      { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length }, body, 16 * 1024 + 3)
    assert.equal(status, 200, JSON.stringify(json))
    assert.equal(json.received_bytes, image.length + 1000)
    assert.equal(json.data.length, 2)
    for (const item of json.data) assertPng(Buffer.from(item.b64_json, 'base64'))
    assert.ok(Number.isInteger(json.created))
    assert.equal(server.requests.at(-1)?.body.length, 64 * 1024, 'recorded bodies are cut at 64 KiB')
  })

  it('reports a multipart body without an image, or without a closing boundary', async () => {
    const server = await start()
    const boundary = 'b0undary'
    const noImage = multipartBody(boundary, [{ name: 'prompt', data: 'x' }])
    const headers = { 'content-type': `multipart/form-data; boundary="${boundary}"` }
    const a = await postPieces(`${server.url}/v1/images/edits`, headers, noImage, 1024)
    assert.equal(a.status, 400)
    assert.match(a.json.error.message, /image/)
    const cut = multipartBody(boundary, [{ name: 'image', filename: 'a.png', data: 'abc' }]).subarray(0, 60)
    const b = await postPieces(`${server.url}/v1/images/edits`, headers, cut, 1024)
    assert.equal(b.status, 400)
    assert.match(b.json.error.message, /closing boundary/)
    const c = await postPieces(`${server.url}/v1/images/edits`, { 'content-type': 'application/json' }, Buffer.from('{}'), 1024)
    assert.equal(c.status, 400)
  })
})

describe('fake model server: multipart parser', () => {
  it('finds the same parts however the body is split', async () => {
    const boundary = 'XyZ'
    const body = multipartBody(boundary, [
      { name: 'prompt', data: 'hi\r\n--Xy almost a boundary' },
      { name: 'image', filename: 'a.png', data: Buffer.from('\r\n--XyY\r\n\r\nbinary\r\n') },
      { name: 'empty', data: '' }
    ])
    for (const piece of [1, 2, 3, 5, 7, 13, body.length]) {
      const got = new Map<string, Buffer[]>()
      async function * pieces (): AsyncGenerator<Buffer> {
        for (let at = 0; at < body.length; at += piece) yield body.subarray(at, at + piece)
      }
      await parseMultipart(pieces(), boundary, {
        onPart: (part) => { got.set(part.name, []) },
        onData: (part, data) => { got.get(part.name)?.push(Buffer.from(data)) }
      })
      const text = Object.fromEntries([...got].map(([k, v]) => [k, Buffer.concat(v).toString('latin1')]))
      assert.deepEqual(text, { prompt: 'hi\r\n--Xy almost a boundary', image: '\r\n--XyY\r\n\r\nbinary\r\n', empty: '' }, `pieces of ${piece}`)
    }
  })
})

describe('fake model server: errors, models and records', () => {
  it('answers every route with failWith', async () => {
    const server = await start({ failWith: { status: 503, body: { error: { message: 'overloaded', type: 'server_error' } } } })
    for (const path of ['/v1/chat/completions', '/v1/embeddings', '/nowhere']) {
      const { status, json } = await postJson(`${server.url}${path}`, { messages: [] })
      assert.equal(status, 503)
      assert.deepEqual(json, { error: { message: 'overloaded', type: 'server_error' } })
    }
    assert.equal((await fetch(`${server.url}/v1/models`)).status, 503)
    const plain = await start({ failWith: { status: 500, body: 'Internal Server Error' } })
    const res = await fetch(`${plain.url}/v1/chat/completions`, { method: 'POST', body: '{}' })
    assert.equal(res.status, 500)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/)
    assert.equal(await res.text(), 'Internal Server Error')
  })

  it('answers malformed JSON with 400 and unknown routes with 404, in the OpenAI error shape', async () => {
    const server = await start()
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: '{"messages": [' })
    assert.equal(res.status, 400)
    const json = await res.json() as any
    assert.equal(json.error.type, 'invalid_request_error')
    assert.match(json.error.message, /could not parse the JSON body/)
    const missing = await postJson(`${server.url}/v1/chat/completions`, { model: 'x' })
    assert.equal(missing.status, 400)
    assert.match(missing.json.error.message, /messages/)
    const unknown = await fetch(`${server.url}/v2/whatever`)
    assert.equal(unknown.status, 404)
    assert.deepEqual(await unknown.json(), { error: { message: 'Unknown request URL: GET /v2/whatever.', type: 'invalid_request_error', param: null, code: 'unknown_url' } })
  })

  it('lists its model and records requests', async () => {
    const server = await start({ model: 'qwen-7b' })
    const models = await (await fetch(`${server.url}/v1/models`, { headers: { 'x-test': 'yes' } })).json() as any
    assert.equal(models.object, 'list')
    assert.deepEqual(models.data.map((m: { id: string, object: string }) => [m.id, m.object]), [['qwen-7b', 'model']])
    await postJson(`${server.url}/v1/chat/completions?x=1`, { messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(server.requests.length, 2)
    const [get, post] = server.requests
    assert.equal(get.method, 'GET')
    assert.equal(get.path, '/v1/models')
    assert.equal(get.headers['x-test'], 'yes')
    assert.equal(get.body.length, 0)
    assert.equal(post.method, 'POST')
    assert.equal(post.path, '/v1/chat/completions')
    assert.deepEqual(JSON.parse(post.body.toString('utf8')), { messages: [{ role: 'user', content: 'hi' }] })
  })

  it('runs from the command line until SIGTERM', async () => {
    const script = fileURLToPath(new URL('../../../scripts/fake-model.js', import.meta.url))
    const child = spawn(process.execPath, [script, '--port', '0', '--model', 'cli-model', '--reply', 'hello there'], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const [line] = await once(child.stdout, 'data') as [Buffer]
      const url = line.toString('utf8').trim()
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
      const { json } = await postJson(`${url}/v1/chat/completions`, { messages: [] })
      assert.equal(json.choices[0].message.content, 'hello there')
      assert.equal(json.usage.completion_tokens, 2)
      child.kill('SIGTERM')
      const [code] = await once(child, 'exit')
      assert.equal(code, 0)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })
})
