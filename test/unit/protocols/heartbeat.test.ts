import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { protocol } from '../../../src/proto/index.ts'
import { decodeHeartbeat, encodeHeartbeat, HEARTBEAT_MESSAGE, LEAVING_MESSAGE } from '../../../src/protocols/heartbeat-codec.ts'
import { checkTopicMessage, MAX_TOPIC_MESSAGE_BYTES } from '../../../src/protocols/heartbeat/index.ts'
import type { PubSubMessage } from '../../../src/p2p/pubsub.ts'

const author = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))
const other = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))
const projects = [{ project: 'DecentralGPT', models: [{ model: 'Llama3-70B', cid: 'gpu0', type: 0, busy: 2, available: false }] }]

const signed = (data: Uint8Array, from = author): PubSubMessage => ({ type: 'signed', from, topic: 'DeepBrainChain', data, sequenceNumber: 1n })

test('a heartbeat has the Go node\'s shape: AI_PROJECT, empty id and receiver, no model API URL', () => {
  const bytes = encodeHeartbeat({ nodeId: author.toString(), version: 'aicn/0.1.0', nodeType: 4, projects, leaving: false })
  const message = protocol.Message.decode(bytes)
  assert.equal(message.type, protocol.MessageType.AI_PROJECT)
  assert.equal(message.header?.id, '')
  assert.equal(message.header?.receiver, '')
  assert.equal(message.header?.node_id, author.toString())
  assert.equal(message.result_message, HEARTBEAT_MESSAGE)
  const res = protocol.AIProjectBody.decode(message.body).res
  assert.equal(res?.node_type, 4)
  const m = res?.projects?.[0]?.models?.[0]
  assert.equal(m?.api, '')
  assert.equal(m?.idle, 2)
  assert.equal(m?.cid, 'gpu0')
})

test('heartbeats round-trip, including our extensions', () => {
  const bytes = encodeHeartbeat({ nodeId: author.toString(), version: 'aicn/0.1.0', nodeType: 5, projects, leaving: false, intervalMs: 10_000 })
  const heartbeat = decodeHeartbeat(protocol.Message.decode(bytes))
  assert.equal(heartbeat.intervalMs, 10_000, 'the sender\'s own interval (src/registry/rhythm.ts)')
  assert.deepEqual(heartbeat.projects, projects)
  assert.equal(heartbeat.version, 'aicn/0.1.0')
  assert.equal(heartbeat.nodeType, 5)
  assert.equal(heartbeat.leaving, false)
})

test('a Go node\'s heartbeat (no extension fields) counts its models as available', () => {
  const body = protocol.AIProjectBody.encode({ res: { projects: [{ project: 'P', models: [{ model: 'm', api: 'http://127.0.0.1:1/v1', type: 1, idle: 0, cid: 'c' }] }], node_type: 6 } }).finish()
  const bytes = protocol.Message.encode({ header: { client_version: 'v0.1.5', node_id: author.toString() }, type: protocol.MessageType.AI_PROJECT, body, result_message: 'heartbeat' }).finish()
  const check = checkTopicMessage(signed(bytes))
  assert.equal(check.verdict, 'accept')
  assert.deepEqual(check.heartbeat?.projects, [{ project: 'P', models: [{ model: 'm', cid: 'c', type: 1, busy: 0, available: true }] }])
  assert.equal(check.heartbeat?.version, 'v0.1.5')
  assert.equal(check.heartbeat?.intervalMs, undefined, 'a Go node does not say its interval: it is learned')
})

test('the leaving heartbeat is empty and marked', () => {
  const bytes = encodeHeartbeat({ nodeId: author.toString(), version: 'v', nodeType: 0, projects: [], leaving: true })
  const message = protocol.Message.decode(bytes)
  assert.equal(message.result_message, LEAVING_MESSAGE)
  assert.equal(decodeHeartbeat(message).leaving, true)
})

test('the topic validator accepts a heartbeat only from the node it names', () => {
  const bytes = encodeHeartbeat({ nodeId: author.toString(), version: 'v', nodeType: 4, projects, leaving: false })
  assert.equal(checkTopicMessage(signed(bytes)).verdict, 'accept')
  const forged = checkTopicMessage(signed(bytes, other))
  assert.equal(forged.verdict, 'reject')
  assert.match(forged.reason ?? '', /another node/)
})

test('the topic validator rejects garbage, unsigned and oversized messages', () => {
  assert.equal(checkTopicMessage(signed(new Uint8Array([0xff, 0xff, 0xff]))).verdict, 'reject')
  assert.equal(checkTopicMessage({ type: 'unsigned', topic: 'DeepBrainChain', data: new Uint8Array() }).verdict, 'reject')
  assert.equal(checkTopicMessage(signed(new Uint8Array(MAX_TOPIC_MESSAGE_BYTES + 1))).verdict, 'reject')
  const noNode = encodeHeartbeat({ nodeId: '', version: 'v', nodeType: 0, projects: [], leaving: false })
  assert.equal(checkTopicMessage(signed(noNode)).verdict, 'reject')
  const wrongType = protocol.Message.encode({ header: { node_id: author.toString() }, type: protocol.MessageType.HOST_INFO }).finish()
  assert.equal(checkTopicMessage(signed(wrongType)).verdict, 'reject')
  const badBody = protocol.Message.encode({ header: { node_id: author.toString() }, type: protocol.MessageType.AI_PROJECT, body: new Uint8Array([0x0a, 0xff]) }).finish()
  assert.equal(checkTopicMessage(signed(badBody)).verdict, 'reject')
})

test('the Go node\'s broadcast requests and responses pass through untouched', () => {
  const request = protocol.Message.encode({ header: { id: 'a1b2', node_id: author.toString(), receiver: other.toString() }, type: protocol.MessageType.HOST_INFO }).finish()
  const check = checkTopicMessage(signed(request))
  assert.equal(check.verdict, 'accept')
  assert.equal(check.heartbeat, undefined)
})
