// Property tests (fast-check) for the heartbeat codec and the topic validator: whatever bytes arrive on
// the topic, the validator answers with a verdict and never throws (a throw inside a pubsub validator
// would drop the message silently at best), and it never lets one node announce models for another.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { protocol } from '../../../src/proto/index.ts'
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat } from '../../../src/protocols/heartbeat-codec.ts'
import { isBroadcast } from '../../../src/proto/broadcast.ts'
import { checkTopicMessage, type TopicCheck } from '../../../src/protocols/heartbeat/index.ts'
import type { PubSubMessage } from '../../../src/p2p/pubsub.ts'

// Bounded so the file stays well under 5 s on a busy machine; AICN_FUZZ_RUNS raises it for long runs.
const RUNS = Number(process.env.AICN_FUZZ_RUNS ?? 500)
const VERDICTS = new Set(['accept', 'ignore', 'reject'])

// Key generation is the slow part; two authors are enough to tell "from the named node" from "forged".
const author = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))
const other = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))

const message = (data: Uint8Array, from: PeerId | undefined = author, type: 'signed' | 'unsigned' = 'signed'): PubSubMessage =>
  ({ type, from, topic: 'DeepBrainChain', data, sequenceNumber: 1n })

// Well-formed strings only (no lone surrogates): protobuf carries UTF-8, so only those can round-trip.
const text = (maxLength = 40): fc.Arbitrary<string> => fc.string({ unit: 'binary', maxLength })
const uint32 = fc.integer({ min: 0, max: 0xffff_ffff })

// Plain objects (fast-check may otherwise make null-prototype ones), so deepEqual compares like for like.
const plain = { noNullPrototype: true }
const heartbeatArb: fc.Arbitrary<Omit<Heartbeat, 'timestamp'>> = fc.record({
  nodeId: fc.oneof(fc.constant(author.toString()), text().filter((s) => s !== '')),
  version: text(),
  nodeType: uint32,
  leaving: fc.boolean(),
  projects: fc.array(fc.record({
    project: text(),
    models: fc.array(fc.record({ model: text(), cid: text(), type: uint32, busy: uint32, available: fc.boolean() }, plain), { maxLength: 4 })
  }, plain), { maxLength: 4 }),
  intervalMs: fc.integer({ min: 1, max: 0xffffffff })
}, { ...plain, requiredKeys: ['nodeId', 'version', 'nodeType', 'leaving', 'projects'] })

/** A valid heartbeat of `author`, then damaged: bits flipped, cut short, bytes appended, or all of them. */
const mutatedHeartbeat: fc.Arbitrary<Uint8Array> = fc.record({
  heartbeat: heartbeatArb.map((h) => ({ ...h, nodeId: author.toString() })),
  // Each damage is left out often enough that some messages still decode and reach the heartbeat checks.
  flips: fc.array(fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }), { maxLength: 3 }),
  cut: fc.option(fc.nat(), { freq: 2 }),
  tail: fc.option(fc.uint8Array({ minLength: 1, maxLength: 32 }), { freq: 2 })
}).map(({ heartbeat, flips, cut, tail: appended }) => {
  let bytes = Uint8Array.from(encodeHeartbeat(heartbeat))
  for (const { at, bit } of flips) if (bytes.length > 0) bytes[at % bytes.length] ^= 1 << bit
  if (cut !== null) bytes = bytes.subarray(0, cut % (bytes.length + 1))
  const tail = appended ?? new Uint8Array(0)
  const out = new Uint8Array(bytes.length + tail.length)
  out.set(bytes)
  out.set(tail, bytes.length)
  return out
})

/** The validator's promises for one message, whatever its bytes. */
function assertSound (check: TopicCheck, msg: PubSubMessage): void {
  assert.ok(VERDICTS.has(check.verdict), `verdict ${String(check.verdict)}`)
  if (check.verdict === 'reject') assert.equal(typeof check.reason, 'string')
  if (check.heartbeat !== undefined) {
    // Accepted as a heartbeat: it must be signed by the node it describes, and well typed for the view.
    assert.equal(check.verdict, 'accept')
    assert.equal(msg.type, 'signed')
    assert.equal(check.heartbeat.nodeId, msg.from?.toString())
    assertWellTyped(check.heartbeat)
  } else if (check.verdict === 'accept') {
    // Accepted but not a heartbeat: only non-broadcast messages (the Go node's requests) pass like that.
    assert.equal(isBroadcast(protocol.Message.decode(msg.data)), false)
  }
}

