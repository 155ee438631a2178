import { test } from 'node:test'
import assert from 'node:assert/strict'
import { NodeSelector, isRetryable, type SelectorOptions } from '../../../src/jobs/selector.ts'
import { MAX_TRACKED_NODES } from '../../../src/jobs/cooldown.ts'
import type { ProjectPeer } from '../../../src/protocols/network.ts'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'

const SECOND = 1000

/** A clock the test moves by hand. */
function clock (start = 1_000_000): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

/** mulberry32: a small seeded generator so that runs are repeatable. */
function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function peer (nodeId: string, fields: Partial<ProjectPeer> = {}): ProjectPeer {
  return { node_id: nodeId, connectivity: 1, latency: 2_000, Idle: 0, cid: 'cid-' + nodeId, ...fields }
}

function selector (options: SelectorOptions = {}): { sel: NodeSelector, advance: (ms: number) => void } {
  const c = clock()
  return { sel: new NodeSelector({ now: c.now, random: seeded(42), ...options }), advance: c.advance }
}

const ids = (peers: ProjectPeer[]): string[] => peers.map((p) => p.node_id)

test('filters: cooldown, relay-only when direct, exclude, duplicates', () => {
  const { sel } = selector()
  const candidates = [peer('a'), peer('b', { connectivity: 4 }), peer('c'), peer('d'), peer('a', { cid: 'other' })]
  sel.failed('c')

  const direct = sel.plan(candidates, { direct: true, exclude: ['d'] })
  assert.deepEqual(ids(direct), ['a', 'c'], 'a node cooling down comes last')
  assert.equal(direct[0].cid, 'cid-a', 'first entry per node wins')

  const viaPubsub = ids(sel.plan(candidates, { direct: false })).sort()
  assert.deepEqual(viaPubsub, ['a', 'b', 'd'], 'relay-only nodes are fine when no direct stream is needed')

  // Nodes not connected at all (0) and without a latency sample stay eligible for direct jobs.
  assert.deepEqual(ids(sel.plan([peer('x', { connectivity: 0, latency: 0 })], { direct: true })), ['x'])
  assert.deepEqual(sel.plan([], { direct: false }), [])
  assert.deepEqual(sel.plan([peer('a')], { direct: false, exclude: ['a'] }), [])
})

test('at most maxAttempts distinct nodes, and every node when fewer', () => {
  const { sel } = selector()
  const many = Array.from({ length: 10 }, (_, i) => peer('n' + i))
  const plan = sel.plan(many, { direct: false })
  assert.equal(plan.length, 3)
  assert.equal(new Set(ids(plan)).size, 3)

  assert.equal(selector({ maxAttempts: 5 }).sel.plan(many, { direct: false }).length, 5)
  assert.equal(selector({ maxAttempts: 0 }).sel.plan(many, { direct: false }).length, 1, 'at least one try')
  assert.deepEqual(ids(sel.plan([peer('x'), peer('y')], { direct: false })).sort(), ['x', 'y'])
})

test('power-of-two choices spreads load over equal nodes', () => {
  const { sel } = selector()
  const candidates = Array.from({ length: 10 }, (_, i) => peer('n' + i))
  const counts = new Map<string, number>()
  for (let i = 0; i < 1000; i++) {
    const chosen = sel.plan(candidates, { direct: false })[0].node_id
    sel.started(chosen) // never released: our own in-flight count is what spreads the load
    counts.set(chosen, (counts.get(chosen) ?? 0) + 1)
  }
  assert.equal(counts.size, 10, 'every candidate is picked')
  for (const [id, n] of counts) {
    assert.ok(n <= 200, `${id} picked ${n} times, more than twice the average`)
    assert.equal(sel.inFlight(id), n)
  }
})

test('power-of-two choices without feedback still spreads, favouring the better half', () => {
  const { sel } = selector()
  const candidates = Array.from({ length: 4 }, (_, i) => peer('n' + i, { Idle: i }))
  const counts = new Map<string, number>()
  for (let i = 0; i < 1000; i++) {
    const chosen = sel.plan(candidates, { direct: false })[0].node_id
    counts.set(chosen, (counts.get(chosen) ?? 0) + 1)
  }
  // With 4 nodes the best wins 3 of 6 pairs, the next 2, the third 1, the worst none.
  assert.ok((counts.get('n0') ?? 0) > (counts.get('n1') ?? 0))
  assert.ok((counts.get('n1') ?? 0) > (counts.get('n2') ?? 0))
  assert.equal(counts.get('n3'), undefined)
})

