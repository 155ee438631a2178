import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { connect } from 'node:net'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import type { Logger } from '../../../src/core/logger.ts'
import { HttpServer, ok, raw, text, type Route } from '../../../src/api/index.ts'

interface LogLine { level: number, msg: string, err?: { stack?: string, message?: string } }

function capturingLogger (): { logger: Logger, lines: LogLine[] } {
  const lines: LogLine[] = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as LogLine)
      cb()
    }
  })
  return { logger: pino<never>({ level: 'debug' }, sink), lines }
}

/** POSTs a body over a raw connection; fetch cannot send a body without content-length. */
async function rawPost (url: string, path: string, chunks: Buffer[], headers: Record<string, string> = {}): Promise<{ status: number, body: string, connection?: string }> {
  return await new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }) })
    })
    req.on('error', reject)
    // Keep writing until the server answers; errors from writing into a closed socket are expected.
    let i = 0
    const writeNext = (): void => {
      if (i >= chunks.length) { req.end(); return }
      req.write(chunks[i++], (err) => { if (err == null) setImmediate(writeNext) })
    }
    writeNext()
  })
}

/** Larger than loopback's socket buffers, so that a reset could cut it short. */
const BIG_ANSWER = 4 * 1024 * 1024

/** Sends `head` and `body` on a raw connection and reads until the server closes it. */
async function rawExchange (url: string, head: string, body: Buffer): Promise<Buffer> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => {
      socket.write(head)
      socket.write(body)
    })
    const received: Buffer[] = []
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    socket.on('close', () => { resolve(Buffer.concat(received)) })
    socket.on('error', reject)
  })
}

