import { describe, it, afterEach, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { HealthChecker, httpProbe } from '../../../src/registry/health.ts'

/** A model server stand-in that counts requests; `answer: false` accepts them but never replies. */
interface TestServer { server: http.Server, port: number, url: URL, hits: () => number, close: () => Promise<void> }

async function startServer (port = 0, answer = true): Promise<TestServer> {
  let hits = 0
  const server = http.createServer((req, res) => {
    hits++
    req.resume()
    // 405 like a real chat endpoint asked with GET: still proves the server is up.
    if (answer) res.writeHead(405).end('method not allowed')
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const actual = (server.address() as AddressInfo).port
  return {
    server,
    port: actual,
    url: new URL(`http://127.0.0.1:${actual}/v1/chat/completions`),
    hits: () => hits,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => { resolve() })
        server.closeAllConnections()
      })
    }
  }
}

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface Checker {
  health: HealthChecker
  changes: Array<[string, boolean]>
  /** Resolves once onChange has been called `count` times in all. */
  untilChanges: (count: number) => Promise<void>
}

function checker (options: ConstructorParameters<typeof HealthChecker>[0]): Checker {
  const changes: Array<[string, boolean]> = []
  const waiting: Array<() => void> = []
  const health = new HealthChecker(options, (key, available) => {
    changes.push([key, available])
    for (const wake of waiting.splice(0)) wake()
  })
  cleanups.push(() => { health.stop() })
  const untilChanges = async (count: number): Promise<void> => {
    // The checker's timers are unref'd (src/registry/health.ts): something must keep the process up meanwhile.
    const keepAlive = setInterval(() => {}, 1_000)
    try {
      while (changes.length < count) await new Promise<void>((resolve) => { waiting.push(resolve) })
    } finally {
      clearInterval(keepAlive)
    }
  }
  return { health, changes, untilChanges }
}

/** httpProbe that counts its calls: a probe that starts shows up at once, before any request arrives. */
function countingProbe (): { probe: typeof httpProbe, started: () => number } {
  let started = 0
  return {
    probe: async (url, signal) => { started++; return await httpProbe(url, signal) },
    started: () => started
  }
}

describe('httpProbe', () => {
  it('counts any HTTP answer as up and no answer as down', async () => {
    const srv = await startServer()
    cleanups.push(srv.close)
    assert.equal(await httpProbe(srv.url, AbortSignal.timeout(2_000)), true)
    await srv.close()
    assert.equal(await httpProbe(srv.url, AbortSignal.timeout(2_000)), false)
    assert.equal(await httpProbe(new URL('http://no-such-host.invalid/'), AbortSignal.timeout(2_000)), false)
  })

  it('gives up when the signal fires', async () => {
    const silent = await startServer(0, false)
    cleanups.push(silent.close)
    assert.equal(await httpProbe(silent.url, AbortSignal.timeout(100)), false)
  })
})

// Real timers in the first two: the probes and their timeout run as in production. The others mock
// setTimeout and move the clock past every probe that could still be scheduled, so "no probe after
// unwatch/stop" is checked on the whole schedule without waiting for it.
describe('HealthChecker with a real server', () => {
  it('sees a server that is up, notices it going down and coming back', { timeout: 20_000 }, async () => {
    const first = await startServer()
    cleanups.push(first.close)
    const { health, changes, untilChanges } = checker({ intervalMs: 50, timeoutMs: 500 })
    health.watch('chat', first.url)
    assert.equal(await health.settle('chat', 2_000), true, 'the first probe found it up')
    assert.ok(first.hits() >= 1)
    assert.equal(health.isAvailable('chat'), true)
    assert.deepEqual(changes, [], 'no change while the server stays up')

    await first.close()
    await untilChanges(1)
    assert.equal(health.isAvailable('chat'), false)
    for (let i = 0; i < 3; i++) assert.equal(await health.settle('chat', 2_000), false, 'another failed probe')
    assert.deepEqual(changes, [['chat', false]], 'onChange fires once per flip')

    const second = await startServer(first.port)
    cleanups.push(second.close)
    await untilChanges(2)
    assert.deepEqual(changes, [['chat', false], ['chat', true]])
    assert.equal(health.isAvailable('chat'), true)
  })

  it('marks a server that never answers as down after the timeout', { timeout: 20_000 }, async () => {
    const silent = await startServer(0, false)
    cleanups.push(silent.close)
    const { health, changes, untilChanges } = checker({ intervalMs: 1_000, timeoutMs: 100 })
    health.watch('slow', silent.url)
    assert.equal(health.isAvailable('slow'), true, 'optimistic until a probe says otherwise')
    await untilChanges(1)
    assert.deepEqual(changes, [['slow', false]])
    assert.equal(health.isAvailable('slow'), false)
  })

  it('stops probing a key after unwatch', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const srv = await startServer()
    cleanups.push(srv.close)
    const { probe, started } = countingProbe()
    const { health } = checker({ intervalMs: 30, timeoutMs: 500, probe })
    health.watch('a', srv.url)
    assert.equal(await health.settle('a', 2_000), true)
    for (let i = 0; i < 2; i++) {
      t.mock.timers.tick(30)
      assert.equal(await health.settle('a', 2_000), true, 'the next probe')
    }
    assert.equal(started(), 3)
    health.unwatch('a')
    t.mock.timers.tick(100 * 30)
    assert.equal(started(), 3, 'no probe after unwatch')
    assert.equal(srv.hits(), 3, 'every probe that started was answered before unwatch')
    assert.equal(health.isAvailable('a'), true, 'an unwatched key is unknown again')
  })

  it('stops all probing after stop, and ignores watch afterwards', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const srv = await startServer()
    cleanups.push(srv.close)
    const { probe, started } = countingProbe()
    const { health, changes } = checker({ intervalMs: 30, timeoutMs: 500, probe })
    health.watch('a', srv.url)
    health.watch('b', new URL(`http://127.0.0.1:${srv.port}/v1/images/generations`))
    assert.deepEqual([await health.settle('a', 2_000), await health.settle('b', 2_000)], [true, true])
    t.mock.timers.tick(30)
    assert.deepEqual([await health.settle('a', 2_000), await health.settle('b', 2_000)], [true, true])
    assert.equal(started(), 4)
    health.stop()
    health.watch('c', srv.url)
    t.mock.timers.tick(100 * 30)
    assert.equal(started(), 4, 'no probe after stop, not even of a key watched afterwards')
    assert.equal(srv.hits(), 4)
    assert.deepEqual(changes, [])
  })
})

