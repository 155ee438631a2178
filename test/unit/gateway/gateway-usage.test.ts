import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UsageLog, type UsageRecord } from '../../../src/gateway/usage.ts'
import { openGatewayDb } from '../../../src/gateway/store.ts'
import { DEFAULT_PRICE, PriceTable } from '../../../src/gateway/pricing.ts'
import { AicnError, ConfigError } from '../../../src/core/errors.ts'

function usage (time: string, keyId: string, model: string, promptTokens: number, completionTokens: number): UsageRecord {
  return { time, keyId, project: 'DecentralGPT', model, node: '16Uiu2HAm-node', promptTokens, completionTokens, costMicroUsd: promptTokens + 3 * completionTokens, status: 200, endpoint: '/v1/chat/completions' }
}

async function withLog (run: (log: UsageLog, path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-usage-'))
  const log = new UsageLog(join(dir, 'gateway.db'))
  await log.open()
  try {
    await run(log, join(dir, 'gateway.db'))
  } finally {
    await log.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

test('summaries group by key and model over a time range', async () => {
  await withLog(async (log) => {
    await log.record(usage('2025-03-01T10:00:00.000Z', 'key_a', 'Qwen2-72B', 100, 10))
    await log.record(usage('2025-03-01T10:00:00.000Z', 'key_a', 'Qwen2-72B', 50, 5)) // same millisecond
    await log.record(usage('2025-03-02T10:00:00.000Z', 'key_a', 'NVLM-D-72B', 7, 1))
    await log.record(usage('2025-03-02T11:00:00+01:00', 'key_b', 'Qwen2-72B', 1, 1)) // 10:00Z
    await log.record(usage('2025-03-03T10:00:00.000Z', '', 'Qwen2-72B', 2, 2))

    assert.deepEqual(await log.summary(), [
      { keyId: '', model: 'Qwen2-72B', requests: 1, promptTokens: 2, completionTokens: 2, costMicroUsd: 8 },
      { keyId: 'key_a', model: 'NVLM-D-72B', requests: 1, promptTokens: 7, completionTokens: 1, costMicroUsd: 10 },
      { keyId: 'key_a', model: 'Qwen2-72B', requests: 2, promptTokens: 150, completionTokens: 15, costMicroUsd: 195 },
      { keyId: 'key_b', model: 'Qwen2-72B', requests: 1, promptTokens: 1, completionTokens: 1, costMicroUsd: 4 }
    ])
    assert.deepEqual(await log.summary({ keyId: 'key_a', since: '2025-03-02' }), [
      { keyId: 'key_a', model: 'NVLM-D-72B', requests: 1, promptTokens: 7, completionTokens: 1, costMicroUsd: 10 }
    ])
    assert.deepEqual((await log.summary({ since: '2025-03-02T00:00:00Z', until: '2025-03-03T00:00:00Z' })).map((s) => s.keyId), ['key_a', 'key_b'])
    assert.deepEqual(await log.summary({ keyId: '' }), [
      { keyId: '', model: 'Qwen2-72B', requests: 1, promptTokens: 2, completionTokens: 2, costMicroUsd: 8 }
    ])
    assert.deepEqual(await log.summary({ keyId: 'key_c' }), [])
    await assert.rejects(log.summary({ since: 'yesterday' }), AicnError)
  })
})

test('recent returns the newest records first, per key if asked', async () => {
  await withLog(async (log) => {
    for (let i = 0; i < 5; i++) {
      await log.record(usage(new Date(Date.UTC(2025, 2, 1, 0, 0, i)).toISOString(), i % 2 === 0 ? 'key_a' : 'key_b', 'm', i, 0))
    }
    assert.deepEqual((await log.recent(3)).map((r) => r.promptTokens), [4, 3, 2])
    assert.deepEqual((await log.recent(10, 'key_a')).map((r) => r.promptTokens), [4, 2, 0])
    assert.deepEqual(await log.recent(0), [])
    const [newest] = await log.recent(1, 'key_b')
    assert.deepEqual(newest, usage('2025-03-01T00:00:03.000Z', 'key_b', 'm', 3, 0))
  })
})

test('records survive a restart in the shared gateway database, and prune drops old ones', async () => {
  await withLog(async (log, path) => {
    await log.close()
    let gateway = await openGatewayDb(path)
    await gateway.usage.record(usage('2025-01-01T00:00:00.000Z', 'key_a', 'm', 1, 1))
    await gateway.usage.record(usage('2025-03-01T00:00:00.000Z', 'key_a', 'm', 2, 2))
    await gateway.close()

    gateway = await openGatewayDb(path)
    assert.equal((await gateway.usage.recent(10)).length, 2)
    assert.equal(await gateway.usage.prune('2025-02-01T00:00:00.000Z'), 1)
    assert.deepEqual((await gateway.usage.recent(10, 'key_a')).map((r) => r.time), ['2025-03-01T00:00:00.000Z'])
    assert.equal((await gateway.usage.summary())[0].requests, 1)
    await gateway.close()
  })
})

test('prices: by "project/model", by model, then the fallback', () => {
  const table = new PriceTable({
    'DecentralGPT/Qwen2-72B': { inputPerMillionUsd: 0.5, outputPerMillionUsd: 1.5 },
    'Qwen2-72B': { inputPerMillionUsd: 2, outputPerMillionUsd: 6 }
  })
  assert.deepEqual(table.priceOf('DecentralGPT', 'Qwen2-72B'), { inputPerMillionUsd: 0.5, outputPerMillionUsd: 1.5 })
  assert.deepEqual(table.priceOf('decentralgpt', 'qwen2-72b'), { inputPerMillionUsd: 0.5, outputPerMillionUsd: 1.5 })
  assert.deepEqual(table.priceOf('SuperImageAI', 'Qwen2-72B'), { inputPerMillionUsd: 2, outputPerMillionUsd: 6 })
  assert.deepEqual(table.priceOf('DecentralGPT', 'NVLM-D-72B'), DEFAULT_PRICE)
  assert.deepEqual(new PriceTable({}, { inputPerMillionUsd: 0, outputPerMillionUsd: 0 }).priceOf('p', 'm'), { inputPerMillionUsd: 0, outputPerMillionUsd: 0 })
  assert.throws(() => new PriceTable({ m: { inputPerMillionUsd: -1, outputPerMillionUsd: 1 } }), ConfigError)
  assert.throws(() => new PriceTable({}, { inputPerMillionUsd: Number.NaN, outputPerMillionUsd: 1 }), ConfigError)
})

test('cost is integer micro-USD, rounded up, without floating point drift', () => {
  const table = new PriceTable()
  // $1 / $3 per million tokens is 1 / 3 micro-USD per token.
  assert.equal(table.costMicroUsd(DEFAULT_PRICE, 1000, 500), 2500)
  assert.equal(table.costMicroUsd(DEFAULT_PRICE, 0, 0), 0)
  assert.equal(table.costMicroUsd({ inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6 }, 1000, 1000), 750)
  assert.equal(table.costMicroUsd({ inputPerMillionUsd: 0.5, outputPerMillionUsd: 0 }, 1, 0), 1, 'half a micro-USD rounds up')
  assert.equal(table.costMicroUsd({ inputPerMillionUsd: 0.1, outputPerMillionUsd: 0.2 }, 3, 0), 1)
  assert.equal(table.costMicroUsd({ inputPerMillionUsd: 0.1, outputPerMillionUsd: 0.2 }, 10, 5), 2)
  assert.equal(table.costMicroUsd(DEFAULT_PRICE, 1_000_000, 1_000_000), 4_000_000)
  assert.equal(table.costMicroUsd({ inputPerMillionUsd: 1000, outputPerMillionUsd: 1000 }, 1e9, 1e9), 2e12)
  assert.equal(table.costMicroUsd(DEFAULT_PRICE, -5, Number.NaN), 0, 'nonsense token counts cost nothing')
})
