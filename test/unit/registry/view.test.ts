import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { MAX_VIEW_NODES, NetworkView, type NetworkViewOptions } from '../../../src/registry/view.ts'
import { ViewStore } from '../../../src/registry/view-store.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import { MAX_MODELS_PER_NODE, MAX_MODELS_PER_PROJECT, MAX_PROJECTS_PER_NODE, MAX_STRING_LENGTH, type Candidate, type NodeEntry, type ViewModel } from '../../../src/registry/view-types.ts'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const T0 = 1_700_000_000_000

/** A clock the test moves by hand. */
function clock (start = T0): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

function model (name: string, cid = 'cid-' + name, busy = 0, available = true, type = 0): ViewModel {
  return { model: name, cid, type, busy, available }
}

function entry (nodeId: string, projects: Record<string, ViewModel[]>, lastHeard = T0): NodeEntry {
  return {
    nodeId,
    projects: Object.entries(projects).map(([project, models]) => ({ project, models })),
    nodeType: 0x04,
    version: 'aicn/0.1.0',
    lastHeard
  }
}

function ids (candidates: Candidate[]): string[] {
  return candidates.map((c) => c.nodeId).sort()
}

function view (options: Partial<NetworkViewOptions> = {}): NetworkView {
  return new NetworkView({ routingFreshMs: 10 * MINUTE, now: () => T0, ...options })
}

