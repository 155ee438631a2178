import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Limiter, type DailyStore } from '../../../src/gateway/limits.ts'
import { openGatewayDb } from '../../../src/gateway/store.ts'
import type { KeyRecord } from '../../../src/gateway/keys.ts'

const T0 = Date.parse('2025-03-01T12:00:00.000Z')

function key (limits: Partial<Pick<KeyRecord, 'rpm' | 'concurrency' | 'daily'>>, id = 'key_000000000001'): KeyRecord {
  return {
    id,
    name: 'test',
    hash: '0'.repeat(64),
    prefix: 'sk-aicn-00000000',
    models: [],
    rpm: 0,
    concurrency: 0,
    daily: 0,
    balanceMicroUsd: null,
    revoked: false,
    created: new Date(T0).toISOString(),
    ...limits
  }
}

function clock (start = T0): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

test('rpm: a fixed 60 s window with rate-limit headers, Retry-After, and a reset', async () => {
  const c = clock()
  const limiter = new Limiter({ now: c.now })
  const k = key({ rpm: 2 })
  const reset = new Date(T0 + 60_000).toISOString()

  const first = await limiter.admit(k)
  assert.equal(first.ok, true)
  assert.deepEqual(first.headers, { 'X-RateLimit-Limit': '2', 'X-RateLimit-Remaining': '1', 'X-RateLimit-Reset': reset })
  first.release()
  c.advance(10_000)
  const second = await limiter.admit(k)
  assert.deepEqual(second.headers, { 'X-RateLimit-Limit': '2', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': reset })
  second.release()

  c.advance(20_500) // 30.5 s into the window
  const refused = await limiter.admit(k)
  assert.equal(refused.ok, false)
  assert.equal(refused.status, 429)
  assert.equal(refused.reason, 'rpm')
  assert.deepEqual(refused.headers, { 'X-RateLimit-Limit': '2', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': reset, 'Retry-After': '30' })

  c.advance(29_500) // exactly 60 s after the first request: a new window
  const next = await limiter.admit(k)
  assert.equal(next.ok, true)
  assert.deepEqual(next.headers, { 'X-RateLimit-Limit': '2', 'X-RateLimit-Remaining': '1', 'X-RateLimit-Reset': new Date(T0 + 120_000).toISOString() })
})

test('unlimited rpm sends no rate-limit headers; keys are limited separately', async () => {
  const c = clock()
  const limiter = new Limiter({ now: c.now })
  const open = await limiter.admit(key({}))
  assert.equal(open.ok, true)
  assert.deepEqual(open.headers, {})

  const a = key({ rpm: 1 }, 'key_a')
  const b = key({ rpm: 1 }, 'key_b')
  assert.equal((await limiter.admit(a)).ok, true)
  assert.equal((await limiter.admit(b)).ok, true)
  assert.equal((await limiter.admit(a)).ok, false)
})

test('concurrency: 3 in flight, the 4th is refused, release frees a slot once', async () => {
  const limiter = new Limiter({ now: clock().now })
  const k = key({ concurrency: 3 })
  const held = [await limiter.admit(k), await limiter.admit(k), await limiter.admit(k)]
  assert.ok(held.every((d) => d.ok))
  const fourth = await limiter.admit(k)
  assert.equal(fourth.ok, false)
  assert.equal(fourth.reason, 'concurrency')
  assert.deepEqual(fourth.headers, { 'Retry-After': '1' })
  fourth.release() // releasing a refusal frees nothing

  held[0].release()
  held[0].release() // idempotent
  assert.equal((await limiter.admit(k)).ok, true)
  assert.equal((await limiter.admit(k)).ok, false)
})

test('refused requests do not count against other limits', async () => {
  const limiter = new Limiter({ now: clock().now })
  const k = key({ concurrency: 1, daily: 2, rpm: 10 })
  const a = await limiter.admit(k)
  assert.equal(a.ok, true)
  const refused = await limiter.admit(k)
  assert.equal(refused.reason, 'concurrency')
  assert.equal(refused.headers['X-RateLimit-Remaining'], '9', 'the refusal used no rpm slot')
  a.release()
  assert.equal((await limiter.admit(k)).ok, true, 'the refusal used no daily slot')
})

test('concurrent admits never exceed the daily limit while the count is loading', async () => {
  const saved: number[] = []
  const slowStore: DailyStore = {
    load: async () => await new Promise((resolve) => setTimeout(() => resolve(1), 20)),
    save: async (_id, _day, count) => { saved.push(count) }
  }
  const limiter = new Limiter({ now: clock().now, dailyStore: slowStore })
  const k = key({ daily: 5 })
  const decisions = await Promise.all(Array.from({ length: 10 }, async () => await limiter.admit(k)))
  assert.equal(decisions.filter((d) => d.ok).length, 4)
  assert.deepEqual(saved, [2, 3, 4, 5])
})

test('the daily limit survives a restart and resets at 00:00 UTC', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-limits-'))
  const path = join(dir, 'gateway.db')
  try {
    const c = clock(Date.parse('2025-03-01T23:59:00.000Z'))
    const k = key({ daily: 3 })
    let gateway = await openGatewayDb(path)
    let limiter = new Limiter({ now: c.now, dailyStore: gateway.dailyStore })
    for (let i = 0; i < 2; i++) (await limiter.admit(k)).release()
    await gateway.close()

    gateway = await openGatewayDb(path)
    limiter = new Limiter({ now: c.now, dailyStore: gateway.dailyStore })
    assert.equal((await limiter.admit(k)).ok, true)
    const refused = await limiter.admit(k)
    assert.equal(refused.ok, false)
    assert.equal(refused.reason, 'daily')
    assert.deepEqual(refused.headers, { 'Retry-After': '60' }, 'retry at midnight UTC')
    assert.equal(await gateway.dailyStore.load(k.id, '2025-03-01'), 3)

    c.advance(60_000) // a new UTC day
    assert.equal((await limiter.admit(k)).ok, true)
    assert.equal(await gateway.dailyStore.load(k.id, '2025-03-02'), 1)
    assert.equal(await gateway.dailyStore.load(k.id, '2025-03-01'), 0, 'earlier days are cleaned up')
    await gateway.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