test('a busy node is chosen rarely', () => {
  const { sel } = selector()
  const candidates = [peer('busy', { Idle: 20 }), ...Array.from({ length: 5 }, (_, i) => peer('idle' + i))]
  let first = 0
  for (let i = 0; i < 1000; i++) {
    const plan = sel.plan(candidates, { direct: false })
    if (plan[0].node_id === 'busy') first++
    sel.started(plan[0].node_id)() // released at once: in-flight stays 0
  }
  assert.ok(first < 50, `busy node first in ${first} of 1000 plans`)
})

test('score: busy, in-flight, latency (unknown = 5 ms, none for self), failures', () => {
  const { sel } = selector()
  assert.equal(sel.score(peer('a', { Idle: 3, latency: 20_000 })), 3 + 2)
  assert.equal(sel.score(peer('a', { latency: 0 })), 0.5)
  assert.equal(sel.score(peer('me', { latency: 0 }), 'me'), 0)
  assert.equal(sel.score(peer('a', { Idle: -5, latency: 10_000 })), 1, 'negative busy counts are ignored')
  sel.started('a')
  sel.started('a')
  assert.equal(sel.score(peer('a', { latency: 10_000 })), 1 + 4)
  sel.failed('b')
  assert.equal(sel.score(peer('b', { latency: 10_000 })), 1 + 4)
})

test('the local node is preferred over an equally busy remote one', () => {
  const { sel } = selector()
  for (let i = 0; i < 50; i++) {
    const plan = sel.plan([peer('remote', { latency: 30_000 }), peer('me', { latency: 0 })], { direct: true, self: 'me' })
    assert.deepEqual(ids(plan), ['me', 'remote'])
  }
})

test('in-flight counting and idempotent release', () => {
  const { sel } = selector()
  const r1 = sel.started('a')
  const r2 = sel.started('a')
  assert.equal(sel.inFlight('a'), 2)
  r1()
  r1()
  assert.equal(sel.inFlight('a'), 1)
  r2()
  assert.equal(sel.inFlight('a'), 0)
  assert.equal(sel.inFlight('never'), 0)
  assert.equal(sel.trackedNodes, 0, 'a node with nothing left to remember is forgotten')
})

test('cooldown: 15 s, then 30 s, then 60 s; expires with the clock; cleared by succeeded()', () => {
  const { sel, advance } = selector()
  sel.failed('a')
  assert.equal(sel.coolingDown('a'), true)
  advance(15 * SECOND - 1)
  assert.equal(sel.coolingDown('a'), true)
  advance(1)
  assert.equal(sel.coolingDown('a'), false)

  sel.failed('a')
  advance(30 * SECOND - 1)
  assert.equal(sel.coolingDown('a'), true)
  advance(1)
  assert.equal(sel.coolingDown('a'), false)

  sel.failed('a')
  advance(60 * SECOND - 1)
  assert.equal(sel.coolingDown('a'), true)
  advance(1)
  assert.equal(sel.coolingDown('a'), false)

  sel.failed('a')
  assert.equal(sel.coolingDown('a'), true)
  sel.succeeded('a')
  assert.equal(sel.coolingDown('a'), false)
  sel.failed('a')
  advance(15 * SECOND)
  assert.equal(sel.coolingDown('a'), false, 'after a success the next failure starts at 15 s again')
})

test('cooldown is capped at maxCooldownMs, and a streak long past is forgotten', () => {
  const { sel, advance } = selector({ maxCooldownMs: 40 * SECOND })
  sel.failed('a') // 15 s
  advance(15 * SECOND)
  sel.failed('a') // 30 s
  advance(30 * SECOND)
  sel.failed('a') // 60 s, capped to 40 s
  advance(40 * SECOND)
  assert.equal(sel.coolingDown('a'), false)
  for (let i = 0; i < 100; i++) sel.failed('a') // 2 ** 100 must not overflow into Infinity trouble
  advance(40 * SECOND)
  assert.equal(sel.coolingDown('a'), false)

  advance(40 * SECOND) // a whole max cooldown with no failure: the streak is over
  sel.failed('a')
  advance(15 * SECOND)
  assert.equal(sel.coolingDown('a'), false)
})

