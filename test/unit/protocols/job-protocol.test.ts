// The job protocol between real libp2p nodes in this process (tcp + noise + yamux with the daemon's window
// updates, on 127.0.0.1): a requester
// A, a worker W, a second worker D with a 1 MiB request limit that is stopped mid-stream at the end, and a
// short-lived worker E for stop().
import '../../../src/core/polyfill.ts'
import { after, afterEach, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { StreamCloseEvent } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import { WholeBody } from '../../../src/core/iterables.ts'
import { DEFAULT_TIMEOUT_MS, JobKind, type JobHead, type JobResponse, type JobRunner } from '../../../src/core/job-types.ts'
import type { Host } from '../../../src/p2p/host.ts'
import { installYamuxWindowHysteresis } from '../../../src/p2p/patches/yamux-window.ts'
import { JOB_PROTOCOL, JOB_PROTOCOLS, JOB_PROTOCOL_1_0, JobProtocol } from '../../../src/protocols/job/index.ts'
import { FrameReader, MAX_JOB_MS, encodeBodyFrame, encodeFrame, requestHeadFrame } from '../../../src/protocols/job/job-frames.ts'
import { componentsOf } from '../../../src/p2p/components.ts'
import { waitFor } from '../../helpers/wait.ts'
import { hasCode } from '../../helpers/errors.ts'
import { head, once, collect, deferred } from '../../helpers/jobs.ts'

const MiB = 1024 * 1024
const encoder = new TextEncoder()
const decoder = new TextDecoder()

interface Node { host: Host, jobs: JobProtocol }

async function createNode (options: { serve?: JobRunner, maxRequestBytes?: number, idleStreamMs?: number, headTimeoutMs?: number, bodyIdleMs?: number } = {}): Promise<Node> {
  // As the daemon runs it (src/p2p/host.ts): the big uploads and the backpressure tests cover the window.
  installYamuxWindowHysteresis()
  const host = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  }) as unknown as Host
  const jobs = new JobProtocol(componentsOf(host), { log: silentLogger, maxRequestBytes: options.maxRequestBytes, idleStreamMs: options.idleStreamMs, headTimeoutMs: options.headTimeoutMs, bodyIdleMs: options.bodyIdleMs })
  if (options.serve !== undefined) {
    jobs.serveWith(options.serve)
    await jobs.start()
  }
  return { host, jobs }
}

function answer (body: AsyncIterable<Uint8Array>, extra: Partial<JobResponse> = {}): JobResponse {
  return { status: 200, contentType: 'application/octet-stream', nodeId: '', cid: 'cid-1', body, ...extra }
}

const untilAborted = async (signal: AbortSignal): Promise<void> => await new Promise((resolve) => {
  if (signal.aborted) resolve()
  else signal.addEventListener('abort', () => { resolve() }, { once: true })
})

/** Job streams open on a node: a job's stream is either kept for the next job or ends in close or abort. */
function jobStreams (node: Node): number {
  if (node.host.status !== 'started') return 0
  return node.host.getConnections().flatMap((c) => c.streams).filter((s) => JOB_PROTOCOLS.includes(s.protocol ?? '')).length
}

/** Ids of the job streams `from` holds open to `to`. */
function streamIdsTo (from: Node, to: Node): string[] {
  return from.host.getConnections(to.host.peerId).flatMap((c) => c.streams).filter((s) => s.protocol === JOB_PROTOCOL).map((s) => s.id)
}

/** Resolves once `value()` (a producer held back by backpressure) stayed the same across a few echo jobs
 * from `from` to `to`, and returns it. Each echo crosses the same TCP connection, after every frame queued
 * before it: a producer still let through would have moved on by the time the answer is back. */
