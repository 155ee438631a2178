// Fuzzing (issue 7), the bounded run for CI: generated HTTP requests on every route, and garbage and
// mutated frames on the job and RPC protocols from a rogue peer, against one pair of daemons (input node
// B, worker W with a fake model). A node must never crash, hang or leak, and every bad input gets an
// error. The generators and judges live in scripts/fuzz.ts, which is also the long run.
//
// AICN_FUZZ_RUNS sets the number of HTTP requests (default 300; a third as many protocol streams), and
// AICN_FUZZ_SEED replays a run: every failure message names the seed.
import '../../src/core/polyfill.ts'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { multiaddr } from '@multiformats/multiaddr'
import {
  apiRoutes, checkAlive, Findings, httpCaseArb, jobCaseArb, normalJob, restoreModel, rpcCaseArb, rssKiB, runHttpCases,
  runStreamCase, runStreamCases, settledStreams, startFuzzPair, startRogue, Tally, judgeStream, type FuzzPair
} from '../../scripts/fuzz.ts'
import { connectedPeers, waitFor } from './harness.ts'

const RUNS = Number(process.env.AICN_FUZZ_RUNS ?? 300)
const SEED = Number(process.env.AICN_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
/** After this many requests, both nodes must still answer /api/v0/id. */
const BATCH = 50

describe(`fuzzing: ${RUNS} HTTP requests, seed ${SEED}`, () => {
  let pair: FuzzPair
  let rssBefore = 0

  before(async () => {
    pair = await startFuzzPair()
    assert.equal(await normalJob(pair), undefined)
    rssBefore = await rssKiB(pair.w.pid)
  })

  after(async () => {
    await pair?.close()
  })

  test('HTTP: generated requests on every route get a documented answer, and both nodes keep serving', { timeout: 15 * 60_000 }, async () => {
    const routes = apiRoutes()
    const cases = fc.sample(httpCaseArb(pair.env, routes), { numRuns: RUNS, seed: SEED })
    const findings = new Findings()
    const tally = new Tally()
    for (let i = 0; i < cases.length; i += BATCH) {
      await runHttpCases(pair, cases.slice(i, i + BATCH), tally, findings)
      for (const problem of await checkAlive(pair)) findings.add('daemon', problem, `after request ${i + BATCH}`)
      if (!pair.b.running || !pair.w.running) break
    }
    assert.equal(findings.size, 0, `seed ${SEED}, ${findings.size} finding(s):\n${findings.toString()}\n\nper route:\n${tally.toString()}`)
    // The generator spreads over every route; a run that missed many would prove little.
    if (RUNS >= 300) {
      const tried = routes.filter((r) => tally.counts.has(r.path)).length
      assert.ok(tried >= 0.9 * routes.length, `only ${tried} of ${routes.length} routes were tried`)
    }
  })

  test('job and RPC protocols: garbage from a rogue peer gets resets or error answers, and the worker keeps serving and frees its streams', { timeout: 10 * 60_000 }, async () => {
    // The HTTP fuzzing may have unregistered W's model; the checks below need it.
    await restoreModel(pair)
    const rogue = await startRogue()
    const rogueId = rogue.peerId.toString()
    const findings = new Findings()
    const tally = new Tally()
    try {
      // A stream that never sends a head: the worker must cut it after its 10 s head timeout, not hold it.
      const silentCase = { protocol: 'job' as const, family: 'silent', chunks: [], ending: 'hold' as const }
      const silent = runStreamCase(rogue, multiaddr(await pair.w.addr()), silentCase, 20_000)
      const cases = fc.sample(fc.oneof(jobCaseArb(pair.env), rpcCaseArb(pair.env, rogueId)), { numRuns: Math.ceil(RUNS / 3), seed: SEED })
      await runStreamCases(rogue, pair, cases, tally, findings)
      const silentOutcome = await silent
      const silentProblem = judgeStream(silentCase, silentOutcome, pair.env, rogueId)
      if (silentProblem !== undefined) findings.add('W job [silent]', silentProblem, 'a job stream with nothing sent')
      assert.equal(findings.size, 0, `seed ${SEED}, ${findings.size} finding(s):\n${findings.toString()}\n\nper family:\n${tally.toString()}`)

      assert.equal(await normalJob(pair), undefined)
      assert.equal((await pair.w.call('/api/v0/id')).status, 200)
      // Leak check: every job and RPC stream the rogue opened is gone again.
      assert.equal(await settledStreams(pair), 0, 'job/RPC streams still open on W 30 s after the fuzzing')
    } finally {
      await rogue.stop()
    }
    await waitFor(async () => !(await connectedPeers(pair.w)).includes(rogueId), 15_000, 'W to drop the rogue\'s connection')
  })

  test('memory: the worker\'s RSS after the fuzzing is at most twice what it was before', async () => {
    // Loose on purpose: this catches runaway growth (a buffer kept per bad request), it is no benchmark.
    const rssAfter = await rssKiB(pair.w.pid)
    assert.ok(rssAfter <= 2 * rssBefore, `W's RSS went from ${rssBefore} to ${rssAfter} KiB`)
  })
})