async function withDir (run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-view-'))
  try {
    await run(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test('update, get and remove', () => {
  const v = view()
  const a = entry('A', { P: [model('m1')] })
  v.update(a)
  assert.deepEqual(v.get('A'), a)
  assert.equal(v.get('B'), undefined)
  assert.equal(v.size(), 1)
  assert.deepEqual(v.nodes(), ['A'])
  assert.deepEqual(ids(v.candidates('P', 'm1')), ['A'])

  v.remove('A')
  assert.equal(v.get('A'), undefined)
  assert.equal(v.size(), 0)
  assert.deepEqual(v.nodes(), [])
  assert.deepEqual(v.projects(10), [])
  assert.deepEqual(v.models('P', 10), [])
  assert.deepEqual(v.candidates('P', 'm1'), [])
  v.remove('A') // removing an unknown node is harmless
})

test('get returns a copy: changing it does not change the view', () => {
  const v = view()
  v.update(entry('A', { P: [model('m1')] }))
  const got = v.get('A')!
  got.projects[0]!.models[0]!.available = false
  got.projects.push({ project: 'Q', models: [] })
  assert.equal(v.candidates('P', 'm1').length, 1)
  assert.deepEqual(v.projects(10), ['P'])
})

test('the view keeps its own copy of an update', () => {
  const v = view()
  const a = entry('A', { P: [model('m1')] })
  v.update(a)
  a.projects[0]!.models[0]!.available = false
  a.projects[0]!.project = 'Z'
  assert.deepEqual(v.projects(10), ['P'])
  assert.equal(v.candidates('P', 'm1').length, 1)
})

test('replacing an entry updates every index', () => {
  const v = view()
  v.update(entry('A', { P: [model('m1'), model('m2')], Q: [model('q1')] }))
  v.update(entry('B', { P: [model('m1')] }))
  assert.deepEqual(v.projects(10), ['P', 'Q'])
  assert.deepEqual(v.models('P', 10), ['m1', 'm2'])

  // A drops m2 and project Q, adds project R.
  v.update(entry('A', { P: [model('m1')], R: [model('r1')] }))
  assert.deepEqual(v.projects(10), ['P', 'R'])
  assert.deepEqual(v.models('P', 10), ['m1'])
  assert.deepEqual(v.models('Q', 10), [])
  assert.deepEqual(v.candidates('P', 'm2'), [])
  assert.deepEqual(v.candidates('Q', 'q1'), [])
  assert.deepEqual(ids(v.candidates('P', 'm1')), ['A', 'B'])
  assert.deepEqual(ids(v.candidates('R', 'r1')), ['A'])

  // B drops m1: only A still lists it.
  v.update(entry('B', { P: [model('m3')] }))
  assert.deepEqual(ids(v.candidates('P', 'm1')), ['A'])
  assert.deepEqual(v.models('P', 10), ['m1', 'm3'])
})

test('freshness: routing window, list window, expiry and prune', () => {
  const c = clock()
  const v = view({ now: c.now, routingFreshMs: 10 * MINUTE, listFreshMs: 12 * HOUR, expireMs: 24 * HOUR })
  v.update(entry('old', { P: [model('m')] }, c.now()))
  c.advance(9 * MINUTE)
  v.update(entry('new', { P: [model('m')], Q: [model('q')] }, c.now()))

  // old heard 9 min ago: still routable (the window's edge counts as fresh).
  assert.deepEqual(ids(v.candidates('P', 'm')), ['new', 'old'])
  c.advance(1 * MINUTE)
  assert.deepEqual(ids(v.candidates('P', 'm')), ['new', 'old'])
  c.advance(1)
  assert.deepEqual(ids(v.candidates('P', 'm')), ['new'])

  // Past routing freshness but within the list window: listed, not routed.
  c.advance(10 * MINUTE)
  assert.deepEqual(v.candidates('P', 'm'), [])
  assert.deepEqual(v.candidates('Q', 'q'), [])
  assert.deepEqual(v.nodes(), ['new', 'old'])
  assert.deepEqual(v.projects(10), ['P', 'Q'])
  assert.deepEqual(v.models('Q', 10), ['q'])

  // old leaves the list window first; Q (announced by new only) is still listed.
  c.advance(12 * HOUR - 20 * MINUTE)
  assert.deepEqual(v.nodes(), ['new'])
  assert.deepEqual(v.projects(10), ['P', 'Q'])
  c.advance(10 * MINUTE)
  assert.deepEqual(v.nodes(), [])
  assert.deepEqual(v.projects(10), [])
  assert.deepEqual(v.models('P', 10), [])
  assert.equal(v.size(), 2, 'out of the lists, but kept until expiry')
  assert.notEqual(v.get('old'), undefined)

  // Expiry: prune deletes only entries older than expireMs.
  assert.equal(v.prune(), 0)
  c.advance(12 * HOUR - 9 * MINUTE)
  assert.equal(v.prune(), 1)
  assert.equal(v.get('old'), undefined)
  assert.equal(v.size(), 1)
  c.advance(10 * MINUTE)
  assert.equal(v.prune(), 1)
  assert.equal(v.size(), 0)
  assert.equal(v.prune(), 0)
})

test('a project disappears from lists when its freshest node leaves and the others are stale', () => {
  const c = clock()
  const v = view({ now: c.now, listFreshMs: HOUR })
  v.update(entry('A', { P: [model('m')] }, c.now()))
  c.advance(2 * HOUR)
  v.update(entry('B', { P: [model('m')] }, c.now()))
  assert.deepEqual(v.projects(10), ['P'])
  v.remove('B')
  assert.deepEqual(v.projects(10), [])
  assert.deepEqual(v.models('P', 10), [])
  // A fresh heartbeat from A brings it back.
  v.update(entry('A', { P: [model('m')] }, c.now()))
  assert.deepEqual(v.projects(10), ['P'])
  // A heartbeat that makes the freshest node older (a clock step back) is accounted for too.
  v.update(entry('A', { P: [model('m')] }, c.now() - 2 * HOUR))
  assert.deepEqual(v.projects(10), [])
})

test('per node one candidate: the least busy available copy, ties to the smallest cid', () => {
  const v = view()
  v.update(entry('A', { P: [model('m', 'c3', 5), model('m', 'c2', 1), model('m', 'c9', 0, false), model('m', 'c1', 1), model('other', 'x', 0)] }))
  v.update(entry('B', { P: [model('m', 'b', 7, true, 2)] }))
  const byNode = new Map(v.candidates('P', 'm').map((c) => [c.nodeId, c]))
  assert.equal(byNode.size, 2)
  assert.deepEqual(byNode.get('A'), { nodeId: 'A', cid: 'c1', type: 0, busy: 1, lastHeard: T0 })
  assert.deepEqual(byNode.get('B'), { nodeId: 'B', cid: 'b', type: 2, busy: 7, lastHeard: T0 })
})

test('unavailable models are no candidates but are still listed', () => {
  const v = view()
  v.update(entry('A', { P: [model('down', 'c', 0, false), model('up')] }))
  v.update(entry('B', { P: [model('down', 'c', 0, false)] }))
  assert.deepEqual(v.candidates('P', 'down'), [])
  assert.deepEqual(ids(v.candidates('P', 'up')), ['A'])
  assert.deepEqual(v.models('P', 10), ['down', 'up'])
  // Becoming available makes it a candidate.
  v.update(entry('B', { P: [model('down', 'c', 0, true)] }))
  assert.deepEqual(ids(v.candidates('P', 'down')), ['B'])
})

test('a node serving nothing is listed as a node but in no project', () => {
  const v = view()
  v.update(entry('idle', {}))
  v.update(entry('empty-project', { E: [] }))
  assert.deepEqual(v.nodes(), ['empty-project', 'idle'])
  assert.deepEqual(v.projects(10), ['E'])
  assert.deepEqual(v.models('E', 10), [])
  assert.equal(v.size(), 2)
  // A node that stops serving everything stays alive in the view.
  v.update(entry('A', { P: [model('m')] }))
  v.update(entry('A', {}))
  assert.deepEqual(v.projects(10), ['E'])
  assert.deepEqual(v.candidates('P', 'm'), [])
  assert.deepEqual(v.nodes(), ['A', 'empty-project', 'idle'])
})

test('query limits and sorting', () => {
  const v = view()
  v.update(entry('A', { Pc: [model('m3'), model('m1')], Pa: [model('m2')] }))
  v.update(entry('B', { Pb: [] }))
  assert.deepEqual(v.projects(100), ['Pa', 'Pb', 'Pc'])
  assert.deepEqual(v.projects(2), ['Pa', 'Pb'])
  assert.deepEqual(v.projects(0), [])
  assert.deepEqual(v.projects(-1), [])
  assert.deepEqual(v.models('Pc', 100), ['m1', 'm3'])
  assert.deepEqual(v.models('Pc', 1), ['m1'])
  assert.deepEqual(v.models('Pc', 0), [])
  assert.deepEqual(v.models('nope', 10), [])
})

test('malformed heartbeats are cleaned or ignored without disturbing other entries', () => {
  const v = view()
  v.update(entry('A', { P: [model('m')] }))
  const bad: unknown[] = [
    null, 42, 'A', [], {},
    { nodeId: '', projects: [], nodeType: 0, version: '', lastHeard: T0 },
    { nodeId: 'x'.repeat(MAX_STRING_LENGTH + 1), projects: [], nodeType: 0, version: '', lastHeard: T0 },
    { nodeId: 'A', projects: 'nope', nodeType: 0, version: '', lastHeard: T0 },
    { nodeId: 'A', projects: [], nodeType: 0, version: '', lastHeard: 'now' },
    { nodeId: 'A', projects: [], nodeType: 0, version: '', lastHeard: Number.NaN }
  ]
  for (const b of bad) v.update(b as NodeEntry)
  assert.equal(v.size(), 1)
  assert.deepEqual(ids(v.candidates('P', 'm')), ['A'])

  // Bad parts are dropped, good parts kept.
  v.update({
    nodeId: 'C',
    projects: [
      null,
      { project: 'P', models: 'nope' },
      { project: 7, models: [] },
      { project: 'P', models: [null, { model: '' }, { model: 'm', cid: 1, type: 0, busy: 0, available: true },
        { model: 'm', cid: 'c', type: 'x', busy: 0, available: true }, { model: 'm', cid: 'c', type: 0, busy: Infinity, available: true },
        { model: 'm', cid: 'c', type: 0, busy: 0, available: 'yes' }, { model: 'm', cid: 'c'.repeat(MAX_STRING_LENGTH + 1), type: 0, busy: 0, available: true },
        { model: 'm', cid: 'ok', type: 1, busy: -3, available: true }] },
      { project: 'Q', models: [model('q')] },
      { project: 'P', models: [model('m2')] } // a duplicate project name is merged
    ],
    nodeType: 'seven',
    version: 'v'.repeat(1000),
    lastHeard: T0
  } as unknown as NodeEntry)
  const c = v.get('C')!
  assert.equal(c.nodeType, 0)
  assert.equal(c.version.length, MAX_STRING_LENGTH)
  assert.deepEqual(c.projects, [
    { project: 'P', models: [{ model: 'm', cid: 'ok', type: 1, busy: 0, available: true }, model('m2')] },
    { project: 'Q', models: [model('q')] }
  ])
  assert.deepEqual(ids(v.candidates('P', 'm')), ['A', 'C'])
})

test('per-node limits: at most 1,000 projects and 1,000 models per project', () => {
  const v = view()
  const projects: Record<string, ViewModel[]> = {}
  for (let p = 0; p < MAX_PROJECTS_PER_NODE + 5; p++) projects[`p${String(p).padStart(5, '0')}`] = []
  projects.p00000 = Array.from({ length: MAX_MODELS_PER_PROJECT + 5 }, (_, i) => model(`m${String(i).padStart(5, '0')}`))
  v.update(entry('big', projects))
  const big = v.get('big')!
  assert.equal(big.projects.length, MAX_PROJECTS_PER_NODE)
  assert.equal(big.projects[0]!.models.length, MAX_MODELS_PER_PROJECT)
  assert.equal(v.projects(5000).length, MAX_PROJECTS_PER_NODE)
  assert.equal(v.models('p00000', 5000).length, MAX_MODELS_PER_PROJECT)
  assert.deepEqual(v.projects(3), ['p00000', 'p00001', 'p00002'])
})

test('bad options are a programming error', () => {
  assert.throws(() => new NetworkView({ routingFreshMs: 0 }), TypeError)
  assert.throws(() => new NetworkView({ routingFreshMs: 1000, expireMs: -1 }), TypeError)
})

test('persistence: a reopened view has the same entries; expired and malformed records are dropped', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'nested', 'view.db')
    const c = clock()
    const first = view({ path, now: c.now })
    await first.open()
    const a = entry('A', { P: [model('m', 'c1', 2)], Q: [] }, c.now())
    const b = entry('B', {}, c.now() - 23 * HOUR)
    const expired = entry('X', { P: [model('m')] }, c.now() - 25 * HOUR)
    first.update(a)
    first.update(b)
    first.update(expired)
    first.update(entry('gone', { P: [model('m')] }, c.now()))
    first.remove('gone')
    await first.close()

    // Records written behind the view's back: not JSON, wrong shape, key ≠ node id.
    const db = new Level<string, string>(path, { valueEncoding: 'utf8' })
    await db.put('broken', '{not json')
    await db.put('shape', JSON.stringify({ nodeId: 'shape', projects: 3 }))
    await db.put('other', JSON.stringify(entry('someone-else', {})))
    await db.close()

    const second = view({ path, now: c.now })
    await second.open()
    assert.deepEqual(second.get('A'), a)
    assert.deepEqual(second.get('B'), b)
    assert.equal(second.get('X'), undefined)
    assert.equal(second.get('gone'), undefined)
    assert.equal(second.size(), 2)
    assert.deepEqual(second.nodes(), ['A'])
    assert.deepEqual(second.projects(10), ['P', 'Q'])
    assert.deepEqual(second.candidates('P', 'm'), [{ nodeId: 'A', cid: 'c1', type: 0, busy: 2, lastHeard: T0 }])
    await second.close()

    // Expired and malformed records were deleted from the disk, not just skipped.
    const check = new Level<string, string>(path, { valueEncoding: 'utf8' })
    assert.deepEqual(await check.keys().all(), ['A', 'B'])
    await check.close()
  })
})

