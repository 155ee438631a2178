// The model client (src/models/client.ts) against a real HTTP server on 127.0.0.1: answers pass through
// as they come, with backpressure; failures, timeouts and cancellation end the call with the API's codes.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { WholeBody } from '../../../src/core/iterables.ts'
import { ModelClient, type ModelCall } from '../../../src/models/client.ts'

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

describe('ModelClient', () => {
  const client = new ModelClient()
  let server: Server
  let base: string
  let handler: Handler = (_req, res) => { res.end() }

  before(async () => {
    server = createServer((req, res) => { void handler(req, res) })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    await client.close()
    server.closeAllConnections()
    server.close()
  })

  const call = (overrides: Partial<ModelCall> = {}): ModelCall => ({
    url: `${base}/v1/chat/completions?x=1`,
    contentType: 'application/json',
    body: new WholeBody(Buffer.from('{"model":"m"}')),
    signal: new AbortController().signal,
    timeoutMs: 10_000,
    ...overrides
  })

  const text = async (body: AsyncIterable<Uint8Array>): Promise<string> => {
    const chunks: Uint8Array[] = []
    for await (const chunk of body) chunks.push(chunk)
    return Buffer.concat(chunks).toString()
  }

  const readAll = async (req: IncomingMessage): Promise<string> => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString()
  }

  it('posts the body to the model URL and passes status, content type and answer through', async () => {
    let seen: { method?: string, url?: string, type?: string, length?: string, body: string } | undefined
    handler = async (req, res) => {
      seen = { method: req.method, url: req.url, type: req.headers['content-type'], length: req.headers['content-length'], body: await readAll(req) }
      res.writeHead(201, { 'Content-Type': 'application/json; charset=utf-8' })
      res.end('{"id":"a"}')
    }
    const answer = await client.call(call())
    assert.equal(answer.status, 201)
    assert.equal(answer.contentType, 'application/json; charset=utf-8')
    assert.equal(await text(answer.body), '{"id":"a"}')
    assert.deepEqual(seen, { method: 'POST', url: '/v1/chat/completions?x=1', type: 'application/json', length: '13', body: '{"model":"m"}' })
  })

  it('streams an upload that arrives in chunks', async () => {
    handler = async (req, res) => { res.end(`${req.headers['transfer-encoding']}:${(await readAll(req)).length}`) }
    async function * upload (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 5; i++) yield new Uint8Array(100_000).fill(i)
    }
    const answer = await client.call(call({ body: upload(), contentType: 'multipart/form-data; boundary=x' }))
    assert.equal(await text(answer.body), 'chunked:500000')
  })

  it('hands over each chunk as soon as the model sends it', async () => {
    let sendSecond!: () => void
    const secondAllowed = new Promise<void>((resolve) => { sendSecond = resolve })
    handler = async (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' })
      res.write('data: 1\n\n')
      await secondAllowed
      res.end('data: [DONE]\n\n')
    }
    const answer = await client.call(call())
    const chunks = answer.body[Symbol.asyncIterator]()
    assert.equal(Buffer.from((await chunks.next()).value).toString(), 'data: 1\n\n', 'the first chunk comes before the second is even sent')
    sendSecond()
    assert.equal(Buffer.from((await chunks.next()).value).toString(), 'data: [DONE]\n\n')
    assert.equal((await chunks.next()).done, true)
  })

  it('stops reading the socket while the answer is not read (backpressure), and loses nothing', async () => {
    const total = 32 * 1024 * 1024
    let blocked = false
    let written = 0
    let onBlocked!: () => void
    const blockedSeen = new Promise<void>((resolve) => { onBlocked = resolve })
    handler = async (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' })
      const chunk = Buffer.alloc(64 * 1024, 7)
      while (written < total) {
        written += chunk.length
        if (!res.write(chunk)) {
          blocked = true
          onBlocked()
          await once(res, 'drain')
        }
      }
      res.end()
    }
    const answer = await client.call(call())
    await blockedSeen
    assert.ok(blocked && written < total, `the model had to wait (wrote ${written} of ${total} bytes unread)`)
    let received = 0
    for await (const chunk of answer.body) received += chunk.byteLength
    assert.equal(received, total)
  })

  it('passes a model error status and body through', async () => {
    handler = (_req, res) => {
      res.writeHead(429, { 'Content-Type': 'application/json' })
      res.end('{"error":{"message":"slow down"}}')
    }
    const answer = await client.call(call())
    assert.equal(answer.status, 429)
    assert.equal(await text(answer.body), '{"error":{"message":"slow down"}}')
  })

  it('reports an unreachable model server and a malformed address as model errors', async () => {
    const closed = createServer()
    closed.listen(0, '127.0.0.1')
    await once(closed, 'listening')
    const port = (closed.address() as AddressInfo).port
    closed.close()
    await assert.rejects(client.call(call({ url: `http://127.0.0.1:${port}/v1` })), (err: AicnError) => {
      assert.equal(err.code, ErrorCode.MODEL)
      assert.equal(err.status, 502)
      assert.match(err.message, /unreachable: ECONNREFUSED/)
      return true
    })
    await assert.rejects(client.call(call({ url: 'not a url' })), { code: ErrorCode.MODEL })
  })

  it('times out a model that does not answer, and one that stops halfway', async () => {
    handler = () => {} // never answers
    await assert.rejects(client.call(call({ timeoutMs: 200 })), (err: AicnError) => {
      assert.equal(err.code, ErrorCode.TIMEOUT)
      assert.match(err.message, /did not answer in time/)
      return true
    })
    handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' })
      res.write('data: 1\n\n') // and nothing more
    }
    const answer = await client.call(call({ timeoutMs: 300 }))
    await assert.rejects(text(answer.body), (err: AicnError) => {
      assert.equal(err.code, ErrorCode.TIMEOUT)
      assert.match(err.message, /did not finish before the job's deadline/)
      return true
    })
  })

  it('cancels the call when the job is aborted, before and after the answer started', async () => {
    let closedByClient!: () => void
    let closed = new Promise<void>((resolve) => { closedByClient = resolve })
    let onArrived!: () => void
    const arrived = new Promise<void>((resolve) => { onArrived = resolve })
    handler = (_req, res) => { res.on('close', () => { closedByClient() }); onArrived() }
    const early = new AbortController()
    const pending = client.call(call({ signal: early.signal }))
    await arrived // the request reached the model server, which does not answer
    early.abort(new AicnError(ErrorCode.STREAM, 'the requester went away'))
    await assert.rejects(pending, { code: ErrorCode.STREAM, message: 'the requester went away' })
    await closed

    closed = new Promise<void>((resolve) => { closedByClient = resolve })
    handler = (_req, res) => {
      res.on('close', () => { closedByClient() })
      res.writeHead(200, { 'Content-Type': 'text/event-stream' })
      res.write('data: 1\n\n')
    }
    const late = new AbortController()
    const answer = await client.call(call({ signal: late.signal }))
    const chunks = answer.body[Symbol.asyncIterator]()
    await chunks.next()
    late.abort(new Error('client disconnected'))
    await assert.rejects(chunks.next(), /client disconnected/)
    await closed
  })

  it('ends the call when the answer is abandoned', async () => {
    let closedBy!: (who: 'server' | 'client') => void
    const closed = new Promise<'server' | 'client'>((resolve) => { closedBy = resolve })
    handler = (_req, res) => {
      res.on('close', () => { closedBy(res.writableEnded ? 'server' : 'client') })
      res.writeHead(200, { 'Content-Type': 'text/event-stream' })
      res.write('data: 1\n\n')
    }
    const answer = await client.call(call())
    let first: string | undefined
    for await (const chunk of answer.body) { first = Buffer.from(chunk).toString(); break } // return() after the first chunk
    assert.equal(first, 'data: 1\n\n')
    assert.equal(await closed, 'client', 'the model server saw the connection closed before it ended its answer')
  })

  it('refuses a call whose job was already cancelled, without contacting the model', async () => {
    let contacted = 0
    handler = (_req, res) => { contacted++; res.end() }
    const controller = new AbortController()
    controller.abort(new AicnError(ErrorCode.TIMEOUT, 'too late'))
    await assert.rejects(client.call(call({ signal: controller.signal })), { code: ErrorCode.TIMEOUT, message: 'too late' })
    assert.equal(contacted, 0)
    // A call made afterwards reaches the model server, and is the only one that did.
    await text((await client.call(call())).body)
    assert.equal(contacted, 1)
  })
})
