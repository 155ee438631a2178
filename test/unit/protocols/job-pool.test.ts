// The pool of idle job streams (src/protocols/job/job-pool.ts), with stand-in streams that record what
// happens to them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { StreamPool, type Channel } from '../../../src/protocols/job/job-pool.ts'

interface FakeChannel extends Channel { closed: boolean, disposed: boolean, usable: boolean, emitClose: () => void }

function channel (): FakeChannel {
  const listeners = new Set<() => void>()
  const fake: FakeChannel = {
    closed: false,
    disposed: false,
    usable: true,
    emitClose: () => { for (const listener of [...listeners]) listener() },
    stream: {
      get status () { return fake.closed ? 'closed' : 'open' },
      close: async () => { fake.closed = true },
      abort: () => { fake.closed = true },
      addEventListener: (_type: string, listener: () => void) => { listeners.add(listener) },
      removeEventListener: (_type: string, listener: () => void) => { listeners.delete(listener) }
    } as unknown as Channel['stream'],
    reader: {
      isIdle: () => fake.usable && !fake.closed,
      dispose: () => { fake.disposed = true }
    } as unknown as Channel['reader']
  }
  return fake
}

test('take() gives the newest usable stream of that peer, and closes the dead ones it passes', () => {
  const pool = new StreamPool()
  const [old, dead, newest] = [channel(), channel(), channel()]
  pool.put('A', old)
  pool.put('A', dead)
  pool.put('A', newest)
  assert.equal(pool.take('B'), undefined)
  assert.equal(pool.take('A'), newest)
  dead.usable = false
  assert.equal(pool.take('A'), old)
  assert.ok(dead.closed && dead.disposed)
  assert.equal(pool.take('A'), undefined)
  assert.equal(pool.size, 0)
  pool.closeAll()
})

test('at most maxIdlePerPeer streams are kept; the rest are closed', () => {
  const pool = new StreamPool({ maxIdlePerPeer: 2 })
  const channels = [channel(), channel(), channel()]
  for (const c of channels) pool.put('A', c)
  assert.equal(pool.size, 2)
  assert.deepEqual(channels.map((c) => c.closed), [false, false, true])
  pool.closeAll()
  assert.ok(channels.every((c) => c.closed && c.disposed))
})

test('a kept stream that closes leaves the pool at once', () => {
  const pool = new StreamPool()
  const c = channel()
  pool.put('A', c)
  c.closed = true
  c.emitClose()
  assert.equal(pool.size, 0)
  assert.ok(c.disposed)
  pool.closeAll()
})

test('streams idle longer than idleMs are closed by the sweep', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'] })
  const pool = new StreamPool({ idleMs: 3_000 })
  const early = channel()
  pool.put('A', early)
  t.mock.timers.tick(2_000)
  const late = channel()
  pool.put('A', late)
  t.mock.timers.tick(1_500)
  assert.ok(early.closed, 'idle 3.5 s: closed')
  assert.ok(!late.closed, 'idle 1.5 s: kept')
  assert.equal(pool.take('A'), late)
  pool.closeAll()
})
