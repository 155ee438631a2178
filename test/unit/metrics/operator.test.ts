// The pure parts of issue 15: health probes that retry quickly while a model is down (mock timers), the
// register-time verdict, a job that tries a model marked down, readable log lines, bounded metric
// labels, the one-minute window, and the wrong-PSK check on a connection's first bytes.
import { describe, it, mock, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { Registry } from 'prom-client'
import { HealthChecker } from '../../../src/registry/health.ts'
import { JobDispatcher } from '../../../src/jobs/dispatcher.ts'
import type { LocalExecutor } from '../../../src/jobs/local.ts'
import { NodeSelector } from '../../../src/jobs/selector.ts'
import { JobKind, type JobResponse } from '../../../src/core/job-types.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import { formatLine } from '../../../src/core/log-pretty.ts'
import type { NetworkRegistry } from '../../../src/protocols/network.ts'
import { BoundedLabels } from '../../../src/metrics/labels.ts'
import { MinuteWindow } from '../../../src/metrics/window.ts'
import { NodeMetrics } from '../../../src/metrics/node-metrics.ts'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { checkFirstBytes, explainDialError, PskMismatches } from '../../../src/p2p/psk-watch.ts'
import { startSummary } from '../../../src/metrics/operator-log.ts'
import type { Logger } from '../../../src/core/logger.ts'

/** Lets pending promise callbacks run (setImmediate is not mocked). */
const flush = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve)) }

describe('health probes while a model is down', () => {
  afterEach(() => { mock.timers.reset() })

  it('retries after 1 s, 2 s, 4 s … up to the interval, and back to the interval once up', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
    let up = false
    let probes = 0
    const changes: Array<[boolean, string]> = []
    const health = new HealthChecker({ intervalMs: 5_000, probe: async () => { probes++; if (!up) throw new Error('connect ECONNREFUSED 127.0.0.1:8000'); return true } },
      (_key, available, reason) => { changes.push([available, reason]) })
    health.watch('k', new URL('http://127.0.0.1:8000/'))
    await flush()
    assert.equal(probes, 1, 'probed at once')
    assert.deepEqual(changes, [[false, 'connect ECONNREFUSED 127.0.0.1:8000']])
    assert.equal(health.reason('k'), 'connect ECONNREFUSED 127.0.0.1:8000')
    // Delays after each failure: 1 s, 2 s, 4 s, then capped at the 5 s interval.
    for (const [delay, expected] of [[1_000, 2], [2_000, 3], [4_000, 4], [5_000, 5], [5_000, 6]] as const) {
      mock.timers.tick(delay - 1)
      await flush()
      assert.equal(probes, expected - 1, `not before ${delay} ms`)
      mock.timers.tick(1)
      await flush()
      assert.equal(probes, expected, `after ${delay} ms`)
    }
    up = true
    mock.timers.tick(5_000)
    await flush()
    assert.deepEqual(changes.at(-1), [true, ''])
    assert.equal(health.reason('k'), '')
    const before = probes
    mock.timers.tick(4_999)
    await flush()
    assert.equal(probes, before, 'while up, the interval')
    mock.timers.tick(1)
    await flush()
    assert.equal(probes, before + 1)
    health.stop()
  })

  it('settle() gives the first verdict, recheck() probes at once and restarts the backoff', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
    let up = false
    let probes = 0
    const health = new HealthChecker({ intervalMs: 30_000, probe: async () => { probes++; return up } }, () => {})
    health.watch('k', new URL('http://127.0.0.1:8000/'))
    assert.equal(await health.settle('k', 2_000), false)
    assert.equal(await health.settle('unknown', 2_000), undefined)
    mock.timers.tick(1_000) // second failure: the next retry would be 2 s away
    await flush()
    assert.equal(probes, 2)
    up = true
    health.recheck('k')
    await flush()
    assert.equal(probes, 3)
    assert.equal(health.isAvailable('k'), true)
    health.stop()
  })
})

