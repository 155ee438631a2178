// The Go node's protocols as libp2p services, without sockets: the chat proxy (src/compat/chat-proxy/) on
// in-memory stream pairs (test/helpers/memory-peers.ts), the broadcast RPC (src/compat/broadcast-rpc/)
// with a stub pubsub. What they register, when they listen, and what libp2p's beforeStop does. The
// protocols' own cases run on real nodes in compat-chat-proxy.test.ts and compat-broadcast.test.ts.
import '../../../src/core/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TypedEventEmitter } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ErrorCode } from '../../../src/core/errors.ts'
import { collect } from '../../../src/core/iterables.ts'
import type { JobRunner } from '../../../src/core/job-types.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import type { PubSub, PubSubEvents } from '../../../src/p2p/pubsub.ts'
import { CHAT_PROXY_PROTOCOL, ChatProxy, chatProxy } from '../../../src/compat/chat-proxy/index.ts'
import { BroadcastRpc, broadcastRpc, type BroadcastHandlers } from '../../../src/compat/broadcast-rpc/index.ts'
import { memoryPeers, runnerHeldUntilAborted } from '../../helpers/memory-peers.ts'
import { head, once } from '../../helpers/jobs.ts'

const never = new AbortController().signal

test('chat proxy as a libp2p service: start registers /chat-proxy/0.0.1, a job goes there and back, stop removes it', async () => {
  const [a, w] = await memoryPeers(2)
  const requester = new ChatProxy(a.components, { log: silentLogger })
  const worker = chatProxy({ log: silentLogger })(w.components)
  const shout: JobRunner = async (request) => {
    const text = Buffer.from(await collect(request.body, 1 << 20) ?? []).toString()
    return { status: 200, contentType: 'application/json', nodeId: '', cid: 'c1', body: once(Buffer.from(text.toUpperCase())) }
  }
  worker.serveWith(shout)
  await worker.start()
  await worker.start()
  assert.deepEqual(w.protocols(), [CHAT_PROXY_PROTOCOL])
  try {
    const response = await requester.run(w.peerId, { head: head('m'), body: once(Buffer.from('{"q":"hi"}')) }, never)
    assert.equal(response.status, 200)
    assert.equal(Buffer.from(await collect(response.body, 1 << 20) ?? []).toString(), '{"Q":"HI"}')
  } finally {
    await worker.stop()
    await requester.stop()
  }
  assert.deepEqual(w.protocols(), [])
})

test('chat proxy: beforeStop (libp2p stopping the node) ends a running job with an error its requester sees', async () => {
  const [a, w] = await memoryPeers(2)
  const requester = new ChatProxy(a.components, { log: silentLogger })
  const worker = new ChatProxy(w.components, { log: silentLogger })
  const { runner, running } = runnerHeldUntilAborted()
  worker.serveWith(runner)
  await worker.start()
  try {
    const answer = requester.run(w.peerId, { head: head('m'), body: once(Buffer.from('{}')) }, never)
    await running
    await worker.beforeStop()
    const response = await answer
    assert.equal(response.error?.code, ErrorCode.STREAM)
    assert.match(response.error?.message ?? '', /is stopping/)
    await worker.stop()
  } finally {
    await requester.stop()
  }
})

test('broadcast RPC as a libp2p service: listens on the topic from afterStart (with its handlers) to beforeStop', async () => {
  const key = await generateKeyPair('secp256k1')
  const topics = new Set<string>()
  const events = new TypedEventEmitter<PubSubEvents>()
  const listeners = (): number => events.listenerCount('message')
  const pubsub = Object.assign(events, {
    topicValidators: new Map(),
    getPeers: () => [],
    getTopics: () => [...topics],
    subscribe: (topic: string) => { topics.add(topic) },
    unsubscribe: (topic: string) => { topics.delete(topic) },
    publish: async () => ({ recipients: [] })
  }) as unknown as PubSub
  const rpc = broadcastRpc({ topic: 'T', privateKey: key, agentVersion: 'test', log: silentLogger })({ peerId: peerIdFromPrivateKey(key), pubsub })
  assert.ok(rpc instanceof BroadcastRpc)
  rpc.start()
  rpc.afterStart()
  assert.equal(listeners(), 0, 'nothing to answer with: it does not listen')
  rpc.serveWith({} as BroadcastHandlers)
  rpc.afterStart()
  assert.deepEqual([...topics], ['T'], 'it subscribes to the topic when the node has not')
  assert.equal(listeners(), 1)
  rpc.beforeStop()
  rpc.stop()
  assert.equal(listeners(), 0)
  assert.deepEqual([...topics], ['T'], 'the topic stays: heartbeats share it')
})
