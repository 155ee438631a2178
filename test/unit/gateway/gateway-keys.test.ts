import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { KeyStore } from '../../../src/gateway/keys.ts'
import { openGatewayDb } from '../../../src/gateway/store.ts'
import { AicnError } from '../../../src/core/errors.ts'

async function withDir (run: (path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-keys-'))
  try {
    await run(join(dir, 'gateway.db'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function withKeys (run: (keys: KeyStore, path: string) => Promise<void>): Promise<void> {
  await withDir(async (path) => {
    const keys = new KeyStore(path)
    await keys.open()
    try {
      await run(keys, path)
    } finally {
      await keys.close().catch(() => {})
    }
  })
}

test('a key is created, authenticated by its secret, listed, found by prefix, topped up and revoked', async () => {
  await withKeys(async (keys) => {
    const { secret, record } = await keys.create({ name: ' app ', models: ['Qwen2-72B', 'Qwen2-72B'], rpm: 60, concurrency: 3, daily: 1000 })
    assert.match(secret, /^sk-aicn-[A-Za-z0-9_-]{40}$/)
    assert.match(record.id, /^key_[0-9a-f]{12}$/)
    assert.equal(record.prefix, secret.slice(0, 16))
    assert.equal(record.name, 'app')
    assert.deepEqual(record.models, ['Qwen2-72B'])
    assert.equal(record.balanceMicroUsd, null)
    assert.equal(record.revoked, false)

    assert.deepEqual(await keys.authenticate(secret), record)
    assert.equal(await keys.authenticate(secret + 'x'), undefined)
    assert.equal(await keys.authenticate(''), undefined)

    const second = await keys.create({ name: 'other', balanceUsd: 2.5 })
    assert.equal(second.record.balanceMicroUsd, 2_500_000)
    assert.deepEqual((await keys.list()).map((r) => r.id).sort(), [record.id, second.record.id].sort())

    assert.deepEqual(await keys.get(record.id), record)
    assert.deepEqual(await keys.get(record.prefix), record)
    assert.deepEqual(await keys.get(record.id.slice(0, 10)), record)
    assert.equal(await keys.get('key_nothing'), undefined)
    assert.equal(await keys.get(''), undefined)

    const metered = await keys.topup(record.id, 1.25)
    assert.equal(metered.balanceMicroUsd, 1_250_000)
    assert.equal((await keys.topup(record.prefix, 0.75)).balanceMicroUsd, 2_000_000)
    await assert.rejects(keys.topup(record.id, -1), AicnError)
    await assert.rejects(keys.topup(record.id, Number.NaN), AicnError)
    await assert.rejects(keys.topup('key_000000000000', 1), (err: AicnError) => err.status === 404)

    const revoked = await keys.revoke(record.id)
    assert.equal(revoked.revoked, true)
    const again = await keys.authenticate(secret)
    assert.equal(again?.revoked, true, 'revoked keys still authenticate so the caller can answer 401')
    assert.equal(again?.balanceMicroUsd, 2_000_000)
  })
})

test('bad options are refused', async () => {
  await withKeys(async (keys) => {
    await assert.rejects(keys.create({ name: '' }), AicnError)
    await assert.rejects(keys.create({ name: 'x', rpm: -1 }), AicnError)
    await assert.rejects(keys.create({ name: 'x', concurrency: 1.5 }), AicnError)
    await assert.rejects(keys.create({ name: 'x', balanceUsd: Number.NaN }), AicnError)
    await assert.rejects(keys.create({ name: 'x', models: [''] }), AicnError)
  })
})

test('the secret is stored nowhere in the database', async () => {
  await withDir(async (path) => {
    const gateway = await openGatewayDb(path)
    const { secret, record } = await gateway.keys.create({ name: 'app', balanceUsd: 1 })
    const r = await gateway.keys.reserve(record.id, 10)
    assert.equal(r.ok, true)
    await gateway.close()

    const tail = secret.slice(record.prefix.length) // the part never shown anywhere
    const raw = new Level<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await raw.open()
    let entries = 0
    for await (const [key, value] of raw.iterator()) {
      entries++
      for (const bytes of [key, value]) {
        const text = bytes.toString('latin1')
        assert.ok(!text.includes(secret) && !text.includes(tail), 'secret found in the database')
      }
    }
    await raw.close()
    assert.ok(entries >= 3, 'the scan saw the stored key, hash index and reservation')
  })
})

test('reserve and settle move integer micro-USD and settle is idempotent', async () => {
  await withKeys(async (keys) => {
    const { record } = await keys.create({ name: 'app', balanceUsd: 1 })
    const balance = async (): Promise<number | null | undefined> => (await keys.get(record.id))?.balanceMicroUsd

    const a = await keys.reserve(record.id, 300_000)
    assert.ok(a.ok)
    assert.equal(await balance(), 700_000)
    await keys.settle(a.reservation, 120_000)
    assert.equal(await balance(), 880_000)
    await keys.settle(a.reservation, 120_000)
    await keys.settle(a.reservation, 0)
    assert.equal(await balance(), 880_000, 'settling twice changes nothing')

    assert.deepEqual(await keys.reserve(record.id, 880_001), { ok: false, balanceMicroUsd: 880_000 })
    const b = await keys.reserve(record.id, 880_000)
    assert.ok(b.ok)
    assert.equal(await balance(), 0)
    await keys.settle(b.reservation, 1_000_000) // a model that reports more than the worst case reserved
    assert.equal(await balance(), 0, 'charged the reservation at most: the balance never goes below zero')
    assert.deepEqual(await keys.reserve(record.id, 0), { ok: false, balanceMicroUsd: 0 })

    const c = await keys.reserve(record.id, 0.2) // fractions round up
    assert.equal(c.ok, false)
    await keys.topup(record.id, 0.000001)
    const d = await keys.reserve(record.id, 0.2)
    assert.ok(d.ok)
    assert.equal(await balance(), 0)
    await keys.settle(d.reservation, 0)
    assert.equal(await balance(), 1)

    await assert.rejects(keys.reserve(record.id, -1), AicnError)
    await assert.rejects(keys.reserve('key_000000000000', 1), AicnError)
    await keys.settle('rsv_unknown', 5) // unknown reservations are ignored
  })
})

test('keys that are not metered always reserve and settle to nothing', async () => {
  await withKeys(async (keys) => {
    const { record } = await keys.create({ name: 'free' })
    const r = await keys.reserve(record.id, 5_000_000)
    assert.ok(r.ok)
    await keys.settle(r.reservation, 7_000_000)
    assert.equal((await keys.get(record.id))?.balanceMicroUsd, null)
  })
})

test('100 concurrent reservations of 1 USD against 10 USD: exactly 10 succeed', async () => {
  await withKeys(async (keys) => {
    const { record } = await keys.create({ name: 'app', balanceUsd: 10 })
    const results = await Promise.all(Array.from({ length: 100 }, async () => await keys.reserve(record.id, 1_000_000)))
    assert.equal(results.filter((r) => r.ok).length, 10)
    assert.equal((await keys.get(record.id))?.balanceMicroUsd, 0)
    // Settling them all at once, twice each, refunds each difference exactly once.
    const reservations = results.flatMap((r) => r.ok ? [r.reservation] : [])
    await Promise.all([...reservations, ...reservations].map(async (id) => await keys.settle(id, 400_000)))
    assert.equal((await keys.get(record.id))?.balanceMicroUsd, 6_000_000)
  })
})

test('balances survive a restart and unsettled reservations are refunded', async () => {
  await withDir(async (path) => {
    let gateway = await openGatewayDb(path)
    const { secret, record } = await gateway.keys.create({ name: 'app', balanceUsd: 5 })
    const settled = await gateway.keys.reserve(record.id, 2_000_000)
    assert.ok(settled.ok)
    await gateway.keys.settle(settled.reservation, 1_500_000)
    const pending = await gateway.keys.reserve(record.id, 1_000_000)
    assert.ok(pending.ok)
    assert.equal((await gateway.keys.get(record.id))?.balanceMicroUsd, 2_500_000)
    await gateway.close() // stops with `pending` unsettled, like a crash mid-request

    gateway = await openGatewayDb(path)
    const after = await gateway.keys.authenticate(secret)
    assert.equal(after?.balanceMicroUsd, 3_500_000, 'the unsettled reservation is refunded')
    await gateway.keys.settle(pending.reservation, 1_000_000) // too late: it was released
    assert.equal((await gateway.keys.get(record.id))?.balanceMicroUsd, 3_500_000)
    await gateway.close()

    // A standalone KeyStore on the same folder sees the same data.
    const keys = new KeyStore(path)
    await keys.open()
    assert.equal((await keys.get(record.id))?.balanceMicroUsd, 3_500_000)
    await keys.close()
  })
})
