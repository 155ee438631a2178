// The job protocol as a libp2p service (src/protocols/job/) on in-memory streams and stub components
// (test/helpers/memory-peers.ts): what it registers, a job there and back, and what libp2p's
// beforeStop does to a running job. The wire-level cases run on real connections in job-protocol.test.ts.
import '../../../src/core/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ErrorCode } from '../../../src/core/errors.ts'
import { collect } from '../../../src/core/iterables.ts'
import type { JobRunner } from '../../../src/core/job-types.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import { JOB_PROTOCOLS, JobProtocol, jobProtocol } from '../../../src/protocols/job/index.ts'
import { memoryPeers, runnerHeldUntilAborted } from '../../helpers/memory-peers.ts'
import { head, once } from '../../helpers/jobs.ts'

const never = new AbortController().signal

/** Answers with the request body, upper-cased. */
const shout: JobRunner = async (request) => {
  const text = Buffer.from(await collect(request.body, 1 << 20) ?? []).toString()
  return { status: 200, contentType: 'application/json', nodeId: '', cid: 'c1', body: once(Buffer.from(text.toUpperCase())) }
}

test('as a libp2p service: start registers both protocol versions, stop removes them; serve: false registers none', async () => {
  const [a, b] = await memoryPeers(2)
  const jobs = jobProtocol({ log: silentLogger })(a.components)
  assert.ok(jobs instanceof JobProtocol)
  await jobs.start()
  assert.deepEqual(a.protocols(), [...JOB_PROTOCOLS].sort())
  await jobs.stop()
  assert.deepEqual(a.protocols(), [])

  const sender = new JobProtocol(b.components, { log: silentLogger, serve: false })
  await sender.start()
  assert.deepEqual(b.protocols(), [])
  await sender.stop()
})

test('a job goes to the worker and its answer comes back, with the worker\'s node id', async () => {
  const [a, w] = await memoryPeers(2)
  const requester = new JobProtocol(a.components, { log: silentLogger, serve: false })
  const worker = new JobProtocol(w.components, { log: silentLogger })
  worker.serveWith(shout)
  await worker.start()
  try {
    const response = await requester.run(w.peerId, { head: head('m'), body: once(Buffer.from('{"q":"hi"}')) }, never)
    assert.equal(response.status, 200)
    assert.equal(response.nodeId, w.peerId.toString())
    assert.equal(response.cid, 'c1')
    assert.equal(Buffer.from(await collect(response.body, 1 << 20) ?? []).toString(), '{"Q":"HI"}')
  } finally {
    await requester.stop()
    await worker.stop()
  }
})

test('a worker with no runner yet refuses the job stream; the requester gets an error, not a hang', async () => {
  const [a, w] = await memoryPeers(2)
  const requester = new JobProtocol(a.components, { log: silentLogger, serve: false })
  const worker = new JobProtocol(w.components, { log: silentLogger })
  await worker.start()
  try {
    const outcome = await requester.run(w.peerId, { head: head('m'), body: once(Buffer.from('{}')) }, AbortSignal.timeout(10_000))
      .then((response) => response.error?.code, (err: { code?: number }) => err.code)
    assert.equal(outcome, ErrorCode.STREAM)
  } finally {
    await requester.stop()
    await worker.stop()
  }
})

test('beforeStop (libp2p stopping the node) ends a running job with an error its requester sees', async () => {
  const [a, w] = await memoryPeers(2)
  const requester = new JobProtocol(a.components, { log: silentLogger, serve: false })
  const worker = new JobProtocol(w.components, { log: silentLogger })
  const { runner, running } = runnerHeldUntilAborted()
  worker.serveWith(runner)
  await worker.start()
  try {
    const answer = requester.run(w.peerId, { head: head('m'), body: once(Buffer.from('{}')) }, never)
    await running
    await worker.beforeStop()
    assert.deepEqual(w.protocols(), [], 'no new jobs once stopping')
    const response = await answer
    assert.equal(response.error?.code, ErrorCode.STREAM)
    assert.match(response.error?.message ?? '', /is stopping/)
    await worker.stop() // libp2p calls stop() after beforeStop(): nothing left to do
  } finally {
    await requester.stop()
  }
})