test('updates and removals made before open win over the disk', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'view.db')
    const first = view({ path })
    await first.open()
    first.update(entry('A', { P: [model('old')] }))
    first.update(entry('B', { P: [model('m')] }))
    await first.close()

    const second = view({ path })
    second.update(entry('A', { P: [model('new')] })) // usable before open
    second.remove('B')
    assert.deepEqual(second.models('P', 10), ['new'])
    await second.open()
    assert.deepEqual(second.models('P', 10), ['new'])
    assert.equal(second.get('B'), undefined)
    await second.close()

    const third = view({ path })
    await third.open()
    assert.deepEqual(third.models('P', 10), ['new'])
    assert.equal(third.get('B'), undefined)
    await third.close()
  })
})

test('100 rapid updates of one node coalesce; the last one wins after reopening', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'view.db')
    const first = view({ path })
    await first.open()
    for (let i = 0; i < 100; i++) first.update(entry('A', { P: [model('m', 'c', i)] }, T0 + i))
    await first.close()

    const second = view({ path })
    await second.open()
    assert.equal(second.get('A')?.lastHeard, T0 + 99)
    assert.equal(second.candidates('P', 'm')[0]?.busy, 99)
    await second.close()
  })
})

test('the store writes one batch for a burst, at most one operation per node', async () => {
  await withDir(async (dir) => {
    const store = new ViewStore(join(dir, 'view.db'), silentLogger)
    assert.deepEqual(await store.open(), [])
    for (let i = 0; i < 100; i++) store.put(entry('A', {}, T0 + i))
    for (let i = 0; i < 50; i++) store.put(entry('B', {}, T0 + i))
    store.del('B')
    assert.equal(store.isPending('A'), true)
    await store.close()
    assert.deepEqual(store.stats, { batches: 1, puts: 1, dels: 1, failures: 0 })
    await store.close() // twice is fine
    store.put(entry('C', {})) // after close: ignored, not thrown
  })
})

