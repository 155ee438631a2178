// Token buckets and strikes (src/core/rate-limit.ts), on a clock the test moves.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { StrikeRule, TokenBucketRule, TokenBuckets } from '../../../src/core/rate-limit.ts'

describe('TokenBucketRule', () => {
  it('starts full, refills at its rate up to the burst, and takes nothing when short', () => {
    const rule = new TokenBucketRule(10, 3)
    const bucket = rule.full(0)
    assert.equal(rule.available(bucket, 0), 3)
    for (let i = 0; i < 3; i++) assert.equal(rule.take(bucket, 1, 0), true)
    assert.equal(rule.take(bucket, 1, 0), false)
    assert.equal(rule.take(bucket, 1, 50), false, 'half a token after 50 ms')
    assert.equal(bucket.tokens, 0.5, 'the refill up to now is kept')
    assert.equal(rule.take(bucket, 1, 100), true)
    assert.equal(rule.available(bucket, 10_000), 3, 'never above the burst')
  })

  it('takes a cost above the burst from a full bucket, so nothing waits for ever', () => {
    const rule = new TokenBucketRule(1, 2)
    const bucket = rule.full(0)
    assert.equal(rule.take(bucket, 5, 0), true)
    assert.equal(rule.available(bucket, 0), 0)
    assert.equal(rule.take(bucket, 5, 1000), false)
    assert.equal(rule.take(bucket, 5, 2000), true)
  })
})

describe('TokenBuckets', () => {
  it('keeps one bucket per key, and forgets the full ones first past its bound', () => {
    let now = 0
    const buckets = new TokenBuckets(1, 2, 2, () => now)
    assert.equal(buckets.take('a', 2), true)
    assert.equal(buckets.take('b', 1), true)
    now = 5_000 // both full again
    assert.equal(buckets.take('c', 2), true)
    assert.equal(buckets.size, 2)
    assert.equal(buckets.available('c'), 0, 'the newest, empty bucket stays')
    assert.equal(buckets.available('a'), 2, 'a full one went: a new key starts full')
  })
})

describe('StrikeRule', () => {
  it('penalises after enough strikes within the window, then starts over', () => {
    const rule = new StrikeRule({ strikes: 3, windowMs: 1000, penaltyMs: 5000 })
    const state = rule.fresh()
    assert.equal(rule.strike(state, 0), false)
    assert.equal(rule.strike(state, 900), false)
    assert.equal(rule.strike(state, 1500), false, 'the first strike left the window')
    assert.equal(rule.strike(state, 1600), true)
    assert.equal(rule.penalised(state, 6599), true)
    assert.deepEqual(state.strikes, [], 'wiped by the penalty')
    assert.equal(rule.strike(state, 2000), false)
    assert.equal(rule.strike(state, 2001), false)
    assert.equal(rule.strike(state, 2002), false, 'no second penalty while the first runs')
    assert.equal(rule.penalised(state, 6600), false)
    assert.equal(rule.forgetOld(state, 6600), true, 'nothing left against it')
  })

  it('counts strikes closer than minGapMs once', () => {
    const rule = new StrikeRule({ strikes: 2, windowMs: 10_000, penaltyMs: 1000, minGapMs: 1000 })
    const state = rule.fresh()
    for (let t = 0; t < 1000; t += 100) assert.equal(rule.strike(state, t), false)
    assert.equal(state.strikes.length, 1)
    assert.equal(rule.strike(state, 1000), true)
  })

  it('forgetOld keeps a sender with a recent strike or a running penalty', () => {
    const rule = new StrikeRule({ strikes: 1, windowMs: 1000, penaltyMs: 1000 })
    const striking = { ...rule.fresh(), strikes: [500] }
    assert.equal(rule.forgetOld(striking, 1000), false)
    assert.equal(rule.forgetOld(striking, 1500), true)
    const penalised = rule.fresh()
    rule.strike(penalised, 0)
    assert.equal(rule.forgetOld(penalised, 999), false)
  })
})
