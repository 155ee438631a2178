// Freshness from each sender's own rhythm (src/registry/rhythm.ts) and its use by the network view.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GO_DEFAULT_INTERVAL_MS, MAX_INTERVAL_MS, MIN_INTERVAL_MS, nextInterval, routingWindowMs } from '../../../src/registry/rhythm.ts'
import { NetworkView } from '../../../src/registry/view.ts'
import { sanitizeEntry, type NodeEntry } from '../../../src/registry/view-types.ts'

const S = 1000
const T0 = 1_700_000_000_000

test('an aicn node is held to the interval it announces, within bounds', () => {
  assert.equal(nextInterval(undefined, T0, 10 * S), 10 * S)
  assert.equal(nextInterval({ lastHeard: T0 - 500 * S, intervalMs: GO_DEFAULT_INTERVAL_MS }, T0, 10 * S), 10 * S, 'the announcement wins over any gap')
  assert.equal(nextInterval(undefined, T0, 1), MIN_INTERVAL_MS)
  assert.equal(nextInterval(undefined, T0, 0xffffffff), MAX_INTERVAL_MS)
})

test('a Go node not measured yet is assumed to use the Go default', () => {
  assert.equal(nextInterval(undefined, T0), GO_DEFAULT_INTERVAL_MS)
  assert.equal(nextInterval(undefined, T0, 0), GO_DEFAULT_INTERVAL_MS)
})

test('a Go node that beats slower than the default is learned from its gaps, and kept', () => {
  let heard = { lastHeard: T0, intervalMs: nextInterval(undefined, T0) }
  const beat = (at: number): void => { heard = { lastHeard: at, intervalMs: nextInterval(heard, at) } }
  beat(T0 + 300 * S)
  assert.equal(heard.intervalMs, 300 * S)
  // Short gaps (heartbeats on jobs and registrations) say nothing about the schedule: nothing is unlearned.
  for (let i = 1; i <= 20; i++) beat(T0 + 300 * S + i * 2 * S)
  assert.equal(heard.intervalMs, 300 * S)
})

test('short gaps never bring a Go node below the default, and a return after an outage is not a beat', () => {
  assert.equal(nextInterval({ lastHeard: T0 - 5 * S, intervalMs: GO_DEFAULT_INTERVAL_MS }, T0), GO_DEFAULT_INTERVAL_MS)
  // Silent for longer than its window (3 × 180 s): it had left routing; its interval stays.
  assert.equal(nextInterval({ lastHeard: T0 - 3600 * S, intervalMs: GO_DEFAULT_INTERVAL_MS }, T0), GO_DEFAULT_INTERVAL_MS)
  // An aicn node at 10 s that stops announcing (an older version) falls back to the Go rules.
  assert.equal(nextInterval({ lastHeard: T0 - 10 * S, intervalMs: 10 * S }, T0), GO_DEFAULT_INTERVAL_MS)
  // Garbage in the stored interval (a database from elsewhere) is bounded.
  assert.equal(nextInterval({ lastHeard: T0 - 10 * S, intervalMs: Number.NaN }, T0), GO_DEFAULT_INTERVAL_MS)
})

test('the view routes each node for three of its own intervals', () => {
  let now = T0
  const view = new NetworkView({ routingFreshMs: routingWindowMs(GO_DEFAULT_INTERVAL_MS), now: () => now })
  const entry = (nodeId: string, intervalMs?: number): NodeEntry => ({
    nodeId, nodeType: 4, version: '', lastHeard: now, projects: [{ project: 'P', models: [{ model: 'm', cid: '', type: 0, busy: 0, available: true }] }], ...(intervalMs === undefined ? {} : { intervalMs })
  })
  view.update(entry('fast', 10 * S))
  view.update(entry('go', GO_DEFAULT_INTERVAL_MS))
  view.update(entry('legacy')) // saved before intervals were kept: the view's default window
  const routable = (): string[] => view.candidates('P', 'm').map((c) => c.nodeId).sort()
  now += 30 * S
  assert.deepEqual(routable(), ['fast', 'go', 'legacy'])
  now += 1
  assert.deepEqual(routable(), ['go', 'legacy'], 'the 10 s node is gone after 3 × 10 s')
  now = T0 + 540 * S
  assert.deepEqual(routable(), ['go', 'legacy'])
  now += 1
  assert.deepEqual(routable(), [])
  // A direct witness still takes a node out at once (src/registry/liveness/index.ts).
  view.update(entry('go', GO_DEFAULT_INTERVAL_MS))
  view.markUnreachable('go')
  assert.deepEqual(routable(), [])
  assert.equal(view.heard('go')?.intervalMs, GO_DEFAULT_INTERVAL_MS)
})

test('a stored interval is cleaned like the rest of an entry', () => {
  const base = { nodeId: 'A', projects: [], nodeType: 0, version: '', lastHeard: T0 }
  assert.equal(sanitizeEntry({ ...base, intervalMs: 10 * S }).entry?.intervalMs, 10 * S)
  assert.equal(sanitizeEntry({ ...base, intervalMs: 1e15 }).entry?.intervalMs, MAX_INTERVAL_MS)
  for (const bad of [-1, 0, Number.NaN, '10s', null]) {
    assert.equal('intervalMs' in sanitizeEntry({ ...base, intervalMs: bad }).entry!, false)
  }
})