describe('a job by project when the only model is marked down', () => {
  it('tries this node\'s own model once anyway', async () => {
    let ran = 0
    async function * body (): AsyncGenerator<Uint8Array> { yield Buffer.from('{}') }
    const dispatcher = new JobDispatcher({
      selfId: 'self',
      local: {
        serves: (project: string, model: string, kind: number) => project === 'P' && model === 'M' && kind === JobKind.CHAT,
        run: async (): Promise<JobResponse> => { ran++; return { status: 200, contentType: 'application/json', nodeId: 'self', cid: '', body: body() } }
      } as unknown as LocalExecutor,
      remote: { run: async () => { throw new Error('no remote node') } },
      selector: new NodeSelector(),
      // The view has nobody: the local model is announced as down.
      network: { peers: () => [] } as unknown as NetworkRegistry,
      log: silentLogger
    })
    const head = { requestId: 'r', project: 'P', model: 'M', cid: '', kind: JobKind.CHAT, contentType: 'application/json', stream: false, deadline: Date.now() + 60_000 }
    const response = await dispatcher.toProject({ head, body: { bytes: Buffer.from('{}') } }, new AbortController().signal, { direct: false })
    assert.equal(response.status, 200)
    assert.equal(ran, 1)
    await assert.rejects(dispatcher.toProject({ head: { ...head, model: 'other' }, body: { bytes: Buffer.from('{}') } }, new AbortController().signal, { direct: false }),
      (err: AicnError) => err.code === ErrorCode.NO_NODE)
    assert.equal(ran, 1, 'a model this node does not have is not tried')
  })
})

