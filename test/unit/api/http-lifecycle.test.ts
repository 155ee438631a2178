import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Registry } from 'prom-client'
import { silentLogger } from '../../../src/core/logger.ts'
import { HttpServer, ok, parseAddr, type Route } from '../../../src/api/index.ts'

function slowRoute (ms: number, started: () => void, seen?: (signal: AbortSignal) => void): Route {
  return {
    path: '/slow',
    methods: ['GET'],
    handler: async ({ signal }) => {
      seen?.(signal)
      started()
      // Honour the signal, as real handlers should, so a cut request does not keep the test process alive.
      await sleep(ms, undefined, { signal })
      return ok('done')
    }
  }
}

describe('HttpServer lifecycle', () => {
  it('parses listen addresses', () => {
    assert.deepEqual(parseAddr('127.0.0.1:6000'), { host: '127.0.0.1', port: 6000 })
    assert.deepEqual(parseAddr('[::1]:6000'), { host: '::1', port: 6000 })
    assert.deepEqual(parseAddr(':6000'), { host: undefined, port: 6000 })
    assert.deepEqual(parseAddr('localhost:0'), { host: 'localhost', port: 0 })
    for (const bad of ['6000', '::1:6000', '127.0.0.1:', '127.0.0.1:70000', 'a:b']) {
      assert.throws(() => parseAddr(bad), /must look like host:port/, bad)
    }
  })

  it('reports a port in use clearly', async () => {
    const a = new HttpServer({ routes: [], logger: silentLogger, registry: new Registry() })
    const { port } = await a.listen('127.0.0.1:0')
    const b = new HttpServer({ routes: [], logger: silentLogger, registry: new Registry() })
    await assert.rejects(b.listen(`127.0.0.1:${port}`, 'API.WebAddr'), (err: Error) => err.message.startsWith(`API.WebAddr 127.0.0.1:${port} is already in use`))
    await a.close()
    await b.close() // never listened: a no-op
  })

  it('listens on IPv6 loopback when available', async (t) => {
    const s = new HttpServer({ routes: [], logger: silentLogger, registry: new Registry() })
    try {
      const { url, host } = await s.listen('[::1]:0')
      assert.equal(host, '::1')
      assert.match(url, /^http:\/\/\[::1\]:\d+$/)
    } catch (err) {
      t.skip(`no IPv6 here: ${(err as Error).message}`)
    } finally {
      await s.close()
    }
  })

  it('drains an in-flight request on close, then refuses new ones', async () => {
    let started!: () => void
    const startedP = new Promise<void>((resolve) => { started = resolve })
    const s = new HttpServer({ routes: [slowRoute(300, started)], logger: silentLogger, registry: new Registry() })
    const { url } = await s.listen('127.0.0.1:0')
    const pending = fetch(`${url}/slow`)
    await startedP
    const t0 = Date.now()
    await s.close(5000)
    const res = await pending
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { code: 0, message: 'ok', data: 'done' })
    assert.ok(Date.now() - t0 < 2000, 'close did not wait for keep-alive sockets')
    await assert.rejects(fetch(`${url}/slow`))
  })

  it('cuts requests still running after the grace period', async () => {
    let started!: () => void
    const startedP = new Promise<void>((resolve) => { started = resolve })
    let signal!: AbortSignal
    const s = new HttpServer({ routes: [slowRoute(10_000, started, (sig) => { signal = sig })], logger: silentLogger, registry: new Registry() })
    const { url } = await s.listen('127.0.0.1:0')
    const pending = fetch(`${url}/slow`).then(() => 'answered', () => 'cut')
    await startedP
    const t0 = Date.now()
    await s.close(200)
    assert.ok(Date.now() - t0 < 2000)
    assert.equal(await pending, 'cut')
    if (!signal.aborted) await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
    assert.equal(signal.aborted, true)
  })

  it('does not wait for idle keep-alive connections', async () => {
    const s = new HttpServer({ routes: [{ path: '/x', methods: ['GET'], handler: async () => ok() }], logger: silentLogger, registry: new Registry() })
    const { url } = await s.listen('127.0.0.1:0')
    assert.equal((await fetch(`${url}/x`)).status, 200)
    const t0 = Date.now()
    await s.close(5000)
    assert.ok(Date.now() - t0 < 1000)
  })
})