describe('HttpServer', () => {
  const registry = new Registry()
  const { logger, lines } = capturingLogger()
  let server: HttpServer
  let url: string
  let aborted: (reason: unknown) => void
  const abortSeen = new Promise<unknown>((resolve) => { aborted = resolve })
  let handlerStarted: () => void
  const handlerStartedPromise = new Promise<void>((resolve) => { handlerStarted = resolve })

  const routes: Route[] = [
    { path: '/api/v0/id', methods: ['GET', 'POST'], handler: async () => raw({ peer_id: 'p1' }) },
    { path: '/api/v0/peers', methods: ['GET'], handler: async () => ok(['a', 'b']) },
    { path: '/api/v0/empty', methods: ['POST'], handler: async () => ok() },
    {
      path: '/api/v0/echo',
      methods: ['GET', 'POST'],
      handler: async ({ params }) => ok({ node_id: params.string('node_id', { required: true }), n: params.int('n', { default: 1 }), body: params.body ?? null })
    },
    { path: '/api/v0/boom', methods: ['GET'], handler: async () => { throw new Error('secret internals') } },
    { path: '/api/v0/denied', methods: ['GET'], handler: async () => { throw new AicnError(ErrorCode.PERMISSION, 'not for you') } },
    { path: '/api/v0/busy', methods: ['GET'], handler: async () => { throw new AicnError(ErrorCode.NO_NODE) } },
    { path: '/metrics', methods: ['GET'], handler: async () => text(await registry.metrics(), registry.contentType) },
    { path: '/api/v0/big', methods: ['GET'], handler: async () => text('x'.repeat(BIG_ANSWER), 'text/plain') },
    {
      path: '/api/v0/wait',
      methods: ['POST'],
      handler: async ({ signal }) => {
        handlerStarted()
        await new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => { aborted(signal.reason); resolve() }, { once: true })
        })
        return ok()
      }
    }
  ]

  before(async () => {
    server = new HttpServer({ routes, logger, registry, bodyLimitBytes: 1024 * 1024, bodyIdleMs: 300 })
    url = (await server.listen('127.0.0.1:0')).url
  })
  after(async () => { await server.close(1000) })

  it('answers the envelope as JSON', async () => {
    const res = await fetch(`${url}/api/v0/peers`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8')
    assert.deepEqual(await res.json(), { code: 0, message: 'ok', data: ['a', 'b'] })
    const empty = await fetch(`${url}/api/v0/empty`, { method: 'POST' })
    assert.deepEqual(await empty.json(), { code: 0, message: 'ok' })
  })

  it('answers raw replies as bare JSON', async () => {
    const res = await fetch(`${url}/api/v0/id`)
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { peer_id: 'p1' })
  })

  it('reads params from the body and the query, keys in any case', async () => {
    const body = await fetch(`${url}/api/v0/echo?n=5`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"Node_ID":"x"}' })
    assert.deepEqual(await body.json(), { code: 0, message: 'ok', data: { node_id: 'x', n: 5, body: { Node_ID: 'x' } } })
    const query = await fetch(`${url}/api/v0/echo?NODE_ID=q`)
    assert.deepEqual((await query.json() as { data: unknown }).data, { node_id: 'q', n: 1, body: null })
    // curl -d sends x-www-form-urlencoded; the Go node ignored Content-Type, so do we.
    const form = await fetch(`${url}/api/v0/echo`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: '{"node_id":"f"}' })
    assert.equal((await form.json() as { data: { node_id: string } }).data.node_id, 'f')
  })

  it('answers 400/1001 for missing and mistyped params', async () => {
    const missing = await fetch(`${url}/api/v0/echo`, { method: 'POST', body: '{}' })
    assert.equal(missing.status, 400)
    assert.deepEqual(await missing.json(), { code: 1001, message: 'missing field "node_id"' })
    const typed = await fetch(`${url}/api/v0/echo`, { method: 'POST', body: '{"node_id":1}' })
    assert.deepEqual(await typed.json(), { code: 1001, message: 'field "node_id" must be a string' })
    const int = await fetch(`${url}/api/v0/echo?node_id=a&n=x`)
    assert.deepEqual(await int.json(), { code: 1001, message: 'field "n" must be an integer' })
  })

  it('answers 400/1002 for malformed JSON and non-object bodies', async () => {
    const bad = await fetch(`${url}/api/v0/echo`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"node_id":' })
    assert.equal(bad.status, 400)
    const badBody = await bad.json() as { code: number, message: string }
    assert.equal(badBody.code, 1002)
    assert.match(badBody.message, /^malformed JSON body: /)
    for (const body of ['[1]', '"x"']) {
      const res = await fetch(`${url}/api/v0/echo`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body })
      assert.equal(res.status, 400)
      assert.deepEqual(await res.json(), { code: 1002, message: 'JSON body must be an object' })
    }
  })

  it('refuses an oversized body with 413 and keeps serving', async () => {
    const big = JSON.stringify({ node_id: 'x'.repeat(2 * 1024 * 1024) })
    const res = await fetch(`${url}/api/v0/echo`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: big })
    assert.equal(res.status, 413)
    assert.deepEqual(await res.json(), { code: 1008, message: 'request body exceeds 1048576 bytes' })

    // Without Content-Length (chunked) the limit is found while reading.
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    const chunked = await rawPost(url, '/api/v0/echo', Array.from({ length: 40 }, () => chunk))
    assert.equal(chunked.status, 413)
    assert.equal(chunked.connection, 'close')
    assert.deepEqual(JSON.parse(chunked.body), { code: 1008, message: 'request body exceeds 1048576 bytes' })

    const after = await fetch(`${url}/api/v0/id`)
    assert.equal(after.status, 200)
  })

  it('answers 404 for unknown paths and 405 with Allow for wrong methods', async () => {
    const nope = await fetch(`${url}/api/v0/nope?x=1`)
    assert.equal(nope.status, 404)
    assert.deepEqual(await nope.json(), { code: 1010, message: 'no such endpoint: GET /api/v0/nope' })

    const put = await fetch(`${url}/api/v0/id`, { method: 'PUT' })
    assert.equal(put.status, 405)
    assert.equal(put.headers.get('allow'), 'HEAD, GET, POST')
    assert.deepEqual(await put.json(), { code: 1010, message: 'method PUT not allowed on /api/v0/id; use HEAD, GET, POST' })

    const post = await fetch(`${url}/api/v0/peers`, { method: 'POST', body: '{}' })
    assert.equal(post.status, 405)
    assert.equal(post.headers.get('allow'), 'HEAD, GET')
  })

  it('tolerates a trailing slash', async () => {
    const res = await fetch(`${url}/api/v0/id/`)
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { peer_id: 'p1' })
  })

  it('hides plain errors behind 500/5000, logs the stack, and keeps serving', async () => {
    const res = await fetch(`${url}/api/v0/boom`)
    assert.equal(res.status, 500)
    const body = await res.text()
    assert.deepEqual(JSON.parse(body), { code: 5000, message: 'internal error' })
    assert.doesNotMatch(body, /secret|at /)
    const logged = lines.find((l) => l.level === 50 && l.err?.message === 'secret internals')
    assert.ok(logged?.err?.stack?.includes('http-server.test'), 'stack logged at error level')
    assert.equal((await fetch(`${url}/api/v0/id`)).status, 200)
  })

  it('passes the status and message of an AicnError', async () => {
    const denied = await fetch(`${url}/api/v0/denied`)
    assert.equal(denied.status, 403)
    assert.deepEqual(await denied.json(), { code: 1009, message: 'not for you' })
    const busy = await fetch(`${url}/api/v0/busy`)
    assert.equal(busy.status, 503)
    assert.deepEqual(await busy.json(), { code: 1016, message: 'No node serves this model' })
  })

  it('aborts the signal when the client goes away', { timeout: 10_000 }, async () => {
    const controller = new AbortController()
    const pending = fetch(`${url}/api/v0/wait`, { method: 'POST', signal: controller.signal }).catch((err: unknown) => err)
    await handlerStartedPromise
    controller.abort()
    await pending
    // A handler that never sees the abort leaves this waiting until the test's timeout fails it.
    const reason = await abortSeen
    assert.ok(reason instanceof Error && reason.message === 'client disconnected', String(reason))
  })

  it('takes a body the route does not read off the socket, so a large answer is never cut short', async () => {
    // Node closes a connection whose request is still arriving; the unread bytes then make the kernel
    // reset it, which threw away the end of answers larger than the socket buffers.
    const body = Buffer.alloc(512 * 1024, 'b')
    for (let i = 0; i < 5; i++) {
      const head = `GET /api/v0/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`
      const answer = await rawExchange(url, head, body)
      const split = answer.indexOf('\r\n\r\n')
      assert.match(answer.subarray(0, split).toString(), /^HTTP\/1\.1 200 /)
      assert.equal(answer.length - split - 4, BIG_ANSWER, `the whole answer arrived (try ${i + 1})`)
    }
    const tooBig = await rawExchange(url, `GET /api/v0/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${2 * 1024 * 1024}\r\nConnection: close\r\n\r\n`, Buffer.alloc(0))
    assert.match(tooBig.toString(), /^HTTP\/1\.1 413 /)
    // A body announced and never sent does not hold the answer back for long (the client half-closes
    // only after it has the answer, so an answer here proves the server did not wait for the body).
    const stalled = await new Promise<string>((resolve, reject) => {
      const { hostname, port } = new URL(url)
      const socket = connect({ host: hostname, port: Number(port) }, () => {
        socket.write('GET /api/v0/peers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nonly part')
      })
      let received = ''
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString()
        if (received.includes('"code":0')) { socket.destroy(); resolve(received) }
      })
      socket.on('error', reject)
    })
    assert.match(stalled, /^HTTP\/1\.1 200 /)
  })

  it('answers 408 to a JSON body that stops arriving, and keeps serving', async () => {
    // Announced (chunked, or a Content-Length) and never finished, with the connection held open: without
    // a limit the server would wait for the 5-minute request timeout (a fuzz finding).
    for (const framing of ['Transfer-Encoding: chunked\r\n\r\n', 'Content-Length: 20\r\n\r\n{"node_id":']) {
      const answer = await new Promise<string>((resolve, reject) => {
        const { hostname, port } = new URL(url)
        const socket = connect({ host: hostname, port: Number(port) }, () => {
          socket.write(`POST /api/v0/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${framing}`)
        })
        let received = ''
        socket.on('data', (chunk: Buffer) => { received += chunk.toString() })
        socket.on('close', () => { resolve(received) })
        socket.on('error', reject)
      })
      assert.match(answer, /^HTTP\/1\.1 408 /, framing)
      assert.match(answer, /Connection: close/i)
      assert.match(answer, /"code":1002,"message":"the request body stopped arriving/)
    }
    const after = await fetch(`${url}/api/v0/echo`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"node_id":"x"}' })
    assert.equal(after.status, 200)
  })

  it('answers 400 to malformed HTTP and keeps serving', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(url).port), '127.0.0.1', () => { socket.write('THIS IS NOT HTTP\r\n\r\n') })
      let data = ''
      socket.setEncoding('utf8')
      socket.on('data', (c: string) => { data += c })
      socket.on('close', () => { resolve(data) })
      socket.on('error', reject)
    })
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/)
    assert.equal((await fetch(`${url}/api/v0/id`)).status, 200)
  })

  it('counts requests by route pattern, not URL', async () => {
    await fetch(`${url}/api/v0/random-${Math.random()}`)
    const res = await fetch(`${url}/metrics`)
    assert.equal(res.headers.get('content-type'), registry.contentType)
    const exposition = await res.text()
    assert.match(exposition, /aicn_http_requests_total\{method="GET",route="\/api\/v0\/id",status="200"\} \d+/)
    assert.match(exposition, /aicn_http_requests_total\{method="GET",route="unmatched",status="404"\} \d+/)
    assert.match(exposition, /aicn_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/api\/v0\/peers",status="200"\}/)
    assert.match(exposition, /aicn_http_requests_in_flight 1/) // the /metrics request itself
    assert.doesNotMatch(exposition, /random-/)
  })

  it('logs each request at debug level', () => {
    assert.ok(lines.some((l) => l.level === 20 && l.msg === 'http request' && (l as unknown as { path: string }).path === '/api/v0/peers'))
  })

  it('lets a second server share the registry', async () => {
    const other = new HttpServer({ routes: [], logger, registry })
    const { url: otherUrl } = await other.listen('127.0.0.1:0')
    assert.equal((await fetch(`${otherUrl}/x`)).status, 404)
    await other.close()
  })
})
