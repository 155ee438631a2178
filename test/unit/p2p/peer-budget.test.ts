// The per-peer budgets of the job streams (src/p2p/peer-budget.ts), with a fake clock, and the
// stream readers that report to them (src/protocols/job/job-frames.ts) on in-memory streams.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BudgetError, Lease, PeerBudgets } from '../../../src/p2p/peer-budget.ts'
import { badJobNames, badName, badToken } from '../../../src/core/identifiers.ts'
import { parseRequestHead } from '../../../src/protocols/job/job-frames.ts'

function clock (): { now: () => number, advance: (ms: number) => void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => { t += ms } }
}

function lease (budgets: PeerBudgets, peer: string, aborted: Error[] = []): Lease {
  const got = budgets.open(peer, (err) => { aborted.push(err) })
  assert.ok(got instanceof Lease, `expected a lease, got ${(got as Error).message}`)
  return got
}

test('streams are counted per peer and node-wide, and given back on close', () => {
  const budgets = new PeerBudgets({ maxStreamsPerPeer: 2, maxStreams: 3, strikes: 100 })
  const a1 = lease(budgets, 'A')
  lease(budgets, 'A')
  assert.ok(budgets.open('A', () => {}) instanceof BudgetError, 'a third stream of A is refused')
  lease(budgets, 'B')
  assert.ok(budgets.open('C', () => {}) instanceof BudgetError, 'the node-wide cap holds for a new peer')
  a1.close()
  a1.close() // twice is harmless
  lease(budgets, 'C')
  assert.equal(budgets.stats().streams, 3)
})

test('held bytes: per peer and node-wide; an increase over a limit changes nothing; close gives all back', () => {
  const budgets = new PeerBudgets({ maxHeldBytesPerPeer: 1000, maxHeldBytes: 1200, strikes: 100 })
  const a = lease(budgets, 'A')
  const a2 = lease(budgets, 'A')
  assert.equal(a.hold(600), undefined)
  assert.ok(a2.hold(500) instanceof BudgetError, 'A would hold 1100')
  assert.equal(a2.hold(400), undefined)
  assert.equal(a.hold(100), undefined, 'a decrease always works')
  const b = lease(budgets, 'B')
  assert.ok(b.keep(800) instanceof BudgetError, 'the node would hold 1300')
  assert.equal(b.keep(700), undefined)
  assert.equal(budgets.stats().heldBytes, 1200)
  a.close(); a2.close(); b.close()
  // A keeps its strike (over its own limit) for a while; B, refused only by the node-wide limit, has none.
  assert.deepEqual(budgets.stats(), { streams: 0, heldBytes: 0, peers: 1, penalised: 0 })
})

test('job starts: a bucket per peer that refills with time', () => {
  const c = clock()
  const budgets = new PeerBudgets({ jobsPerSecond: 10, jobBurst: 3, strikes: 100, now: c.now })
  const a = lease(budgets, 'A')
  for (let i = 0; i < 3; i++) assert.equal(a.startJob(), undefined)
  assert.ok(a.startJob() instanceof BudgetError)
  assert.equal(lease(budgets, 'B').startJob(), undefined, 'another peer has its own bucket')
  c.advance(100)
  assert.equal(a.startJob(), undefined, 'one job per 100 ms comes back')
  assert.ok(a.startJob() instanceof BudgetError)
})

test('strikes put a peer in the penalty box: its streams are aborted, new ones refused, the node told once', () => {
  const c = clock()
  const penalised: string[] = []
  const budgets = new PeerBudgets({ maxHeldBytesPerPeer: 100, strikes: 3, strikeWindowMs: 10_000, penaltyMs: 60_000, now: c.now, onPenalty: (peer) => penalised.push(peer) })
  const aborted: Error[] = []
  const a1 = lease(budgets, 'A', aborted)
  lease(budgets, 'A', aborted)
  const honest = lease(budgets, 'H')
  a1.hold(101)
  a1.hold(101)
  assert.deepEqual(penalised, [])
  a1.hold(101)
  assert.deepEqual(penalised, ['A'])
  assert.equal(aborted.length, 2, 'both open streams of A were aborted')
  assert.ok(aborted.every((err) => err instanceof BudgetError))
  assert.ok(budgets.penalised('A'))
  assert.ok(budgets.open('A', () => {}) instanceof BudgetError, 'refused while penalised')
  assert.equal(honest.hold(10), undefined, 'an honest peer is unaffected')
  assert.equal(budgets.stats().streams, 1)
  c.advance(60_001)
  assert.ok(!budgets.penalised('A'))
  lease(budgets, 'A')
})

test('too many streams are refused, but without a strike (a busy input node is not penalised)', () => {
  const budgets = new PeerBudgets({ maxStreamsPerPeer: 1, strikes: 1 })
  lease(budgets, 'A')
  for (let i = 0; i < 10; i++) assert.ok(budgets.open('A', () => {}) instanceof BudgetError)
  assert.ok(!budgets.penalised('A'))
})

test('strikes older than the window are forgotten', () => {
  const c = clock()
  const budgets = new PeerBudgets({ maxHeldBytesPerPeer: 0, strikes: 2, strikeWindowMs: 1000, now: c.now })
  const a = lease(budgets, 'A')
  a.hold(1)
  c.advance(1001)
  a.hold(1)
  assert.ok(!budgets.penalised('A'))
  a.hold(1)
  assert.ok(budgets.penalised('A'))
})

test('the table of peers stays bounded', () => {
  const budgets = new PeerBudgets({ maxStreams: 4 })
  for (let i = 0; i < 1000; i++) lease(budgets, `P${i}`).close()
  assert.ok(budgets.stats().peers <= 16, `${budgets.stats().peers} peers kept`)
})

test('names from peers: control characters, lengths and header safety', () => {
  assert.equal(badName('model', 'deepseek-r1:7b'), undefined)
  assert.equal(badName('model', 'meta-llama/Llama 3 8B 中文'), undefined)
  assert.match(badName('model', '') ?? '', /empty/)
  assert.match(badName('project', 'a\r\nX-Evil: 1') ?? '', /control/)
  assert.match(badName('project', 'x'.repeat(257)) ?? '', /longer/)
  assert.equal(badToken('cid', ''), undefined)
  assert.equal(badToken('cid', 'bafkreigh2akiscaildc'), undefined)
  assert.match(badToken('cid', 'abc\r\nSet-Cookie: x') ?? '', /cannot go into a header/)
  assert.equal(badToken('cid', 'c 1/ü'), undefined)
  assert.match(badToken('cid', 'c中') ?? '', /cannot go into a header/)
  assert.equal(badJobNames({ project: 'P', model: 'm', cid: '', contentType: 'application/json', requestId: 'r-1' }), undefined)
  // The message names the field, never the value.
  assert.doesNotMatch(badJobNames({ project: 'P', model: 'm', cid: 'SECRET\n' }) ?? '', /SECRET/)
})

test('a job head with a CRLF cid or project is refused at the protocol edge', () => {
  const head = { request_id: 'r', project: 'P', model: 'm', cid: '', kind: 0, content_type: 'application/json', stream: true, deadline_unix_ms: 0 }
  assert.doesNotThrow(() => parseRequestHead(head))
  assert.throws(() => parseRequestHead({ ...head, cid: 'c\r\nX: y' }), /cid/)
  assert.throws(() => parseRequestHead({ ...head, project: 'P\n' }), /project/)
  assert.throws(() => parseRequestHead({ ...head, content_type: 'a\r\nb' }), /content type/)
  assert.throws(() => parseRequestHead({ ...head, path: '/x\n' }), /path/)
})