describe('readable log lines', () => {
  it('formats a pino line as time, level, message and fields', () => {
    const time = new Date(2026, 11, 4, 21, 5, 1, 123).getTime()
    const line = formatLine(JSON.stringify({ level: 40, time, pid: 1, hostname: 'h', name: 'aicn', msg: 'model P/M is down: no answer', project: 'P', reason: 'connect ECONNREFUSED', n: 3 }), { color: false })
    assert.equal(line, '2026-12-04 21:05:01.123 WARN  model P/M is down: no answer  project=P reason="connect ECONNREFUSED" n=3\n')
  })

  it('keeps one event on one line, cuts long fields, passes other text on', () => {
    const line = formatLine(JSON.stringify({ level: 30, time: 0, msg: 'a\nb', big: 'x'.repeat(1_000) }), { color: false })
    assert.equal(line.split('\n').length, 2)
    assert.ok(line.length < 400)
    assert.equal(formatLine('not json', { color: false }), 'not json')
    assert.match(formatLine(JSON.stringify({ level: 50, time: 0, msg: 'boom' }), { color: true }), /\u001b\[31mERROR/)
  })
})

describe('metric labels and windows', () => {
  it('keeps at most N model names and calls the rest "other"', () => {
    const labels = new BoundedLabels(2)
    assert.equal(labels.value('a'), 'a')
    assert.equal(labels.value('b'), 'b')
    assert.equal(labels.value('c'), 'other')
    assert.equal(labels.value('a'), 'a')
    assert.equal(labels.value('x'.repeat(200)), 'other')
  })

  it('counts the last minute only', () => {
    let now = 0
    const window = new MinuteWindow(() => now)
    window.add()
    window.add(2)
    now = 30_000
    window.add()
    assert.equal(window.total(), 4)
    now = 61_000
    assert.equal(window.total(), 1, 'the first three are more than a minute old')
    now = 200_000
    assert.equal(window.total(), 0)
  })

  it('a job that throws after its answer began counts as failed, one left early as cancelled', async () => {
    const registry = new Registry()
    const metrics = new NodeMetrics(registry, { viewNodes: () => 0, connectedPeers: () => 0, localModels: () => ({ up: 0, down: 0 }) })
    const head = { requestId: 'r', project: 'P', model: 'M', cid: '', kind: JobKind.CHAT, contentType: '', stream: true, deadline: 0 }
    async function * broken (): AsyncGenerator<Uint8Array> { yield Buffer.from('a'); throw new AicnError(ErrorCode.MODEL, 'cut') }
    async function * long (): AsyncGenerator<Uint8Array> { yield Buffer.from('a'); yield Buffer.from('b') }
    const failed = metrics.begin(head).answered({ status: 200, contentType: '', nodeId: 'n', cid: '', body: broken() }, 'remote')
    await assert.rejects(async () => { for await (const _ of failed.body) { /* drain until it throws */ } })
    const left = metrics.begin(head).answered({ status: 200, contentType: '', nodeId: 'n', cid: '', body: long() }, 'local')
    for await (const _ of left.body) break
    const text = await registry.metrics()
    assert.match(text, /aicn_jobs_total\{kind="chat",model="M",outcome="failed",where="remote"\} 1/)
    assert.match(text, /aicn_jobs_total\{kind="chat",model="M",outcome="cancelled",where="local"\} 1/)
    assert.equal(metrics.errorsLastMinute.total(), 1, 'a client leaving is not an error')
  })
})

describe('the summary line', () => {
  afterEach(() => { mock.timers.reset() })

  it('says every minute: peers, nodes, models up/down, jobs and errors in the last minute', () => {
    mock.timers.enable({ apis: ['setInterval'] })
    const lines: Array<[Record<string, unknown>, string]> = []
    const log = { info: (fields: Record<string, unknown>, message: string) => { lines.push([fields, message]) } } as unknown as Logger
    const metrics = new NodeMetrics(new Registry(), { viewNodes: () => 0, connectedPeers: () => 0, localModels: () => ({ up: 0, down: 0 }) })
    metrics.jobsLastMinute.add(7)
    metrics.errorsLastMinute.add(2)
    const stop = startSummary(metrics, { peers: () => 3, viewNodes: () => 5, models: () => ({ up: 1, down: 1 }) }, log, 60_000)
    mock.timers.tick(59_999)
    assert.equal(lines.length, 0)
    mock.timers.tick(1)
    assert.equal(lines.length, 1)
    assert.equal(lines[0][1], 'summary: 3 peers, 5 nodes in view, models 1 up / 1 down, 7 jobs/min, 2 errors/min')
    assert.deepEqual(lines[0][0], { peers: 3, nodes: 5, modelsUp: 1, modelsDown: 1, jobsPerMin: 7, errorsPerMin: 2 })
    stop()
    mock.timers.tick(120_000)
    assert.equal(lines.length, 1, 'stopped')
  })
})

describe('the wrong-PSK check', () => {
  /** A stand-in for pnet's stream: decrypted chunks go through onData, which must still get them all. */
  function stream (): { onData: (data: Uint8Array) => void, received: number[], push: (bytes: number[]) => void } {
    const target = {
      received: [] as number[],
      onData (data: Uint8Array) { target.received.push(...data) },
      push (bytes: number[]) { target.onData(new Uint8Array(bytes)) }
    }
    return target
  }
  const header = [19, ...Buffer.from('/multistream/1.0.0\n')]

  it('accepts multistream-select\'s header, even split, and names noise as a mismatch', () => {
    const verdicts: string[] = []
    const good = stream()
    checkFirstBytes(good as any, () => { verdicts.push('bad') }, () => { verdicts.push('ok') })
    good.push(header.slice(0, 5))
    good.push([...header.slice(5), 1, 2, 3])
    const bad = stream()
    checkFirstBytes(bad as any, () => { verdicts.push('bad') }, () => { verdicts.push('ok') })
    bad.push([0x3d, 0xe4, 0x11])
    bad.push([0x00])
    assert.deepEqual(verdicts, ['ok', 'bad'])
    assert.deepEqual(good.received, [...header, 1, 2, 3], 'every byte still reaches the stream')
    assert.deepEqual(bad.received, [0x3d, 0xe4, 0x11, 0x00])
  })

  it('explains a failed dial to an address that spoke with another key, and remembers a bounded set', () => {
    const mismatches = new PskMismatches()
    const warned: boolean[] = []
    mismatches.onMismatch((m) => { warned.push(m.fresh === true) })
    mismatches.record({ remoteAddr: '/ip4/127.0.0.1/tcp/7001', direction: 'outbound' })
    mismatches.record({ remoteAddr: '/ip4/127.0.0.1/tcp/7001', direction: 'outbound' })
    assert.deepEqual(warned, [true, false], 'logged once a minute per address')
    assert.match(explainDialError('/ip4/127.0.0.1/tcp/7001/p2p/16Uiu2HAm', 'Message length too long - 15844 > 1024', mismatches), /pre-shared key differs/)
    assert.equal(explainDialError('/ip4/127.0.0.1/tcp/7009/p2p/x', 'connect ECONNREFUSED', mismatches), 'connect ECONNREFUSED')
    for (let i = 0; i < 1_000; i++) mismatches.record({ remoteAddr: `/ip4/10.0.0.1/tcp/${i}`, direction: 'inbound' })
    assert.equal(mismatches.seenRecently('/ip4/127.0.0.1/tcp/7001'), false, 'the oldest were dropped')
  })
})