async function settledValue (value: () => number, from: Node, to: Node): Promise<number> {
  let last = -1
  let steady = 0
  while (steady < 5) {
    const echoed = await from.jobs.run(to.host.peerId, { head: head('echo'), body: once(encoder.encode('barrier')) }, new AbortController().signal)
    assert.equal((await collect(echoed.body)).toString(), 'barrier')
    const now = value()
    steady = now === last ? steady + 1 : 0
    last = now
  }
  return last
}

describe('the job protocol', () => {
  /** what W's and D's execute do, by model name */
  const models = new Map<string, JobRunner>()
  const execute: JobRunner = async (request, signal) => {
    const run = models.get(request.head.model)
    if (run === undefined) throw new AicnError(ErrorCode.MODEL, `no model ${request.head.model}`, { status: 404 })
    return await run(request, signal)
  }
  let a: Node
  let w: Node
  let d: Node
  const never = new AbortController().signal
  // One signal shared by many parallel jobs here; a real caller has one per request.
  setMaxListeners(Infinity, never)

  before(async () => {
    [a, w, d] = await Promise.all([createNode(), createNode({ serve: execute }), createNode({ serve: execute, maxRequestBytes: MiB })])
    await a.host.dial(w.host.getMultiaddrs()[0])
    await a.host.dial(d.host.getMultiaddrs()[0])

    models.set('echo', async (request) => answer(once(await collect(request.body))))
    models.set('head', async (request) => answer(once(encoder.encode(JSON.stringify(request.head)))))
  })

  afterEach(async () => {
    // Only A sends jobs: every stream left open is one A keeps for later, with its worker's end of it.
    const onlyKept = (): boolean => jobStreams(a) === a.jobs.idleStreams && jobStreams(w) + jobStreams(d) === a.jobs.idleStreams
    await waitFor(onlyKept, 3_000, 'every job stream to be closed or kept idle')
  })

  after(async () => {
    await Promise.all([a, w, d].map(async (node) => {
      await node?.jobs.stop()
      await node?.host.stop()
    }))
  })

  test('a job and its answer round-trip with every head field', async () => {
    const seen: JobHead[] = []
    models.set('round-trip', async (request) => {
      seen.push(request.head)
      return answer(once(await collect(request.body)), { status: 201, contentType: 'application/json', nodeId: 'ignored', cid: 'cid-42' })
    })
    const sent = head('round-trip', { cid: 'cid-42', kind: JobKind.EMBEDDING, contentType: 'application/json; charset=utf-8', stream: false })
    const body = encoder.encode(JSON.stringify({ input: 'hello', model: 'round-trip' }))
    const response = await a.jobs.run(w.host.peerId, { head: sent, body: once(body) }, never)
    assert.equal(response.status, 201)
    assert.equal(response.contentType, 'application/json')
    assert.equal(response.nodeId, w.host.peerId.toString(), 'node_id is the worker\'s own id')
    assert.equal(response.cid, 'cid-42')
    assert.equal(response.error, undefined)
    assert.deepEqual(await collect(response.body), Buffer.from(body))
    assert.deepEqual(seen, [sent])
  })

  test('a streamed answer arrives chunk by chunk, as the model produces it', async () => {
    const gate = deferred()
    let producedSecond = false
    models.set('stream', async () => answer((async function * () {
      yield encoder.encode('data: one\n\n')
      await gate.promise
      producedSecond = true
      yield encoder.encode('data: two\n\n')
    })(), { contentType: 'text/event-stream' }))
    const response = await a.jobs.run(w.host.peerId, { head: head('stream', { stream: true }), body: once(encoder.encode('{}')) }, never)
    assert.equal(response.contentType, 'text/event-stream')
    const chunks = response.body[Symbol.asyncIterator]()
    const first = await chunks.next()
    assert.equal(decoder.decode(first.value), 'data: one\n\n')
    assert.equal(producedSecond, false, 'chunk 1 arrived before the model produced chunk 2')
    gate.resolve()
    assert.equal(decoder.decode((await chunks.next()).value), 'data: two\n\n')
    assert.equal((await chunks.next()).done, true)
  })

  test('a 20 MB upload streams through in chunks and arrives intact', async () => {
    const upload = randomBytes(20 * MiB)
    const firstSeen = deferred()
    models.set('hash', async (request) => {
      const hash = createHash('sha256')
      let chunks = 0
      let largest = 0
      let size = 0
      for await (const chunk of request.body) {
        if (chunks === 0) firstSeen.resolve()
        chunks++
        size += chunk.byteLength
        largest = Math.max(largest, chunk.byteLength)
        hash.update(chunk)
      }
      return answer(once(encoder.encode(JSON.stringify({ sha256: hash.digest('hex'), chunks, largest, size }))))
    })
    // The requester holds back the rest until the worker has seen the first chunk: a protocol that
    // buffered the whole upload would never get there.
    const body = (async function * () {
      yield upload.subarray(0, MiB)
      await firstSeen.promise
      for (let offset = MiB; offset < upload.byteLength; offset += MiB) yield upload.subarray(offset, offset + MiB)
    })()
    const response = await a.jobs.run(w.host.peerId, { head: head('hash', { kind: JobKind.IMAGE_EDIT, contentType: 'multipart/form-data; boundary=x' }), body }, never)
    const result = JSON.parse((await collect(response.body)).toString())
    assert.equal(result.size, upload.byteLength)
    assert.equal(result.sha256, createHash('sha256').update(upload).digest('hex'))
    assert.ok(result.chunks >= 20 * 16, `the worker saw ${result.chunks as number} chunks`)
    assert.ok(result.largest <= 64 * 1024, `chunks are at most 64 KiB, got ${result.largest as number}`)
  })

  test('a request body over maxRequestBytes gets a BUFFER error head', async () => {
    const response = await a.jobs.run(d.host.peerId, { head: head('echo'), body: once(randomBytes(2 * MiB)) }, never)
    assert.equal(response.status, 413)
    assert.equal(response.error?.code, ErrorCode.BUFFER)
    assert.equal(response.nodeId, d.host.peerId.toString())
    assert.equal((await collect(response.body)).byteLength, 0)
  })

  test('execute failing before it answers gives an error head with its code and status', async () => {
    models.set('refuse', async () => { throw new AicnError(ErrorCode.PARAM, 'temperature must be a number') })
    let response = await a.jobs.run(w.host.peerId, { head: head('refuse'), body: once(encoder.encode('{}')) }, never)
    assert.equal(response.status, 400)
    assert.deepEqual(response.error, { code: ErrorCode.PARAM, message: 'temperature must be a number' })
    assert.equal(response.nodeId, w.host.peerId.toString())
    assert.equal((await collect(response.body)).byteLength, 0)

    response = await a.jobs.run(w.host.peerId, { head: head('not-here'), body: once(encoder.encode('{}')) }, never)
    assert.equal(response.status, 404)
    assert.equal(response.error?.code, ErrorCode.MODEL)

    models.set('soft', async () => answer(once(encoder.encode('ignored')), { status: 503, error: { code: ErrorCode.MODEL, message: 'the model is overloaded' } }))
    response = await a.jobs.run(w.host.peerId, { head: head('soft'), body: once(encoder.encode('{}')) }, never)
    assert.equal(response.status, 503)
    assert.deepEqual(response.error, { code: ErrorCode.MODEL, message: 'the model is overloaded' })
    assert.equal((await collect(response.body)).byteLength, 0)

    models.set('crash', async () => { throw new TypeError('oops') })
    response = await a.jobs.run(w.host.peerId, { head: head('crash'), body: once(encoder.encode('{}')) }, never)
    assert.equal(response.status, 500)
    assert.deepEqual(response.error, { code: ErrorCode.INTERNAL, message: 'oops' })
  })

  test('a worker that refuses before reading an upload is heard at once, and the upload stops', async () => {
    models.set('refuse-upload', async () => { throw new AicnError(ErrorCode.UNSUPPORTED, 'no uploads here') })
    const uploadClosed = deferred()
    const endless = (async function * () {
      try {
        for (;;) yield randomBytes(64 * 1024)
      } finally {
        uploadClosed.resolve()
      }
    })()
    const response = await a.jobs.run(w.host.peerId, { head: head('refuse-upload'), body: endless }, never)
    assert.equal(response.error?.code, ErrorCode.UNSUPPORTED)
    await uploadClosed.promise
  })

  test('an answer that breaks off mid-stream makes the requester\'s iterator throw that code', async () => {
    models.set('break', async () => answer((async function * () {
      yield encoder.encode('part one')
      throw new AicnError(ErrorCode.MODEL, 'the model server died')
    })()))
    const response = await a.jobs.run(w.host.peerId, { head: head('break', { stream: true }), body: once(encoder.encode('{}')) }, never)
    const chunks = response.body[Symbol.asyncIterator]()
    assert.equal(decoder.decode((await chunks.next()).value), 'part one')
    await assert.rejects(chunks.next(), hasCode(ErrorCode.MODEL, /the model server died/))
  })

  test('the requester aborting mid-stream aborts the worker\'s execute signal', async () => {
    const workerAborted = deferred<unknown>()
    models.set('long', async (_request, signal) => answer((async function * () {
      yield encoder.encode('first')
      await untilAborted(signal)
      workerAborted.resolve(signal.reason)
      throw signal.reason
    })()))
    const client = new AbortController()
    const response = await a.jobs.run(w.host.peerId, { head: head('long', { stream: true }), body: once(encoder.encode('{}')) }, client.signal)
    const chunks = response.body[Symbol.asyncIterator]()
    assert.equal(decoder.decode((await chunks.next()).value), 'first')
    assert.equal(jobStreams(a) - a.jobs.idleStreams, 1, 'one stream per job, busy while it runs')
    client.abort()
    await assert.rejects(chunks.next(), hasCode(ErrorCode.STREAM, /cancelled/))
    const reason = await workerAborted.promise
    assert.ok(reason instanceof AicnError && reason.code === ErrorCode.STREAM)
  })

  test('the caller giving up before the answer: cancelled, or TIMEOUT when its timer fired', async () => {
    const cases = [
      { signal: () => { const c = new AbortController(); setTimeout(() => { c.abort() }, 50); return c.signal }, error: hasCode(ErrorCode.STREAM, /^cancelled$/) },
      { signal: () => AbortSignal.timeout(50), error: hasCode(ErrorCode.TIMEOUT) }
    ]
    for (const { signal, error } of cases) {
      const workerAborted = deferred()
      models.set('slow', async (_request, jobSignal) => {
        await untilAborted(jobSignal)
        workerAborted.resolve()
        throw new Error('aborted')
      })
      await assert.rejects(a.jobs.run(w.host.peerId, { head: head('slow'), body: once(encoder.encode('{}')) }, signal()), error)
      await workerAborted.promise
    }
    let called = false
    models.set('slow', async () => { called = true; throw new Error('not expected') })
    await assert.rejects(a.jobs.run(w.host.peerId, { head: head('slow'), body: once(new Uint8Array(0)) }, AbortSignal.abort()), hasCode(ErrorCode.STREAM, /^cancelled$/))
    assert.equal(called, false)
  })

  test('leaving the answer early (break, or return() before reading) aborts the worker too', async () => {
    for (const leave of ['break', 'return'] as const) {
      const workerAborted = deferred()
      models.set('long', async (_request, signal) => answer((async function * () {
        yield encoder.encode('first')
        await untilAborted(signal)
        workerAborted.resolve()
      })()))
      const response = await a.jobs.run(w.host.peerId, { head: head('long', { stream: true }), body: once(encoder.encode('{}')) }, never)
      if (leave === 'break') {
        for await (const chunk of response.body) {
          assert.equal(decoder.decode(chunk), 'first')
          break
        }
      } else {
        await response.body[Symbol.asyncIterator]().return?.()
      }
      await workerAborted.promise
    }
  })

  test('a deadline that passes while the model works gives a TIMEOUT error head', async () => {
    models.set('slow', async (_request, signal) => {
      await untilAborted(signal)
      throw new Error('the model call was aborted')
    })
    const response = await a.jobs.run(w.host.peerId, { head: head('slow', { deadline: Date.now() + 300 }), body: once(encoder.encode('{}')) }, never)
    assert.equal(response.status, 504)
    assert.equal(response.error?.code, ErrorCode.TIMEOUT)
  })

  test('backpressure: a requester that stops reading holds the model back', async () => {
    const piece = randomBytes(64 * 1024)
    let produced = 0
    models.set('flood', async () => answer((async function * () {
      for (let i = 0; i < 3200; i++) { // 200 MiB
        produced += piece.byteLength
        yield piece
      }
    })()))
    const response = await a.jobs.run(w.host.peerId, { head: head('flood', { stream: true }), body: once(encoder.encode('{}')) }, never)
    const chunks = response.body[Symbol.asyncIterator]()
    await chunks.next()
    const held = await settledValue(() => produced, a, w)
    assert.ok(held < 48 * MiB, `the model produced ${held} bytes for a requester that read one chunk`)
    await chunks.return?.()
  })

  test('backpressure: a worker that stops reading holds the upload back', async () => {
    const gate = deferred()
    models.set('stalled', async (request) => {
      for await (const chunk of request.body) {
        assert.ok(chunk.byteLength > 0)
        await gate.promise
        break
      }
      throw new AicnError(ErrorCode.PARAM, 'seen enough')
    })
    const piece = randomBytes(64 * 1024)
    let produced = 0
    const upload = (async function * () {
      for (let i = 0; i < 3200; i++) {
        produced += piece.byteLength
        yield piece
      }
    })()
    const running = a.jobs.run(w.host.peerId, { head: head('stalled'), body: upload }, never)
    const held = await settledValue(() => produced, a, w)
    assert.ok(held < 48 * MiB, `the requester sent ${held} bytes to a worker that read one chunk`)
    gate.resolve()
    assert.equal((await running).error?.code, ErrorCode.PARAM)
  })

  test('frames of an unknown kind are skipped (1.0.0: one job, the body ends at the half-close)', async () => {
    const stream = await a.host.dialProtocol(w.host.peerId, JOB_PROTOCOL_1_0)
    const reader = new FrameReader(stream, { maxFrameBytes: MiB, highWaterBytes: MiB })
    const unknown = new Uint8Array([0x02, 0x78, 0x01]) // field 15 = 1: a frame from a future version
    stream.send(Buffer.concat([unknown, encodeFrame(requestHeadFrame(head('echo'))), unknown]))
    stream.send(encodeBodyFrame(encoder.encode('hello')))
    await stream.close()
    const frames = []
    for (let frame = await reader.next(); frame !== null; frame = await reader.next()) frames.push(frame.frame)
    reader.dispose()
    assert.deepEqual(frames, ['response_head', 'body_chunk', 'end'])
  })

  test('stop() ends the jobs it is running with a STREAM error', async () => {
    const e = await createNode({ serve: execute })
    try {
      await a.host.dial(e.host.getMultiaddrs()[0])
      models.set('long', async (_request, signal) => answer((async function * () {
        yield encoder.encode('first')
        await untilAborted(signal)
        throw signal.reason
      })()))
      const response = await a.jobs.run(e.host.peerId, { head: head('long', { stream: true }), body: once(encoder.encode('{}')) }, never)
      const chunks = response.body[Symbol.asyncIterator]()
      assert.equal(decoder.decode((await chunks.next()).value), 'first')
      await e.jobs.stop()
      await assert.rejects(chunks.next(), hasCode(ErrorCode.STREAM, /is stopping/))
    } finally {
      await e.host.stop()
    }
  })

  test('a missing, past or too distant deadline is replaced', async () => {
    const deadlineOf = async (extra: Partial<JobHead>): Promise<{ before: number, deadline: number, after: number }> => {
      const before = Date.now()
      const response = await a.jobs.run(w.host.peerId, { head: head('head', extra), body: once(new Uint8Array(0)) }, never)
      const received = JSON.parse((await collect(response.body)).toString()) as JobHead
      return { before, deadline: received.deadline, after: Date.now() }
    }
    for (const deadline of [0, Date.now() - 60_000]) {
      const chat = await deadlineOf({ deadline })
      assert.ok(chat.deadline >= chat.before + DEFAULT_TIMEOUT_MS[JobKind.CHAT] && chat.deadline <= chat.after + DEFAULT_TIMEOUT_MS[JobKind.CHAT])
      const image = await deadlineOf({ deadline, kind: JobKind.IMAGE_GEN })
      assert.ok(image.deadline >= image.before + DEFAULT_TIMEOUT_MS[JobKind.IMAGE_GEN] && image.deadline <= image.after + DEFAULT_TIMEOUT_MS[JobKind.IMAGE_GEN])
    }
    const distant = await deadlineOf({ deadline: Date.now() + 3_600_000 })
    assert.ok(distant.deadline >= distant.before + MAX_JOB_MS && distant.deadline <= distant.after + MAX_JOB_MS)
  })

  test('garbage on a raw stream is cut off, and the worker keeps serving', async () => {
    const valid = encodeFrame(requestHeadFrame(head('echo')))
    const garbage = [
      new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]), // length prefix longer than any allowed frame
      new Uint8Array([0x80, 0x80, 0x80, 0x01, 0x00]), // 2 MiB frame announced
      new Uint8Array([0x03, 0x0a, 0xff, 0x01]), // undecodable protobuf
      encodeFrame({ body_chunk: new Uint8Array([1, 2, 3]) }), // body before the head
      encodeFrame({ end: { error_code: 1 } }), // a frame only a worker sends
      Buffer.concat([valid, valid]) // a second head
    ]
    for (const bytes of garbage) {
      const stream = await a.host.dialProtocol(w.host.peerId, JOB_PROTOCOL)
      const closed = new Promise<StreamCloseEvent>((resolve) => { stream.addEventListener('close', resolve, { once: true }) })
      stream.send(bytes)
      const event = await closed
      assert.ok(event.error !== undefined, `the worker reset the stream after ${Buffer.from(bytes).toString('hex')}`)
    }
    // A stream closed without a head is simply closed.
    const empty = await a.host.dialProtocol(w.host.peerId, JOB_PROTOCOL)
    const closed = new Promise<StreamCloseEvent>((resolve) => { empty.addEventListener('close', resolve, { once: true }) })
    await empty.close()
    assert.equal((await closed).error, undefined)

    const response = await a.jobs.run(w.host.peerId, { head: head('echo'), body: once(encoder.encode('still here')) }, never)
    assert.equal((await collect(response.body)).toString(), 'still here')
  })

  test('a node that does not run the protocol, or cannot be reached, gives a ROUTING error', async () => {
    await assert.rejects(w.jobs.run(a.host.peerId, { head: head('echo'), body: once(new Uint8Array(0)) }, never),
      hasCode(ErrorCode.ROUTING, /does not run jobs/))
    const nowhere = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    await assert.rejects(a.jobs.run(nowhere, { head: head('echo'), body: once(new Uint8Array(0)) }, never),
      hasCode(ErrorCode.ROUTING, /cannot reach node/))
  })

  test('50 parallel jobs all complete with their own bodies', async () => {
    const bodies = Array.from({ length: 50 }, (_, i) => randomBytes(1000 + i * 997))
    const answers = await Promise.all(bodies.map(async (body) => {
      const response = await a.jobs.run(w.host.peerId, { head: head('echo'), body: once(body) }, never)
      return await collect(response.body)
    }))
    answers.forEach((got, i) => { assert.deepEqual(got, bodies[i]) })
  })

  test('jobs one after another to the same node reuse one stream, whole bodies or streamed', async () => {
    const b = await createNode()
    try {
      await b.host.dial(w.host.getMultiaddrs()[0])
      const seen = new Set<string>()
      for (let i = 0; i < 6; i++) {
        const text = `job ${i}`
        const body = i % 2 === 0 ? new WholeBody(encoder.encode(text)) : once(encoder.encode(text))
        const response = await b.jobs.run(w.host.peerId, { head: head('echo'), body }, never)
        assert.equal((await collect(response.body)).toString(), text)
        for (const id of streamIdsTo(b, w)) seen.add(id)
      }
      assert.equal(seen.size, 1, `every job went over the same stream (${[...seen].join(', ')})`)
      // Errors leave the stream usable too.
      const refused = await b.jobs.run(w.host.peerId, { head: head('no-such-model'), body: new WholeBody(encoder.encode('{}')) }, never)
      assert.equal(refused.error?.code, ErrorCode.MODEL)
      const response = await b.jobs.run(w.host.peerId, { head: head('echo'), body: new WholeBody(encoder.encode('after')) }, never)
      assert.equal((await collect(response.body)).toString(), 'after')
      assert.deepEqual(streamIdsTo(b, w), [...seen])
    } finally {
      await b.jobs.stop()
      await b.host.stop()
    }
  })

  test('a worker that answers before reading an upload skips the rest, and the stream carries the next job', async () => {
    const refused = deferred()
    models.set('refuse-early', async () => {
      refused.resolve()
      throw new AicnError(ErrorCode.UNSUPPORTED, 'no uploads here')
    })
    // The rest of the upload only comes once the worker has refused: it answers before the body ends.
    const parts = (async function * () {
      yield randomBytes(64 * 1024)
      await refused.promise
      for (let i = 1; i < 8; i++) yield randomBytes(64 * 1024)
    })()
    const before = new Set(streamIdsTo(a, w))
    const response = await a.jobs.run(w.host.peerId, { head: head('refuse-early'), body: parts }, never)
    assert.equal(response.error?.code, ErrorCode.UNSUPPORTED)
    await waitFor(() => a.jobs.idleStreams > 0 && streamIdsTo(a, w).length === before.size + (before.size === 0 ? 1 : 0), 3_000, 'the stream to be kept')
    const next = await a.jobs.run(w.host.peerId, { head: head('echo'), body: new WholeBody(encoder.encode('next')) }, never)
    assert.equal((await collect(next.body)).toString(), 'next')
  })

  test('a kept stream that died is replaced, and the job still runs', async () => {
    const first = await a.jobs.run(w.host.peerId, { head: head('echo'), body: new WholeBody(encoder.encode('one')) }, never)
    await collect(first.body)
    const kept = w.host.getConnections(a.host.peerId).flatMap((c) => c.streams).filter((s) => s.protocol === JOB_PROTOCOL)
    assert.ok(kept.length > 0)
    for (const stream of kept) stream.abort(new Error('test: the worker drops its kept streams'))
    const response = await a.jobs.run(w.host.peerId, { head: head('echo'), body: new WholeBody(encoder.encode('two')) }, never)
    assert.equal((await collect(response.body)).toString(), 'two')
  })

  test('two jobs on one raw 1.1.0 stream, each body ended by body_end', async () => {
    const stream = await a.host.dialProtocol(w.host.peerId, JOB_PROTOCOL)
    const reader = new FrameReader(stream, { maxFrameBytes: MiB, highWaterBytes: MiB })
    const answers: string[] = []
    for (const text of ['first', 'second']) {
      stream.send(Buffer.concat([encodeFrame(requestHeadFrame(head('echo'))), encodeFrame({ body_chunk: encoder.encode(text) }), encodeFrame({ body_end: {} })]))
      const frames = []
      for (let frame = await reader.next(); frame !== null; frame = await reader.next()) {
        frames.push(frame)
        if (frame.frame === 'end') break
      }
      assert.deepEqual(frames.map((f) => f.frame), ['response_head', 'body_chunk', 'end'])
      answers.push(decoder.decode(frames[1].body_chunk ?? new Uint8Array()))
    }
    assert.deepEqual(answers, ['first', 'second'])
    await stream.close()
    assert.equal(await reader.next(), null, 'the worker closes its side after ours')
    reader.dispose()
  })

  test('a requester that never ends a body the worker answered early gets its stream reset', async () => {
    const e = await createNode({ serve: execute, headTimeoutMs: 300, bodyIdleMs: 300 })
    try {
      await a.host.dial(e.host.getMultiaddrs()[0])
      models.set('refuse-now', async () => { throw new AicnError(ErrorCode.UNSUPPORTED, 'no') })
      const stream = await a.host.dialProtocol(e.host.peerId, JOB_PROTOCOL)
      const reader = new FrameReader(stream, { maxFrameBytes: MiB, highWaterBytes: MiB })
      const closed = new Promise<StreamCloseEvent>((resolve) => { stream.addEventListener('close', resolve, { once: true }) })
      stream.send(Buffer.concat([encodeFrame(requestHeadFrame(head('refuse-now'))), encodeFrame({ body_chunk: encoder.encode('part of a body') })]))
      const answer = [(await reader.next())?.frame, (await reader.next())?.frame]
      assert.deepEqual(answer, ['response_head', 'end'])
      const event = await closed
      assert.ok(event.error !== undefined, 'the worker reset the stream')
      reader.dispose()
    } finally {
      await e.jobs.stop()
      await e.host.stop()
    }
  })

  test('an idle kept stream is closed after idleStreamMs, on both sides', async () => {
    const b = await createNode({ idleStreamMs: 200 })
    try {
      await b.host.dial(w.host.getMultiaddrs()[0])
      const response = await b.jobs.run(w.host.peerId, { head: head('echo'), body: new WholeBody(encoder.encode('x')) }, never)
      await collect(response.body)
      assert.equal(b.jobs.idleStreams, 1)
      await waitFor(() => b.jobs.idleStreams === 0 && streamIdsTo(b, w).length === 0, 5_000, 'the idle stream to close')
      await waitFor(() => w.host.getConnections(b.host.peerId).flatMap((c) => c.streams).every((s) => s.protocol !== JOB_PROTOCOL), 3_000, 'the worker\'s side to close')
    } finally {
      await b.jobs.stop()
      await b.host.stop()
    }
  })

  // The deadline is as far as a job may go (MAX_JOB_MS): only the connection going away can end the wait,
  // and a requester that missed it would hang until the test's timeout fails it.
  test('a worker node that disappears mid-stream makes the requester\'s iterator throw STREAM', { timeout: 20_000 }, async () => {
    models.set('long', async (_request, signal) => answer((async function * () {
      yield encoder.encode('first')
      await untilAborted(signal)
    })()))
    const response = await a.jobs.run(d.host.peerId, { head: head('long', { stream: true, deadline: Date.now() + MAX_JOB_MS }), body: once(encoder.encode('{}')) }, never)
    const chunks = response.body[Symbol.asyncIterator]()
    assert.equal(decoder.decode((await chunks.next()).value), 'first')
    const stopping = d.host.stop()
    await assert.rejects(chunks.next(), hasCode(ErrorCode.STREAM))
    await stopping
  })
})