test('a node fresh out of cooldown still ranks below healthy ones for a while', () => {
  const { sel, advance } = selector()
  sel.failed('flaky')
  advance(15 * SECOND)
  for (let i = 0; i < 100; i++) {
    assert.equal(sel.plan([peer('flaky'), peer('ok')], { direct: false })[0].node_id, 'ok')
  }
  advance(10 * 60 * SECOND)
  assert.ok(sel.score(peer('flaky')) < sel.score(peer('ok')) + 0.01, 'the penalty fades')
})

test('nodes cooling down are tried last, least recently failed first', () => {
  const { sel, advance } = selector()
  sel.failed('old')
  advance(SECOND)
  sel.failed('mid')
  advance(SECOND)
  sel.failed('new')
  const plan = sel.plan([peer('new'), peer('old'), peer('mid')], { direct: false })
  assert.deepEqual(ids(plan), ['old', 'mid', 'new'])
  // The fallback still respects the other filters.
  assert.deepEqual(ids(sel.plan([peer('new'), peer('old')], { direct: false, exclude: ['old'] })), ['new'])
  assert.deepEqual(sel.plan([peer('old', { connectivity: 4 })], { direct: true }), [])
  // One node out of cooldown: it goes first, cooling nodes after it, up to maxAttempts.
  assert.deepEqual(ids(sel.plan([peer('new'), peer('old'), peer('fine')], { direct: false })), ['fine', 'old', 'new'])
  assert.deepEqual(ids(sel.plan([peer('new'), peer('mid'), peer('old'), peer('fine')], { direct: false })), ['fine', 'old', 'mid'])
  // Enough healthy nodes: no cooling node is tried.
  assert.deepEqual(ids(sel.plan([peer('new'), peer('f1'), peer('f2'), peer('f3')], { direct: false })).sort(), ['f1', 'f2', 'f3'])
})

test('isRetryable', () => {
  const cases: Array<[unknown, boolean]> = [
    [new AicnError(ErrorCode.ROUTING), true],
    [new AicnError(ErrorCode.STREAM), true],
    [new AicnError(ErrorCode.TIMEOUT), true],
    [new AicnError(ErrorCode.MODEL), true],
    [new AicnError(ErrorCode.MODEL, 'overloaded', { status: 503 }), true],
    [new AicnError(ErrorCode.MODEL, 'rate limited', { status: 429 }), true],
    [new AicnError(ErrorCode.MODEL, 'bad request', { status: 400 }), false],
    [new AicnError(ErrorCode.MODEL, 'not found', { status: 404 }), false],
    [new AicnError(ErrorCode.PARAM), false],
    [new AicnError(ErrorCode.BUFFER), false],
    [new AicnError(ErrorCode.PERMISSION), false],
    [new Error('aborted'), false],
    ['string', false],
    [undefined, false]
  ]
  for (const [err, expected] of cases) {
    assert.equal(isRetryable(err), expected, `${String(err)} (${(err as AicnError)?.status})`)
  }
})

test('memory: quiet nodes are forgotten, busy and cooling ones kept', () => {
  const { sel, advance } = selector()
  const release = sel.started('running')
  sel.failed('cooling')
  for (let i = 0; i < 500; i++) {
    sel.failed('n' + i)
    sel.succeeded('n' + i) // fading penalty keeps them for a while
  }
  assert.equal(sel.trackedNodes, 502)
  advance(5 * 60 * SECOND)
  sel.failed('cooling') // failing again: 30 s cooldown, and its streak is remembered for 5 min after that
  advance(4 * 60 * SECOND)
  assert.equal(sel.trackedNodes, 2, 'penalties faded; the running job and the recent streak remain')
  release()
  advance(20 * 60 * SECOND)
  assert.equal(sel.trackedNodes, 0)
})

test('memory: the map is capped even when nothing fades', () => {
  const { sel } = selector()
  const release = sel.started('running')
  for (let i = 0; i < MAX_TRACKED_NODES + 500; i++) sel.failed('n' + i)
  assert.equal(sel.trackedNodes, MAX_TRACKED_NODES)
  assert.equal(sel.inFlight('running'), 1, 'a node with a running job is never evicted')
  release()
  assert.equal(sel.inFlight('running'), 0)
})