test('a view without a path is memory only; open and close are no-ops', async () => {
  const v = view()
  await v.open()
  v.update(entry('A', {}))
  await v.close()
  assert.equal(v.size(), 1)
})

test('a node marked unreachable leaves routing (not the lists) until its next heartbeat or markReachable', () => {
  const v = view()
  v.update(entry('A', { P: [model('m')] }))
  v.update(entry('B', { P: [model('m')] }))
  v.markUnreachable('A')
  v.markUnreachable('nobody') // unknown nodes are not remembered
  assert.deepEqual(ids(v.candidates('P', 'm')), ['B'])
  assert.deepEqual(v.nodes(), ['A', 'B'])
  v.update(entry('A', { P: [model('m')] }))
  assert.deepEqual(ids(v.candidates('P', 'm')), ['A', 'B'], 'heard again')
  v.markUnreachable('A')
  v.markReachable('A')
  assert.deepEqual(ids(v.candidates('P', 'm')), ['A', 'B'], 'connected again')
  v.markUnreachable('B')
  v.remove('B')
  v.update(entry('B', { P: [model('m')] }))
  assert.deepEqual(ids(v.candidates('P', 'm')), ['A', 'B'], 'a node that left and came back is not still marked')
  assert.equal(v.has('A'), true)
  assert.equal(v.has('nobody'), false)
})