function assertWellTyped (h: Heartbeat): void {
  assert.equal(typeof h.nodeId, 'string')
  assert.equal(typeof h.version, 'string')
  assert.ok(Number.isInteger(h.nodeType) && h.nodeType >= 0)
  assert.ok(Number.isFinite(h.timestamp))
  assert.equal(typeof h.leaving, 'boolean')
  assert.ok(Array.isArray(h.projects))
  for (const p of h.projects) {
    assert.equal(typeof p.project, 'string')
    for (const m of p.models) {
      assert.equal(typeof m.model, 'string')
      assert.equal(typeof m.cid, 'string')
      assert.ok(Number.isInteger(m.type) && m.type >= 0)
      assert.ok(Number.isInteger(m.busy) && m.busy >= 0)
      assert.equal(typeof m.available, 'boolean')
    }
  }
}

test('arbitrary bytes: the topic validator always returns a verdict, never throws', () => {
  fc.assert(fc.property(
    fc.uint8Array({ maxLength: 512 }),
    fc.constantFrom<PeerId | undefined>(author, other, undefined),
    fc.constantFrom<'signed' | 'unsigned'>('signed', 'unsigned'),
    (data, from, type) => {
      const msg = message(data, from, type)
      assertSound(checkTopicMessage(msg), msg)
    }
  ), { numRuns: RUNS })
})

test('arbitrary protobuf Messages (valid encoding, odd content): a verdict, and heartbeats only from their node', () => {
  // Random bytes rarely decode; these always do, so the heartbeat branch gets exercised too.
  const messageArb = fc.record({
    header: fc.option(fc.record({
      client_version: text(),
      timestamp: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      id: fc.constantFrom('', 'a1b2'),
      node_id: fc.constantFrom('', author.toString(), other.toString(), 'not-a-node'),
      receiver: fc.constantFrom('', other.toString())
    }), { nil: undefined }),
    // 99 is no MessageType at all: protobufjs still encodes it, and a peer may send it.
    type: fc.constantFrom(0, 1, 2, 16, 17, 99) as fc.Arbitrary<protocol.MessageType>,
    body: fc.uint8Array({ maxLength: 64 }),
    result_code: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    result_message: fc.constantFrom('', 'heartbeat', 'leaving', 'ok')
  })
  fc.assert(fc.property(messageArb, fc.constantFrom(author, other), (fields, from) => {
    const msg = message(protocol.Message.encode(fields).finish(), from)
    assertSound(checkTopicMessage(msg), msg)
  }), { numRuns: RUNS })
})

test('mutated valid heartbeats: never a throw; accepted only when node_id is the signer', () => {
  const seen = { heartbeats: 0, rejected: 0 }
  fc.assert(fc.property(mutatedHeartbeat, fc.constantFrom(author, other), (data, from) => {
    const msg = message(data, from)
    const check = checkTopicMessage(msg)
    assertSound(check, msg)
    // Our heartbeats name `author`; signed by `other` they must never count as a heartbeat of anyone.
    if (from === other && check.heartbeat !== undefined) assert.equal(check.heartbeat.nodeId, other.toString())
    if (check.heartbeat !== undefined) seen.heartbeats++
    if (check.verdict === 'reject') seen.rejected++
  }), { numRuns: RUNS })
  // The generator must reach both sides of the validator, or the property proves little.
  if (RUNS >= 100) assert.ok(seen.heartbeats > 0 && seen.rejected > 0, JSON.stringify(seen))
})

test('decodeHeartbeat on any decodable Message: returns a well-typed heartbeat or throws an Error', () => {
  fc.assert(fc.property(mutatedHeartbeat, (data) => {
    let decoded: protocol.Message
    try {
      decoded = protocol.Message.decode(data)
    } catch {
      return // not a Message at all: the validator's first check, covered above
    }
    try {
      assertWellTyped(decodeHeartbeat(decoded))
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err
      assert.ok(err instanceof Error, `threw a non-Error: ${String(err)}`)
    }
  }), { numRuns: RUNS })
})

test('round trip: any valid heartbeat decodes to what was encoded', () => {
  fc.assert(fc.property(heartbeatArb, (heartbeat) => {
    const decoded = decodeHeartbeat(protocol.Message.decode(encodeHeartbeat(heartbeat)))
    const { timestamp, ...rest } = decoded
    assert.deepEqual(rest, heartbeat)
    assert.ok(Number.isInteger(timestamp) && timestamp > 0)
    // And the validator agrees: signed by the node it names, it is accepted as exactly this heartbeat.
    if (heartbeat.nodeId === author.toString()) {
      const check = checkTopicMessage(message(encodeHeartbeat(heartbeat), author))
      assert.equal(check.verdict, 'accept')
      assert.deepEqual({ ...check.heartbeat, timestamp: 0 }, { ...heartbeat, timestamp: 0 })
    }
  }), { numRuns: RUNS })
})
