// The topic's rate limits (src/p2p/topic-rate.ts) and the view-sync request budget
// (src/registry/view-sync/view-sync.ts), with a fake clock: no sleeps, no wall-clock assertions.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { messageCost, TokenBuckets, TopicRateLimiter, TOKEN_BYTES } from '../../../src/p2p/topic-rate.ts'
import { SignedHeartbeats, ViewSync } from '../../../src/registry/view-sync/index.ts'
import { limitFloodsubRates, type HeldMessage } from '../../../src/p2p/patches/topic-limit.ts'

function clock (start = 1_000_000): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

describe('TokenBuckets', () => {
  it('gives a burst, then refills at the rate', () => {
    const c = clock()
    const b = new TokenBuckets(5, 10, 100, c.now)
    for (let i = 0; i < 10; i++) assert.equal(b.take('a', 1), true)
    assert.equal(b.take('a', 1), false)
    c.advance(199)
    assert.equal(b.take('a', 1), false)
    c.advance(1)
    assert.equal(b.take('a', 1), true)
    // Another key has its own bucket.
    assert.equal(b.take('b', 10), true)
    // A refill never goes past the burst.
    c.advance(60_000)
    assert.equal(b.available('a'), 10)
  })

  it('takes a cost above the burst from a full bucket, never refusing it for ever', () => {
    const c = clock()
    const b = new TokenBuckets(1, 4, 100, c.now)
    assert.equal(b.take('a', 17), true)
    assert.equal(b.take('a', 17), false)
    c.advance(4000)
    assert.equal(b.take('a', 17), true)
  })

  it('keeps at most maxKeys buckets', () => {
    const c = clock()
    const b = new TokenBuckets(1, 2, 50, c.now)
    for (let i = 0; i < 10_000; i++) b.take(`k${i}`, 2)
    assert.ok(b.size <= 50, String(b.size))
  })
})