/** Lets the promise callbacks of a probe run; setImmediate is not mocked. */
async function settle (): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
}

type MockTimers = TestContext['mock']['timers']

/** Moves the mocked clock on by `ms` in small steps, letting the probes that fire run after each. */
async function advance (timers: MockTimers, ms: number): Promise<void> {
  for (let done = 0; done < ms; done += 5) {
    timers.tick(Math.min(5, ms - done))
    await settle()
  }
}

// Injected probes and node:test's mock timers: the schedule is checked on a clock the test moves.
describe('HealthChecker logic', () => {
  it('runs one probe per key at a time', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    let calls = 0
    let aborted = 0
    const probe = async (_url: URL, signal: AbortSignal): Promise<boolean> => {
      calls++
      return await new Promise<boolean>((resolve) => {
        signal.addEventListener('abort', () => { aborted++; resolve(false) })
      })
    }
    const { health, changes } = checker({ intervalMs: 10, timeoutMs: 150, probe })
    health.watch('k', new URL('http://127.0.0.1:1/'))
    await advance(t.mock.timers, 145)
    assert.equal(calls, 1, 'the interval does not start a second probe while one hangs')
    assert.deepEqual(changes, [])
    await advance(t.mock.timers, 5)
    assert.equal(aborted, 1, 'the timed-out probe was told to stop')
    assert.deepEqual(changes, [['k', false]])
  })

  it('fires onChange only on flips, and counts a throwing probe as down', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    let state: boolean | 'throw' = true
    let probes = 0
    const probe = async (): Promise<boolean> => {
      probes++
      if (state === 'throw') throw new Error('boom')
      return state
    }
    const { health, changes } = checker({ intervalMs: 15, probe })
    health.watch('k', new URL('http://127.0.0.1:1/'))
    await settle()
    await advance(t.mock.timers, 60)
    assert.equal(probes, 5, 'one probe at watch, then one per interval')
    assert.deepEqual(changes, [])
    state = false
    await advance(t.mock.timers, 15)
    assert.deepEqual(changes, [['k', false]])
    state = 'throw'
    await advance(t.mock.timers, 60)
    assert.deepEqual(changes, [['k', false]], 'a throwing probe is down: no flip')
    state = true
    await advance(t.mock.timers, 15)
    assert.deepEqual(changes, [['k', false], ['k', true]])
    await advance(t.mock.timers, 60)
    assert.deepEqual(changes, [['k', false], ['k', true]])
  })

  it('re-watching a key probes the new URL and keeps its state', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const seen: string[] = []
    const probe = async (url: URL): Promise<boolean> => {
      seen.push(url.href)
      return url.pathname !== '/down'
    }
    const { health, changes } = checker({ intervalMs: 15, probe })
    health.watch('k', new URL('http://127.0.0.1:1/down'))
    await settle()
    assert.deepEqual(changes, [['k', false]])
    health.watch('k', new URL('http://127.0.0.1:1/up'))
    await settle()
    assert.deepEqual(changes, [['k', false], ['k', true]])
    const after = seen.length
    await advance(t.mock.timers, 60)
    assert.equal(seen.length - after, 4, 'probed every interval')
    assert.ok(seen.slice(after).every((href) => href === 'http://127.0.0.1:1/up'), 'only the new URL is probed')
    assert.deepEqual(changes, [['k', false], ['k', true]])
  })

  it('drops the result of a probe that was in flight when its key was unwatched', async () => {
    let finish: (up: boolean) => void = () => {}
    let started = false
    const probe = async (): Promise<boolean> => await new Promise<boolean>((resolve) => { started = true; finish = resolve })
    const { health, changes } = checker({ intervalMs: 1_000, timeoutMs: 1_000, probe })
    health.watch('k', new URL('http://127.0.0.1:1/'))
    await settle()
    assert.ok(started, 'the probe is in flight')
    health.unwatch('k')
    finish(false)
    await settle()
    assert.deepEqual(changes, [])
    assert.equal(health.isAvailable('k'), true)
  })

  it('treats unknown keys as available', () => {
    const { health } = checker({})
    assert.equal(health.isAvailable('never-watched'), true)
    health.unwatch('never-watched') // a no-op
  })
})
