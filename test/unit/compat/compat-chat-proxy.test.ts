// The `/chat-proxy/0.0.1` HTTP tunnel between peers on in-memory stream pairs (test/helpers/memory-peers.ts;
// no sockets: the tunnel is the same on any stream): a requester A, an aicn worker B, and a fake Go worker
// G whose raw handler reads what our client writes and answers with hand-written HTTP. Raw streams from A
// to B play the Go requester, byte for byte. Against the real Go node: test/integration/go-*.test.ts.
import '../../../src/core/polyfill.ts'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import type { Stream } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import { JobKind, type JobRequest, type JobResponse, type JobRunner } from '../../../src/core/job-types.ts'
import { write } from '../../../src/p2p/stream-write.ts'
import { CHAT_PROXY_PROTOCOL, ChatProxy, goQueryEscape } from '../../../src/compat/chat-proxy/chat-proxy.ts'
import { componentsOf } from '../../../src/p2p/components.ts'
import { MemoryNetwork, type MemoryHost } from '../../helpers/memory-peers.ts'
import { waitFor } from '../../helpers/wait.ts'
import { hasCode } from '../../helpers/errors.ts'
import { head, once, collect, deferred } from '../../helpers/jobs.ts'

const KiB = 1024
const MiB = 1024 * KiB
const encoder = new TextEncoder()
/** Where a mocked Date (node:test mock.timers) stands still in the deadline checks. */
const NOW = Date.UTC(2026, 0, 1)
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8')

type Host = MemoryHost
const network = new MemoryNetwork()

async function createHost (): Promise<Host> {
  return (await network.peer()).host
}

function answer (body: AsyncIterable<Uint8Array>, extra: Partial<JobResponse> = {}): JobResponse {
  return { status: 200, contentType: 'application/json', nodeId: '', cid: 'cid-1', body, ...extra }
}

const untilAborted = async (signal: AbortSignal): Promise<unknown> => await new Promise((resolve) => {
  if (signal.aborted) resolve(signal.reason)
  else signal.addEventListener('abort', () => { resolve(signal.reason) }, { once: true })
})

/** The request a Go node writes (docs/protocols.md, `/chat-proxy/0.0.1`): Content-Length body, and no half-close afterwards. */
function goRequest (path: string, query: string, body: string, contentType = 'application/json'): Buffer {
  return Buffer.from(`POST ${path}?${query} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nContent-Type: ${contentType}\r\n\r\n${body}`)
}

/** Everything the peer sends until it ends its side; rejects on a reset. Listens from the start: the
 * stream's async iterator misses an end that came before it was called. */
async function readToEnd (stream: Stream): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = []
    const settle = (error?: Error): void => {
      if (error !== undefined || stream.status === 'reset' || stream.status === 'aborted') reject(error ?? new Error(`stream ${stream.status}`))
      else resolve(Buffer.concat(chunks))
    }
    stream.addEventListener('message', (evt) => { chunks.push(evt.data.subarray()) })
    stream.addEventListener('end', () => { settle() })
    stream.addEventListener('close', (evt) => { settle(evt.error) })
  })
}

/** A hand-parsed HTTP/1.1 response. */
interface RawResponse { statusLine: string, headers: string[], body: Buffer, chunks: Buffer[] }

/** Parses a response the way a strict reader would: status line, header lines, then a chunked body that
 * must end in `0\r\n\r\n` with nothing after it, or a Content-Length body. */
function parseResponse (bytes: Buffer): RawResponse {
  const end = bytes.indexOf('\r\n\r\n')
  assert.ok(end > 0, 'a response head')
  const [statusLine, ...headers] = bytes.subarray(0, end).toString('latin1').split('\r\n')
  let rest = bytes.subarray(end + 4)
  const chunks: Buffer[] = []
  if (headers.includes('Transfer-Encoding: chunked')) {
    for (;;) {
      const lineEnd = rest.indexOf('\r\n')
      assert.ok(lineEnd > 0, 'a chunk size line')
      const size = parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16)
      rest = rest.subarray(lineEnd + 2)
      if (size === 0) break
      chunks.push(rest.subarray(0, size))
      assert.equal(rest.subarray(size, size + 2).toString('latin1'), '\r\n', 'CRLF after a chunk')
      rest = rest.subarray(size + 2)
    }
    assert.equal(rest.toString('latin1'), '\r\n', 'the body ends in 0\\r\\n\\r\\n')
    return { statusLine, headers, body: Buffer.concat(chunks), chunks }
  }
  const length = headers.find((h) => h.startsWith('Content-Length: '))
  assert.ok(length !== undefined, 'Content-Length or chunked')
  assert.equal(rest.byteLength, Number(length.slice('Content-Length: '.length)))
  return { statusLine, headers, body: rest, chunks: [rest] }
}