describe('TopicRateLimiter', () => {
  it('costs one token per started 64 KiB', () => {
    assert.equal(messageCost(0), 1)
    assert.equal(messageCost(TOKEN_BYTES), 1)
    assert.equal(messageCost(TOKEN_BYTES + 1), 2)
    assert.equal(messageCost(769_022), 12)
  })

  it('never throttles an honest node: a burst of registrations, then a heartbeat every 200 ms', () => {
    const c = clock()
    const limiter = new TopicRateLimiter({ now: c.now })
    // 40 registrations in a row (aicn keeps 200 ms between its own heartbeats; a Go node does not).
    for (let i = 0; i < 40; i++) assert.equal(limiter.admit('honest', 'honest', 2000, true), 'pass')
    c.advance(10_000)
    for (let i = 0; i < 3000; i++) {
      assert.equal(limiter.admit('honest', 'honest', 11_307, true), 'pass', `heartbeat ${i}`)
      c.advance(200)
    }
    assert.equal(limiter.penalised('honest'), false)
    assert.deepEqual({ ...limiter.stats(), penalised: 0 }, { passed: 3040, throttledAuthor: 0, throttledPeer: 0, droppedPenalised: 0, coalesced: 0, released: 0, held: 0, heldBytes: 0, penalised: 0 })
  })

  it('lets a relay forward 100 nodes\' heartbeats, each once a second', () => {
    const c = clock()
    const limiter = new TopicRateLimiter({ now: c.now })
    for (let s = 0; s < 120; s++) {
      for (let n = 0; n < 100; n++) assert.equal(limiter.admit(`node${n}`, 'relay', 5000, false), 'pass')
      c.advance(1000)
    }
    assert.equal(limiter.penalised('relay'), false)
  })

  it('holds a flooding author\'s messages, keeps only the newest and lets it through once the bucket refilled', () => {
    const c = clock()
    const limiter = new TopicRateLimiter<string>({ authorRate: 5, authorBurst: 10, now: c.now })
    let passed = 0
    // 300 a second for one second, through a relay (no strike for the relay: it is not the author).
    for (let i = 0; i < 300; i++) {
      const admission = limiter.admit('flooder', 'relay', 1000, false)
      if (admission === 'pass') passed++
      else if (admission === 'hold') limiter.hold('flooder', `message ${i}`, 1000)
      c.advance(3)
    }
    assert.ok(passed >= 10 && passed <= 16, String(passed))
    const stats = limiter.stats()
    assert.equal(stats.held, 1)
    assert.equal(stats.heldBytes, 1000)
    assert.equal(stats.throttledAuthor, 300 - passed)
    assert.equal(stats.coalesced, 300 - passed - 1)
    assert.equal(limiter.penalised('relay'), false)
    // The bucket is empty now; within 200 ms it has a token again.
    assert.deepEqual(limiter.due(10), [])
    c.advance(200)
    assert.deepEqual(limiter.due(10), [{ author: 'flooder', payload: 'message 299' }])
    assert.equal(limiter.admitReleased('flooder', 1000), true)
    assert.equal(limiter.stats().held, 0)
    assert.equal(limiter.stats().released, 1)
    assert.equal(limiter.stats().passed, passed + 1)
  })

  it('penalises a peer that keeps publishing over its rate: dropped unchecked, score negative, for penaltyMs', () => {
    const c = clock()
    const penalties: string[] = []
    const limiter = new TopicRateLimiter({ authorRate: 5, authorBurst: 10, penaltyMs: 60_000, now: c.now, onPenalty: (peer) => { penalties.push(peer) } })
    const seen = { pass: 0, hold: 0, drop: 0 }
    // 200 a second; strikes come at most once a second, the third one penalises.
    for (let i = 0; i < 1000 && penalties.length === 0; i++) {
      seen[limiter.admit('flooder', 'flooder', 500, true)]++
      c.advance(5)
    }
    assert.deepEqual(penalties, ['flooder'])
    assert.ok(seen.pass < 40, JSON.stringify(seen))
    assert.equal(limiter.score('flooder'), -100)
    assert.equal(limiter.score('someone else'), 0)
    assert.equal(limiter.admit('flooder', 'flooder', 500, true), 'drop')
    assert.equal(limiter.stats().penalised, 1)
    c.advance(60_000)
    assert.equal(limiter.penalised('flooder'), false)
    assert.equal(limiter.admit('flooder', 'flooder', 500, true), 'pass')
  })

  it('drops what a relay sends over its own rate, and penalises a relay that keeps doing so', () => {
    const c = clock()
    const limiter = new TopicRateLimiter({ peerRate: 10, peerBurst: 20, now: c.now })
    let dropped = 0
    // Fresh identities through one peer: each author's bucket is full, the peer's is not.
    for (let i = 0; i < 2000 && !limiter.penalised('sybil-relay'); i++) {
      if (limiter.admit(`id${i}`, 'sybil-relay', 100, false) === 'drop') dropped++
      c.advance(10)
    }
    assert.ok(dropped > 0)
    assert.equal(limiter.penalised('sybil-relay'), true)
    assert.equal(limiter.stats().held, 0, 'nothing over a relay\'s rate is held')
  })

  it('holds at most maxHeld messages and maxHeldBytes', () => {
    const c = clock()
    const limiter = new TopicRateLimiter<number>({ maxHeld: 8, maxHeldBytes: 10_000, now: c.now })
    for (let i = 0; i < 100; i++) limiter.hold(`a${i}`, i, 1000)
    assert.equal(limiter.stats().held, 8)
    assert.equal(limiter.stats().heldBytes, 8000)
    assert.equal(limiter.hold('a0', 0, 5000), false, 'over the byte bound')
    assert.equal(limiter.stats().heldBytes, 7000, 'the older one of a0 went')
    limiter.clear()
    assert.deepEqual([limiter.stats().held, limiter.stats().heldBytes], [0, 0])
  })

  it('keeps its table of offenders bounded', () => {
    const c = clock()
    const limiter = new TopicRateLimiter({ peerRate: 1, peerBurst: 1, maxSenders: 100, now: c.now })
    for (let i = 0; i < 5000; i++) { limiter.admit('a', `p${i}`, 1, false); limiter.admit('a', `p${i}`, 1, false) }
    assert.ok(limiter.stats().penalised <= 100)
  })
})

describe('floodsub under the topic limits', () => {
  /** floodsub as far as the limit sees it: validate(from, message), counting what reaches the real check. */
  function fakeFloodsub (): { router: any, checked: () => number } {
    let checked = 0
    const router = { validate: async function (_from: unknown, _message: unknown): Promise<void> { checked++ } }
    return { router, checked: () => checked }
  }
  const peer = (name: string): any => ({ toString: () => name })

  it('drops a flooding author before the signature check, takes it again once its bucket refilled, and drops a penalised peer unchecked', async () => {
    const c = clock()
    const penalties: string[] = []
    const limiter = new TopicRateLimiter<HeldMessage>({ authorRate: 5, authorBurst: 10, penaltyMs: 60_000, now: c.now, onPenalty: (p) => { penalties.push(p) } })
    const { router, checked } = fakeFloodsub()
    limitFloodsubRates(router, limiter)
    const flooder = peer('flooder')
    const message = { from: flooder, data: new Uint8Array(500), topic: 't' }
    let refused = 0
    for (let i = 0; i < 20; i++) await router.validate(flooder, message).catch(() => { refused++ })
    assert.equal(checked(), 10, 'the burst reached the real check')
    assert.equal(refused, 10, 'the rest were dropped before it')
    c.advance(1000)
    await router.validate(flooder, message)
    assert.equal(checked(), 11, 'taken again after the refill')
    // Keep flooding at 200 a second until the peer is penalised; then even a refilled bucket is not enough.
    for (let i = 0; i < 1000 && penalties.length === 0; i++) { await router.validate(flooder, message).catch(() => {}); c.advance(5) }
    assert.deepEqual(penalties, ['flooder'])
    c.advance(10_000)
    const before = checked()
    await assert.rejects(router.validate(flooder, message), /over its rate/)
    assert.equal(checked(), before)
    // Another node's message through another peer is not affected.
    await router.validate(peer('relay'), { from: peer('honest'), data: new Uint8Array(500), topic: 't' })
    assert.equal(checked(), before + 1)
  })

  it('refuses to wrap a floodsub whose validate changed shape', () => {
    assert.throws(() => limitFloodsubRates({ validate: async () => {} }, new TopicRateLimiter<HeldMessage>()), /re-check src\/p2p\/patches\/topic-limit.ts/)
  })
})

