// A hostile requester against the job protocol and the chat-proxy server, in process on 127.0.0.1: the
// per-peer budgets (src/p2p/peer-budget.ts), the frame and body-progress deadlines, and a worker
// that lies about who it is. Small limits keep every flood small; waits are polls with a deadline.
import '../../../src/core/polyfill.ts'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { Stream, StreamCloseEvent } from '@libp2p/interface'
import { silentLogger } from '../../../src/core/logger.ts'
import type { JobRunner } from '../../../src/core/job-types.ts'
import type { Host } from '../../../src/p2p/host.ts'
import { installYamuxWindowHysteresis } from '../../../src/p2p/patches/yamux-window.ts'
import { JOB_PROTOCOL, JobProtocol } from '../../../src/protocols/job/index.ts'
import { encodeBodyFrame, encodeFrame, requestHeadFrame } from '../../../src/protocols/job/job-frames.ts'
import { PeerBudgets } from '../../../src/p2p/peer-budget.ts'
import { CHAT_PROXY_PROTOCOL, ChatProxy } from '../../../src/compat/chat-proxy/index.ts'
import { RPC_PROTOCOL, RpcService } from '../../../src/protocols/rpc/index.ts'
import { componentsOf } from '../../../src/p2p/components.ts'
import { waitFor } from '../../helpers/wait.ts'
import { head } from '../../helpers/jobs.ts'

const KiB = 1024
const MiB = 1024 * KiB

async function createHost (): Promise<Host> {
  installYamuxWindowHysteresis()
  return await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
    connectionManager: { inboundConnectionThreshold: 1000 }
  }) as unknown as Host
}

/** Echoes the request body. */
const echo: JobRunner = async (request) => {
  const chunks: Uint8Array[] = []
  for await (const chunk of request.body) chunks.push(chunk)
  return { status: 200, contentType: 'application/json', nodeId: '', cid: '', body: (async function * () { yield Buffer.concat(chunks) })() }
}

/** Resolves when the worker has closed its side (an answer ended) or the stream closed. */
async function ended (stream: Stream): Promise<{ error?: Error }> {
  if (stream.remoteWriteStatus !== 'writable' || stream.status !== 'open') return { error: stream.status === 'open' || stream.status === 'closed' ? undefined : new Error(stream.status) }
  return await new Promise((resolve) => {
    stream.addEventListener('remoteCloseWrite', () => { resolve({}) }, { once: true })
    stream.addEventListener('close', (evt: StreamCloseEvent) => { resolve({ error: evt.error }) }, { once: true })
  })
}

/** Resolves when the stream closed; `error` is set when it was reset or aborted. */
async function closed (stream: Stream): Promise<{ error?: Error }> {
  if (stream.status !== 'open') return { error: stream.status === 'closed' ? undefined : new Error(stream.status) }
  return await new Promise((resolve) => { stream.addEventListener('close', (evt: StreamCloseEvent) => { resolve({ error: evt.error }) }, { once: true }) })
}

/** The first 900 KiB of a body frame of 1000 KiB: a frame that never ends. */
function unfinishedFrame (): Uint8Array {
  const whole = encodeBodyFrame(new Uint8Array(1000 * KiB).fill(7)).subarray()
  return whole.subarray(0, 900 * KiB)
}