test('Sybil bounds: a node announces at most 1,024 models, and a full view forgets the node heard longest ago', () => {
  const v = view()
  const many = Array.from({ length: 60_000 }, (_, i) => model(`m${i}`))
  v.update(entry('sybil', { P1: many.slice(0, 30_000), P2: many.slice(30_000) }))
  const kept = (v.get('sybil')?.projects ?? []).reduce((n, p) => n + p.models.length, 0)
  assert.equal(kept, MAX_MODELS_PER_NODE)

  const full = view()
  for (let i = 0; i < MAX_VIEW_NODES; i++) full.update(entry(`n${i}`, { P: [model('m')] }, T0 - MAX_VIEW_NODES + i))
  assert.equal(full.nodes().length, MAX_VIEW_NODES)
  full.update(entry('newcomer', { P: [model('m')] }, T0))
  assert.equal(full.nodes().length, MAX_VIEW_NODES, 'the view does not grow past its bound')
  assert.ok(full.has('newcomer'))
  assert.ok(!full.has('n0'), 'the node heard longest ago was forgotten')
  assert.ok(full.has(`n${MAX_VIEW_NODES - 1}`))
})

test('downCandidates: nodes that list the model with no available copy, for one last try', () => {
  const v = view()
  v.update(entry('up', { P: [model('m')] }))
  v.update(entry('down', { P: [model('m', 'c1', 0, false)] }))
  assert.deepEqual(ids(v.candidates('P', 'm')), ['up'])
  assert.deepEqual(v.downCandidates('P', 'm').map((c) => c.nodeId), ['down'])
  v.markUnreachable('down')
  assert.deepEqual(v.downCandidates('P', 'm'), [])
})