describe('view sync request budget', () => {
  /** a peer ID as far as the view sync's budget looks at it */
  const peer = (name: string): any => ({ toString: () => name })

  function fakeStream (): { stream: any, aborted: () => boolean, closed: () => boolean } {
    let aborted = false
    let closed = false
    const stream = { send: () => true, onDrain: async () => {}, close: async () => { closed = true }, abort: () => { aborted = true } }
    return { stream, aborted: () => aborted, closed: () => closed }
  }

  it('serves a peer its budget of syncs a minute, refuses the rest, and serves it again later', async () => {
    const c = clock()
    const log = { debug: () => {}, info: () => {}, warn: () => {} } as any
    const sync = new ViewSync({} as any, { topic: 't', log, requestsPerMinute: 3, now: c.now })
    sync.serveWith({ store: new SignedHeartbeats(), fresh: () => false, accept: () => {} })
    const outcomes: string[] = []
    for (let i = 0; i < 10; i++) {
      const s = fakeStream()
      sync.admit(s.stream, peer('asker'))
      await new Promise((resolve) => setImmediate(resolve))
      outcomes.push(s.aborted() ? 'refused' : s.closed() ? 'served' : 'pending')
    }
    assert.deepEqual(outcomes, ['served', 'served', 'served', ...Array(7).fill('refused')])
    assert.equal(sync.refused, 7)
    // Another peer is not affected.
    const other = fakeStream()
    sync.admit(other.stream, peer('joiner'))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(other.closed(), true)
    c.advance(20_000)
    const again = fakeStream()
    sync.admit(again.stream, peer('asker'))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(again.closed(), true)
  })
})

describe('heartbeats over the model cap', () => {
  it('counts the announced models on the wire, as decoding would', async () => {
    const { countAnnouncedModels, encodeHeartbeat } = await import('../../../src/protocols/heartbeat-codec.ts')
    const { protocol } = await import('../../../src/proto/index.ts')
    const models = (n: number): Array<{ model: string, cid: string, type: number, busy: number, available: boolean }> => Array.from({ length: n }, (_, i) => ({ model: `m${i}`, cid: 'c', type: 0, busy: 1, available: true }))
    for (const sizes of [[], [0], [3], [1000, 24], [1, 2, 3, 4], [60_000]]) {
      const data = encodeHeartbeat({ nodeId: 'n', version: 'v', nodeType: 4, projects: sizes.map((n, i) => ({ project: `p${i}`, models: models(n) })), leaving: false, intervalMs: 1000 })
      const body = protocol.Message.decode(data).body
      assert.equal(countAnnouncedModels(body), sizes.reduce((a, b) => a + b, 0), JSON.stringify(sizes))
      if (body.byteLength > 4) assert.throws(() => countAnnouncedModels(body.subarray(0, body.byteLength - 3)))
    }
  })

  it('refuses a heartbeat of 1025 models at the topic validator, and takes one of 1024', async () => {
    const { checkTopicMessage } = await import('../../../src/protocols/heartbeat/index.ts')
    const { encodeHeartbeat } = await import('../../../src/protocols/heartbeat-codec.ts')
    const { generateKeyPair } = await import('@libp2p/crypto/keys')
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
    const from = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))
    const message = (n: number): any => ({ type: 'signed', from, topic: 't', data: encodeHeartbeat({ nodeId: from.toString(), version: 'v', nodeType: 4, projects: [{ project: 'a', models: Array.from({ length: n - 24 }, (_, i) => ({ model: `m${i}`, cid: '', type: 0, busy: 0, available: true })) }, { project: 'b', models: Array.from({ length: 24 }, (_, i) => ({ model: `m${i}`, cid: '', type: 0, busy: 0, available: true })) }], leaving: false }) })
    assert.equal(checkTopicMessage(message(1024)).verdict, 'accept')
    assert.deepEqual(checkTopicMessage(message(1025)), { verdict: 'reject', reason: 'heartbeat announcing 1025 models (at most 1024)' })
  })
})