/** Tries to undo chunked coding; undefined while the body is incomplete. */
function dechunk (bytes: Buffer): Buffer | undefined {
  const chunks: Buffer[] = []
  let rest = bytes
  for (;;) {
    const lineEnd = rest.indexOf('\r\n')
    if (lineEnd < 0) return undefined
    const size = parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16)
    rest = rest.subarray(lineEnd + 2)
    if (size === 0) return rest.subarray(0, 2).toString('latin1') === '\r\n' ? Buffer.concat(chunks) : undefined
    if (rest.byteLength < size + 2) return undefined
    assert.equal(rest.subarray(size, size + 2).toString('latin1'), '\r\n')
    chunks.push(rest.subarray(0, size))
    rest = rest.subarray(size + 2)
  }
}

describe('the chat-proxy protocol', () => {
  /** what B's execute does, by model name */
  const models = new Map<string, JobRunner>()
  const execute: JobRunner = async (request, signal) => {
    const run = models.get(request.head.model)
    if (run === undefined) throw new AicnError(ErrorCode.MODEL, `no model ${request.head.model}`, { status: 404 })
    return await run(request, signal)
  }
  let a: Host
  let b: Host
  let g: Host
  /** A's client, which streams requests over 256 KiB chunked */
  let client: ChatProxy
  /** A's client with the default: Content-Length up to 8 MiB */
  let lengthClient: ChatProxy
  let server: ChatProxy
  /** what the fake Go worker received */
  const goReceived: Array<{ head: string, body: Buffer, requesterHalfClosed: boolean }> = []
  const never = new AbortController().signal

  before(async () => {
    ;[a, b, g] = await Promise.all([createHost(), createHost(), createHost()])
    client = new ChatProxy(componentsOf(a), { log: silentLogger, lengthBufferBytes: 256 * KiB })
    lengthClient = new ChatProxy(componentsOf(a), { log: silentLogger })
    server = new ChatProxy(componentsOf(b), { log: silentLogger })
    server.serveWith(execute)
    await server.start()
    await g.handle(CHAT_PROXY_PROTOCOL, (stream) => { void fakeGoWorker(stream) })
    await a.dial(b.getMultiaddrs()[0])
    await a.dial(g.getMultiaddrs()[0])
  })

  after(async () => {
    await server.stop()
    await Promise.all([a.stop(), b.stop(), g.stop()])
  })

  /** Reads one request the way Go's http.ReadRequest would, then answers by the model named in the query. */
  async function fakeGoWorker (stream: Stream): Promise<void> {
    let buf = Buffer.alloc(0)
    let request: { head: string, body: Buffer } | undefined
    for await (const chunk of stream) {
      buf = Buffer.concat([buf, chunk.subarray()])
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) continue
      const headText = buf.subarray(0, end + 4).toString('latin1')
      const rest = buf.subarray(end + 4)
      const length = /\r\nContent-Length: (\d+)\r\n/.exec(headText)
      const body = length !== null ? (rest.byteLength >= Number(length[1]) ? rest : undefined) : dechunk(rest)
      if (body !== undefined) {
        request = { head: headText, body }
        break
      }
    }
    assert.ok(request !== undefined)
    goReceived.push({ ...request, requesterHalfClosed: stream.remoteWriteStatus !== 'writable' })
    const model = /[?&]model=([^& ]*)/.exec(request.head)?.[1]
    const send = async (raw: string): Promise<void> => {
      await write(stream, Buffer.from(raw, 'latin1'))
      await stream.close()
    }
    switch (model) {
      case 'length':
        return await send('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}')
      case 'chunked':
        return await send('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n' +
          '9\r\ndata: 1\n\n\r\n9;ext=1\r\ndata: 2\n\n\r\n0\r\nX-Trailer: t\r\n\r\n')
      case 'eof':
        // No length and no chunking: the body runs until the stream ends (Go's Response.Write does this
        // when the model's length is unknown and it did not chunk).
        return await send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end')
      case 'interim':
        return await send('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok')
      case 'truncated':
        return await send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly this')
      case 'garbage':
        return await send('SSH-2.0-OpenSSH\r\n\r\n')
      default:
        // The Go receiver's answer to an unknown model: it resets the stream.
        stream.abort(new Error('no such model'))
    }
  }

  /** Plays a Go requester: writes `request`, never half-closes, reads until B ends its side. */
  async function goExchange (request: Uint8Array): Promise<Buffer> {
    const stream = await a.dialProtocol(b.peerId, CHAT_PROXY_PROTOCOL)
    const reading = readToEnd(stream)
    try {
      await write(stream, request)
    } catch (err) {
      // B reset the stream before it took the whole request: the read fails too, and is awaited here.
      await reading.catch(() => {})
      throw err
    }
    const bytes = await reading
    await stream.close()
    return bytes
  }

  /** Chat-proxy streams still open on any node (every exchange must end in close or abort). */
  function openStreams (): number {
    return [a, b, g].flatMap((node) => node.getConnections().flatMap((c) => c.streams)).filter((s) => s.protocol === CHAT_PROXY_PROTOCOL).length
  }

  test('a non-stream chat: the head reaches execute, the JSON answer comes back', async (t) => {
    // A clock that stands still: the worker's deadline (src/core/deadlines.ts) is checked exactly.
    t.mock.timers.enable({ apis: ['Date'], now: NOW })
    let seen: JobRequest['head'] | undefined
    let seenBody = ''
    models.set('echo', async (request) => {
      seen = request.head
      seenBody = text(await collect(request.body))
      return answer(once(encoder.encode(JSON.stringify({ echoed: JSON.parse(seenBody) }))))
    })
    const body = JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] })
    const response = await client.run(b.peerId, { head: head('echo', { project: 'P 1', cid: 'c/1' }), body: once(encoder.encode(body)) }, never)
    assert.equal(response.status, 200)
    assert.equal(response.contentType, 'application/json')
    assert.equal(response.nodeId, b.peerId.toString())
    assert.equal(response.cid, 'c/1')
    assert.equal(response.error, undefined)
    assert.deepEqual(JSON.parse(text(await collect(response.body))), { echoed: JSON.parse(body) })
    assert.ok(seen !== undefined)
    assert.equal(seen.kind, JobKind.CHAT)
    assert.equal(seen.project, 'P 1')
    assert.equal(seen.model, 'echo')
    assert.equal(seen.cid, 'c/1')
    assert.equal(seen.stream, false)
    assert.equal(seen.contentType, 'application/json')
    assert.equal(seen.deadline, NOW + 180_000, 'chat gets 3 minutes')
    assert.equal(seenBody, body)
  })

  test('a streamed chat: each chunk reaches the requester before the model produced the next', async () => {
    const gate = deferred()
    let producedSecond = false
    let stream: boolean | undefined
    models.set('sse', async (request) => {
      stream = request.head.stream
      return answer((async function * () {
        yield encoder.encode('data: {"n":1}\n\n')
        await gate.promise
        producedSecond = true
        yield encoder.encode('data: [DONE]\n\n')
      })(), { contentType: 'text/event-stream' })
    })
    const body = encoder.encode(JSON.stringify({ model: 'sse', messages: [], STREAM: true }))
    const response = await client.run(b.peerId, { head: head('sse', { stream: true }), body: once(body) }, never)
    assert.equal(stream, true, 'the stream flag comes from the body (keys match case-insensitively, as in Go)')
    assert.equal(response.contentType, 'text/event-stream')
    const chunks = response.body[Symbol.asyncIterator]()
    const first = await chunks.next()
    assert.equal(text(first.value), 'data: {"n":1}\n\n')
    assert.equal(producedSecond, false)
    gate.resolve()
    assert.equal(text((await chunks.next()).value), 'data: [DONE]\n\n')
    assert.equal((await chunks.next()).done, true)
  })

  test('an image edit: a multipart upload of a few MB streams through intact', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: NOW })
    const boundary = 'xYzZY'
    const image = randomBytes(3 * MiB + 123)
    const upload = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      image,
      Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na cat\r\n--${boundary}--\r\n`)
    ])
    const sha = createHash('sha256').update(upload).digest('hex')
    let firstPiece = deferred()
    models.set('edit', async (request) => {
      assert.equal(request.head.kind, JobKind.IMAGE_EDIT)
      assert.equal(request.head.deadline, NOW + 300_000, 'edits get 5 minutes')
      const hash = createHash('sha256')
      let bytes = 0
      let pieces = 0
      for await (const piece of request.body) {
        if (pieces === 0) firstPiece.resolve()
        hash.update(piece)
        bytes += piece.byteLength
        pieces++
      }
      return answer(once(encoder.encode(JSON.stringify({ sha: hash.digest('hex'), bytes, pieces, contentType: request.head.contentType }))))
    })
    const contentType = `multipart/form-data; boundary=${boundary}`
    async function * slices (waitForServer: boolean): AsyncGenerator<Uint8Array> {
      for (let offset = 0; offset < upload.byteLength; offset += 64 * KiB) {
        // Streamed, not buffered: the model has its first bytes before the client sent its last ones.
        if (waitForServer && offset >= upload.byteLength / 2) await firstPiece.promise
        yield upload.subarray(offset, offset + 64 * KiB)
      }
    }
    for (const [proxy, waitForServer] of [[client, true], [lengthClient, false]] as const) {
      firstPiece = deferred()
      const response = await proxy.run(b.peerId, { head: head('edit', { kind: JobKind.IMAGE_EDIT, contentType }), body: slices(waitForServer) }, never)
      const result = JSON.parse(text(await collect(response.body))) as { sha: string, bytes: number, pieces: number, contentType: string }
      assert.equal(result.sha, sha)
      assert.equal(result.bytes, upload.byteLength)
      assert.ok(result.pieces > 1, 'execute got the body piece by piece')
      assert.equal(result.contentType, contentType)
    }
  })

  test('an error before the answer: the status, our code and message reach an aicn requester', async () => {
    const response = await client.run(b.peerId, { head: head('missing'), body: once(encoder.encode('{}')) }, never)
    assert.equal(response.status, 404)
    assert.deepEqual(response.error, { code: ErrorCode.MODEL, message: 'no model missing' })
    assert.equal((await collect(response.body)).byteLength, 0)
  })

  test('a failure in the middle of the answer aborts the stream: the requester gets a STREAM error', async () => {
    const gate = deferred()
    models.set('breaks', async () => answer((async function * () {
      yield encoder.encode('part 1')
      await gate.promise
      throw new Error('the GPU fell over')
    })(), { contentType: 'text/event-stream' }))
    const response = await client.run(b.peerId, { head: head('breaks', { stream: true }), body: once(encoder.encode('{"stream":true}')) }, never)
    const chunks = response.body[Symbol.asyncIterator]()
    assert.equal(text((await chunks.next()).value), 'part 1')
    gate.resolve()
    await assert.rejects(chunks.next(), hasCode(ErrorCode.STREAM, /reset the chat-proxy stream in the middle of its answer/))
  })

  test('a requester that gives up (its signal, or it stops reading) ends the worker\'s job', async () => {
    let workerSignal = deferred<AbortSignal>()
    models.set('hang', async (_request, signal) => {
      workerSignal.resolve(signal)
      return answer((async function * () {
        yield encoder.encode('a')
        await untilAborted(signal)
        throw signal.reason
      })(), { contentType: 'text/event-stream' })
    })
    // The caller's signal.
    const controller = new AbortController()
    const response = await client.run(b.peerId, { head: head('hang'), body: once(encoder.encode('{}')) }, controller.signal)
    const chunks = response.body[Symbol.asyncIterator]()
    assert.equal(text((await chunks.next()).value), 'a')
    controller.abort()
    await assert.rejects(chunks.next(), hasCode(ErrorCode.STREAM, /cancelled/))
    const reason = await untilAborted(await workerSignal.promise)
    assert.ok(reason instanceof AicnError && /went away/.test(reason.message), String(reason))

    // The consumer stops reading.
    workerSignal = deferred<AbortSignal>()
    const again = await client.run(b.peerId, { head: head('hang'), body: once(encoder.encode('{}')) }, never)
    for await (const chunk of again.body) {
      assert.equal(text(chunk), 'a')
      break
    }
    await untilAborted(await workerSignal.promise)
  })

  test('the deadline ends the call with TIMEOUT and the worker\'s job with it', { timeout: 20_000 }, async () => {
    const workerSignal = deferred<AbortSignal>()
    models.set('slow', async (_request, signal) => {
      workerSignal.resolve(signal)
      await untilAborted(signal)
      throw signal.reason
    })
    // The model only stops when told to: without the deadline this would hang until the test's timeout.
    await assert.rejects(client.run(b.peerId, { head: head('slow', { deadline: Date.now() + 300 }), body: once(encoder.encode('{}')) }, never), hasCode(ErrorCode.TIMEOUT))
    await untilAborted(await workerSignal.promise)
  })

  test('Go requester → aicn worker, byte for byte: a streamed chat answer', async () => {
    models.set('sse-raw', async () => answer((async function * () {
      yield encoder.encode('data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n')
      yield new Uint8Array(0) // an empty piece must not end the chunked body
      yield encoder.encode('data: [DONE]\n\n')
    })(), { contentType: 'text/event-stream' }))
    const body = '{"model":"sse-raw","messages":[{"role":"user","content":"hi"}],"stream":true}'
    const bytes = await goExchange(goRequest('/api/v0/chat/completion', 'cid=&model=sse-raw&project=P', body))
    assert.equal(bytes.toString('latin1'),
      'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '31\r\ndata: {"choices":[{"delta":{"content":"Hel"}}]}\n\n\r\n' +
      'e\r\ndata: [DONE]\n\n\r\n' +
      '0\r\n\r\n')
    const response = parseResponse(bytes)
    assert.equal(response.statusLine, 'HTTP/1.1 200 OK')
    assert.deepEqual(response.headers, ['Content-Type: text/event-stream', 'Transfer-Encoding: chunked'])
    assert.deepEqual(response.chunks.map((c) => c.toString()), ['data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n', 'data: [DONE]\n\n'])
  })

  test('Go requester → aicn worker, byte for byte: errors are JSON with the Go code', async () => {
    const missing = parseResponse(await goExchange(goRequest('/api/v0/image/gen', 'cid=&model=nope&project=P', '{"prompt":"x"}')))
    assert.equal(missing.statusLine, 'HTTP/1.1 404 Not Found')
    // Exactly application/json: a Go chat requester decodes only that and shows code and message.
    assert.deepEqual(missing.headers, ['Content-Type: application/json', 'X-AICN-Error-Code: 1006', `Content-Length: ${missing.body.byteLength}`])
    assert.deepEqual(JSON.parse(missing.body.toString()), { code: 1007, message: 'no model nope' })

    const path = parseResponse(await goExchange(goRequest('/api/v0/nope', 'cid=&model=x&project=P', '{}')))
    assert.equal(path.statusLine, 'HTTP/1.1 404 Not Found')
    assert.equal(JSON.parse(path.body.toString()).code, 1011)

    const noProject = parseResponse(await goExchange(goRequest('/api/v0/chat/completion', 'cid=&model=x', '{}')))
    assert.equal(noProject.statusLine, 'HTTP/1.1 400 Bad Request')
    assert.equal(JSON.parse(noProject.body.toString()).code, 1001)
  })

  test('Go requester → aicn worker: the query is url-decoded, the kind follows the path', async () => {
    let seen: JobRequest['head'] | undefined
    models.set('m/1 ü', async (request) => {
      seen = request.head
      await collect(request.body)
      return answer(once(encoder.encode('{"created":1,"data":[]}')))
    })
    const query = `cid=${goQueryEscape('c+1')}&model=${goQueryEscape('m/1 ü')}&project=${goQueryEscape('P&Q')}`
    assert.equal(query, 'cid=c%2B1&model=m%2F1+%C3%BC&project=P%26Q')
    const response = parseResponse(await goExchange(goRequest('/api/v0/image/gen', query, '{"prompt":"x","response_format":"b64_json"}')))
    assert.equal(response.statusLine, 'HTTP/1.1 200 OK')
    assert.equal(response.body.toString(), '{"created":1,"data":[]}')
    assert.ok(seen !== undefined)
    assert.deepEqual([seen.kind, seen.project, seen.model, seen.cid, seen.stream], [JobKind.IMAGE_GEN, 'P&Q', 'm/1 ü', 'c+1', false])
  })

  test('Go requester → aicn worker: a request that arrives a few bytes at a time reads the same', async () => {
    models.set('echo', async (request) => answer(once(await collect(request.body))))
    const body = '{"model":"echo","messages":[{"role":"user","content":"slowly"}]}'
    const request = goRequest('/api/v0/chat/completion', 'cid=&model=echo&project=P', body)
    const stream = await a.dialProtocol(b.peerId, CHAT_PROXY_PROTOCOL)
    const reading = readToEnd(stream)
    for (let offset = 0; offset < request.byteLength; offset += 3) {
      await write(stream, request.subarray(offset, offset + 3))
      await new Promise((resolve) => setImmediate(resolve))
    }
    const response = parseResponse(await reading)
    await stream.close()
    assert.equal(response.statusLine, 'HTTP/1.1 200 OK')
    assert.equal(response.body.toString(), body)
  })

  test('stop(): running jobs end both ways', async () => {
    const other = await createHost()
    const proxy = new ChatProxy(componentsOf(other), { log: silentLogger })
    const started = deferred()
    proxy.serveWith(async (_request, signal) => {
      started.resolve()
      await untilAborted(signal)
      throw signal.reason
    })
    await proxy.start()
    try {
      await a.dial(other.getMultiaddrs()[0])
      // The worker stops: its requester hears why before the answer began.
      const running = client.run(other.peerId, { head: head('any'), body: once(encoder.encode('{}')) }, never)
      await started.promise
      await proxy.stop()
      const response = await running
      assert.equal(response.error?.code, ErrorCode.STREAM)
      assert.match(response.error?.message ?? '', /is stopping/)

      // The requester stops: its calls end at once.
      const requester = new ChatProxy(componentsOf(a), { log: silentLogger })
      const gate = deferred()
      // eslint-disable-next-line require-yield -- a body that stays open and yields nothing until the gate opens
      models.set('held', async () => answer((async function * () { await gate.promise })()))
      const held = requester.run(b.peerId, { head: head('held'), body: once(encoder.encode('{}')) }, never)
      const heldBody = (await held).body
      await requester.stop()
      await assert.rejects(collect(heldBody), hasCode(ErrorCode.STREAM, /is stopping/))
      gate.resolve()
    } finally {
      await other.stop()
    }
  })

  test('aicn requester → Go worker, byte for byte: the request as Go writes it', async () => {
    goReceived.length = 0
    const body = '{"model":"length","messages":[]}'
    const response = await client.run(g.peerId, { head: head('length', { project: 'P&Q', cid: 'c 1/ü' }), body: once(encoder.encode(body)) }, never)
    assert.equal(response.status, 200)
    assert.equal(text(await collect(response.body)), '{"ok":true}')
    assert.equal(goReceived.length, 1)
    assert.equal(goReceived[0].head,
      'POST /api/v0/chat/completion?cid=c+1%2F%C3%BC&model=length&project=P%26Q HTTP/1.1\r\n' +
      'Host: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\n' +
      `Content-Length: ${body.length}\r\nContent-Type: application/json\r\n\r\n`)
    assert.equal(goReceived[0].body.toString(), body)
    assert.equal(goReceived[0].requesterHalfClosed, false, 'like Go, the requester does not half-close')

    // An upload larger than the client buffers goes chunked, in place of Content-Length.
    const upload = randomBytes(700 * KiB)
    async function * slices (): AsyncGenerator<Uint8Array> {
      for (let offset = 0; offset < upload.byteLength; offset += 100 * KiB) yield upload.subarray(offset, offset + 100 * KiB)
    }
    const edit = await client.run(g.peerId, { head: head('length', { kind: JobKind.IMAGE_EDIT, contentType: 'multipart/form-data; boundary=b' }), body: slices() }, never)
    await collect(edit.body)
    assert.equal(goReceived[1].head,
      'POST /api/v0/image/edit?cid=&model=length&project=Test HTTP/1.1\r\n' +
      'Host: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\n' +
      'Transfer-Encoding: chunked\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n')
    assert.ok(goReceived[1].body.equals(upload))
  })

  test('aicn requester → Go worker: answers in every framing', async () => {
    const run = async (model: string, stream = false): Promise<JobResponse> =>
      await client.run(g.peerId, { head: head(model, { stream }), body: once(encoder.encode('{}')) }, never)

    const chunked = await run('chunked', true)
    assert.equal(chunked.contentType, 'text/event-stream')
    const pieces: string[] = []
    for await (const piece of chunked.body) pieces.push(text(piece))
    assert.equal(pieces.join(''), 'data: 1\n\ndata: 2\n\n')
    assert.ok(pieces.length >= 2, 'chunks are never merged')

    const eof = await run('eof')
    assert.equal(eof.contentType, 'text/plain')
    assert.equal(text(await collect(eof.body)), 'until the end')

    // A JSON answer to a stream request is returned as it is (the caller decides; the Go node dropped it).
    const json = await run('length', true)
    assert.equal(json.contentType, 'application/json')
    assert.equal(text(await collect(json.body)), '{"ok":true}')

    const interim = await run('interim')
    assert.equal(interim.status, 201)
    assert.equal(text(await collect(interim.body)), 'ok')

    const truncated = await run('truncated')
    await assert.rejects(collect(truncated.body), hasCode(ErrorCode.STREAM, /ended after 9 of 100 bytes/))
    await assert.rejects(run('garbage'), hasCode(ErrorCode.STREAM, /invalid HTTP answer/))
    await assert.rejects(run('unknown'), hasCode(ErrorCode.STREAM, /reset the chat-proxy stream instead of answering/))
  })

  test('a peer that does not speak the protocol, or cannot be reached: ROUTING 502', async () => {
    await g.unhandle(CHAT_PROXY_PROTOCOL)
    try {
      await assert.rejects(client.run(g.peerId, { head: head('length'), body: once(encoder.encode('{}')) }, never), (err: unknown) => {
        assert.ok(err instanceof AicnError)
        assert.equal(err.code, ErrorCode.ROUTING)
        assert.equal(err.status, 502)
        return true
      })
    } finally {
      await g.handle(CHAT_PROXY_PROTOCOL, (stream) => { void fakeGoWorker(stream) })
    }
  })

  test('garbage and a 1 MB head: those streams are aborted, the server answers the next request', async () => {
    const attempts = [
      randomBytes(200 * KiB),
      Buffer.from(`POST /api/v0/chat/completion?model=echo&project=P HTTP/1.1\r\nX-Big: ${'a'.repeat(MiB)}\r\n\r\n{}`),
      Buffer.from('POST /api/v0/chat/completion?model=echo&project=P HTTP/1.1\r\n folded: header\r\nContent-Length: 2\r\n\r\n{}'),
      Buffer.from('POST /api/v0/chat/completion?model=echo&project=P HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'),
      Buffer.from('POST /api/v0/chat/completion?model=echo&project=P HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
      Buffer.from('HELLO\r\n\r\n')
    ]
    for (const bytes of attempts) {
      let answered: Buffer | undefined
      try {
        answered = await goExchange(bytes)
      } catch {
        // reset by the server: expected
      }
      assert.ok(answered === undefined || !answered.toString('latin1').startsWith('HTTP/'), 'no answer to garbage')
    }
    models.set('echo', async (request) => answer(once(await collect(request.body))))
    const response = await client.run(b.peerId, { head: head('echo'), body: once(encoder.encode('{"still":"here"}')) }, never)
    assert.equal(text(await collect(response.body)), '{"still":"here"}')
  })

  test('a request body over the limit is answered 413 without reading it', async () => {
    const small = await createHost()
    const proxy = new ChatProxy(componentsOf(small), { log: silentLogger, maxRequestBytes: 1024 })
    proxy.serveWith(execute)
    await proxy.start()
    try {
      await a.dial(small.getMultiaddrs()[0])
      const big = encoder.encode(JSON.stringify({ pad: 'x'.repeat(4096) }))
      for (const proxyClient of [lengthClient, new ChatProxy(componentsOf(a), { log: silentLogger, lengthBufferBytes: 100 })]) {
        const response = await proxyClient.run(small.peerId, { head: head('echo'), body: once(big) }, never)
        assert.equal(response.status, 413)
        assert.equal(response.error?.code, ErrorCode.BUFFER)
      }
    } finally {
      await proxy.stop()
      await small.stop()
    }
  })

  test('every exchange closed its stream', async () => {
    await waitFor(() => openStreams() === 0, 5_000, 'chat-proxy streams to close')
  })
})
