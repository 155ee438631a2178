// Metrics read from a component's own counts at scrape time (src/core/scraped-metrics.ts).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Registry } from 'prom-client'
import { registerScrapedCounters, registerScrapedGauges } from '../../../src/core/scraped-metrics.ts'

test('a scraped counter follows the running total (never down); a gauge shows the value now; a name is registered once', async () => {
  const registry = new Registry()
  let total = 5
  let now = 2
  registerScrapedCounters(registry, [['t_total', 'a total', () => total]])
  registerScrapedGauges(registry, [['t_now', 'a level', () => now]])
  registerScrapedCounters(registry, [['t_total', 'again', () => 1_000]])
  const read = async (): Promise<string> => await registry.metrics()
  assert.match(await read(), /^t_total 5$/m)
  assert.match(await read(), /^t_now 2$/m)
  total = 12
  now = 0
  assert.match(await read(), /^t_total 12$/m)
  assert.match(await read(), /^t_now 0$/m)
  total = 3 // a component that restarted its count: the counter keeps what it had
  assert.match(await read(), /^t_total 12$/m)
  assert.match(await read(), /^# HELP t_total a total$/m)
})