describe('budgets of the job protocol and the chat-proxy server', () => {
  let worker: Host, honest: Host, rogue: Host
  let jobs: JobProtocol, honestJobs: JobProtocol, proxy: ChatProxy
  let budgets: PeerBudgets
  const penalised: string[] = []

  before(async () => {
    [worker, honest, rogue] = await Promise.all([createHost(), createHost(), createHost()])
    budgets = new PeerBudgets({
      maxHeldBytesPerPeer: 4 * MiB,
      maxHeldBytes: 32 * MiB,
      maxStreamsPerPeer: 16,
      strikes: 3,
      penaltyMs: 2_000,
      onPenalty: (peer) => {
        penalised.push(peer)
        for (const conn of worker.getConnections().filter((c) => c.remotePeer.toString() === peer)) conn.close().catch(() => {})
      }
    })
    jobs = new JobProtocol(componentsOf(worker), { log: silentLogger, budgets, frameMs: 500, headTimeoutMs: 1_000, bodyIdleMs: 800 })
    proxy = new ChatProxy(componentsOf(worker), { log: silentLogger, budgets, headTimeoutMs: 1_000, bodyIdleMs: 800 })
    jobs.serveWith(echo)
    await jobs.start()
    proxy.serveWith(echo)
    await proxy.start()
    honestJobs = new JobProtocol(componentsOf(honest), { log: silentLogger })
    await honest.dial(worker.getMultiaddrs()[0])
  })

  after(async () => {
    await jobs.stop()
    await proxy.stop()
    await Promise.all([worker.stop(), honest.stop(), rogue.stop()])
  })

  const honestJob = async (): Promise<string> => {
    const response = await honestJobs.run(worker.peerId, { head: head('m'), body: (async function * () { yield Buffer.from('{"hi":1}') })() }, AbortSignal.timeout(10_000))
    const chunks: Uint8Array[] = []
    for await (const chunk of response.body) chunks.push(chunk)
    return Buffer.concat(chunks).toString()
  }

  test('an unfinished frame is reset after the frame deadline and its bytes are given back', async () => {
    const stream = await rogue.dialProtocol(worker.getMultiaddrs()[0], JOB_PROTOCOL)
    const reset = closed(stream)
    stream.send(encodeFrame(requestHeadFrame(head('m'))))
    stream.send(unfinishedFrame())
    await waitFor(() => budgets.stats().heldBytes > 0, 5_000, 'the worker to hold the unfinished frame')
    const event = await reset
    assert.ok(event.error !== undefined, 'the worker reset the stream')
    await waitFor(() => budgets.usage(rogue.peerId.toString()).streams === 0 && budgets.stats().heldBytes === 0, 5_000, 'the bytes and the stream to be given back')
  })

  test('a body that stops making progress is reset after bodyIdleMs, not at the job deadline', async () => {
    const stream = await rogue.dialProtocol(worker.getMultiaddrs()[0], JOB_PROTOCOL)
    const reset = closed(stream)
    stream.send(encodeFrame(requestHeadFrame(head('m', { deadline: Date.now() + 120_000 }))))
    stream.send(encodeBodyFrame(Buffer.from('{"partial":')))
    const event = await reset
    assert.ok(event.error !== undefined)
    await waitFor(() => budgets.usage(rogue.peerId.toString()).streams === 0, 5_000, 'the stream to be given back')
  })

  test('a flood of unfinished frames is cut at the peer budget, the peer is penalised, an honest peer is served throughout', async () => {
    const streams: Stream[] = []
    const ends: Array<Promise<{ error?: Error }>> = []
    for (let i = 0; i < 12; i++) {
      let stream: Stream
      try {
        stream = await rogue.dialProtocol(worker.getMultiaddrs()[0], JOB_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
      } catch {
        break // penalised: the connection is gone
      }
      streams.push(stream)
      ends.push(closed(stream))
      stream.send(encodeFrame(requestHeadFrame(head('m'))))
      stream.send(unfinishedFrame())
      // the worker never holds more than the peer's budget
      assert.ok(budgets.stats().heldBytes <= 4 * MiB)
    }
    assert.equal(await honestJob(), '{"hi":1}')
    await Promise.all(ends)
    await waitFor(() => penalised.includes(rogue.peerId.toString()), 5_000, 'the rogue to be penalised')
    const rogueUsage = (): string => JSON.stringify(budgets.usage(rogue.peerId.toString()))
    await waitFor(() => rogueUsage() === '{"streams":0,"heldBytes":0}', 5_000, 'every stream and byte of the rogue to be given back')
    assert.equal(await honestJob(), '{"hi":1}', 'the honest peer is unaffected')
    // While penalised, a new stream of the rogue is refused at once.
    try {
      const again = await rogue.dialProtocol(worker.getMultiaddrs()[0], JOB_PROTOCOL, { signal: AbortSignal.timeout(5_000) })
      const event = await closed(again)
      assert.ok(event.error !== undefined)
    } catch {}
    await waitFor(() => !budgets.penalised(rogue.peerId.toString()), 5_000, 'the penalty to end')
  })

  test('chat-proxy: a body that never ends is reset by the progress deadline; a huge one is refused by size', async () => {
    const stream = await rogue.dialProtocol(worker.getMultiaddrs()[0], CHAT_PROXY_PROTOCOL)
    const answered = ended(stream)
    stream.send(Buffer.from('POST /api/v0/chat/completion?cid=&model=m&project=Test HTTP/1.1\r\nHost: x\r\nContent-Length: 49999999\r\nContent-Type: application/json\r\n\r\n{"a":'))
    const chunks: Uint8Array[] = []
    stream.addEventListener('message', (evt) => { chunks.push(evt.data.subarray()) })
    const event = await answered
    // 49999999 > 8 MiB: refused with a 413 before any of it is read; the stream then ends.
    const answer = Buffer.concat(chunks).toString()
    assert.ok(answer.startsWith('HTTP/1.1 413') || event.error !== undefined, `answer: ${answer.slice(0, 80)}`)
    stream.abort(new Error('done'))

    const slow = await rogue.dialProtocol(worker.getMultiaddrs()[0], CHAT_PROXY_PROTOCOL)
    const slowEnded = closed(slow)
    slow.send(Buffer.from('POST /api/v0/chat/completion?cid=&model=m&project=Test HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"a":'))
    const slowEvent = await slowEnded
    assert.ok(slowEvent.error !== undefined, 'the stalled body was reset')
    await waitFor(() => budgets.usage(rogue.peerId.toString()).streams === 0 && budgets.stats().heldBytes === 0, 5_000, 'the stream and bytes to be given back')
  })

  test('chat-proxy: a CRLF in the cid is refused with a 400, nothing reaches the model', async () => {
    const stream = await rogue.dialProtocol(worker.getMultiaddrs()[0], CHAT_PROXY_PROTOCOL)
    const chunks: Uint8Array[] = []
    stream.addEventListener('message', (evt) => { chunks.push(evt.data.subarray()) })
    const answered = ended(stream)
    stream.send(Buffer.from('POST /api/v0/chat/completion?cid=a%0D%0AX-Evil:%201&model=m&project=Test HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}'))
    await answered
    await stream.close()
    const answer = Buffer.concat(chunks).toString()
    assert.match(answer, /^HTTP\/1\.1 400/)
    assert.match(answer, /cid contains a character that cannot go into a header/)
    assert.doesNotMatch(answer, /X-Evil/)
  })

  test('RPC: a request over 64 KiB, or one that does not come within the request deadline, is reset', async () => {
    const rpc = new RpcService(componentsOf(worker), { agentVersion: 'test', log: silentLogger, requestTimeoutMs: 500 })
    await rpc.start()
    try {
      const big = await rogue.dialProtocol(worker.getMultiaddrs()[0], RPC_PROTOCOL)
      const bigReset = closed(big)
      big.send(new Uint8Array([0x80, 0x80, 0x08])) // a length prefix of 128 KiB
      assert.ok((await bigReset).error !== undefined)
      const silent = await rogue.dialProtocol(worker.getMultiaddrs()[0], RPC_PROTOCOL)
      const silentReset = closed(silent)
      silent.send(new Uint8Array([0x10, 0x01])) // 16 bytes announced, 1 sent
      assert.ok((await silentReset).error !== undefined)
    } finally {
      await worker.unhandle(RPC_PROTOCOL)
    }
  })

  test('a worker that claims to be another node is reported as the peer it is', async () => {
    const liar = await createHost()
    try {
      await liar.handle(JOB_PROTOCOL, (stream) => {
        stream.send(Buffer.concat([
          encodeFrame({ response_head: { status: 200, content_type: 'application/json', node_id: worker.peerId.toString(), cid: 'c1' } }),
          encodeBodyFrame(Buffer.from('{"ok":true}')).subarray(),
          encodeFrame({ end: {} })
        ]))
      })
      await honest.dial(liar.getMultiaddrs()[0])
      const response = await honestJobs.run(liar.peerId, { head: head('m'), body: (async function * () { yield Buffer.from('{}') })() }, AbortSignal.timeout(10_000))
      assert.equal(response.nodeId, liar.peerId.toString())
      assert.notEqual(response.nodeId, worker.peerId.toString())
      for await (const _ of response.body) { /* read it to the end */ }
    } finally {
      await liar.stop()
    }
  })

  test('a worker that sends a CRLF cid in its answer head gets a STREAM error, not a header', async () => {
    const liar = await createHost()
    try {
      await liar.handle(JOB_PROTOCOL, (stream) => {
        stream.send(encodeFrame({ response_head: { status: 200, content_type: 'application/json', cid: 'c\r\nSet-Cookie: x=1' } }))
      })
      await honest.dial(liar.getMultiaddrs()[0])
      await assert.rejects(honestJobs.run(liar.peerId, { head: head('m'), body: (async function * () { yield Buffer.from('{}') })() }, AbortSignal.timeout(10_000)), /cid contains/)
    } finally {
      await liar.stop()
    }
  })
})
