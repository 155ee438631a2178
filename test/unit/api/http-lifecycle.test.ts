import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { silentLogger } from '../../../src/core/logger.ts'
import { HttpServer, ok, parseAddr, type Route } from '../../../src/api/index.ts'

/** A route whose handler runs until the test releases it, or until its request is cut (it honours the
 * signal, as real handlers should). */
function gatedRoute (): { route: Route, started: Promise<AbortSignal>, release: () => void } {
  let started!: (signal: AbortSignal) => void
  const startedP = new Promise<AbortSignal>((resolve) => { started = resolve })
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  const route: Route = {
    path: '/slow',
    methods: ['GET'],
    handler: async ({ signal }) => {
      started(signal)
      await new Promise<void>((resolve, reject) => {
        void released.then(resolve)
        signal.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
      })
      return ok('done')
    }
  }
  return { route, started: startedP, release }
}

/** Serves `s` on a listener whose idle keep-alive connections never time out (keepAliveTimeout 0): only
 * close() itself can end them, so a close() that resolves at all did not wait for them. */
async function serve (s: HttpServer): Promise<string> {
  const server = http.createServer(s.requestListener)
  server.keepAliveTimeout = 0
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  s.adopt(server)
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** Lets pending I/O callbacks run (setImmediate is not mocked). */
async function turn (): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
}

const HOUR = 3_600_000

/** GET through an agent that keeps its idle connections as long as the server lets it (fetch's own pool
 * drops them after 4 s, which would hide a close() that waits for them). */
async function get (url: string): Promise<{ status: number, body: string }> {
  const agent = new http.Agent({ keepAlive: true })
  return await new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }) })
      res.on('error', reject)
    }).on('error', reject)
  })
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

  // The grace period is an hour and idle connections never time out: a close() that waited for either
  // would hang until the test's timeout fails it.
  it('drains an in-flight request on close, then refuses new ones', { timeout: 20_000 }, async () => {
    const { route, started, release } = gatedRoute()
    const s = new HttpServer({ routes: [route], logger: silentLogger, registry: new Registry() })
    const url = await serve(s)
    const pending = get(`${url}/slow`)
    await started
    let closed = false
    const closing = s.close(HOUR).then(() => { closed = true })
    await turn()
    assert.equal(closed, false, 'close waits for the request in flight')
    release()
    const res = await pending
    assert.equal(res.status, 200)
    assert.deepEqual(JSON.parse(res.body), { code: 0, message: 'ok', data: 'done' })
    await closing // the answered request's connection is idle now: close ends it instead of waiting
    await assert.rejects(get(`${url}/slow`))
  })

  it('cuts requests still running after the grace period', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const { route, started } = gatedRoute()
    const s = new HttpServer({ routes: [route], logger: silentLogger, registry: new Registry() })
    const url = await serve(s)
    const pending = get(`${url}/slow`).then(() => 'answered', () => 'cut')
    const signal = await started
    let closed = false
    const closing = s.close(200).then(() => { closed = true })
    t.mock.timers.tick(199)
    await turn()
    assert.equal(closed, false, 'still within the grace period')
    assert.equal(signal.aborted, false)
    t.mock.timers.tick(1)
    await closing
    assert.equal(await pending, 'cut')
    if (!signal.aborted) await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
    assert.equal(signal.aborted, true)
  })

  it('does not wait for idle keep-alive connections', { timeout: 20_000 }, async () => {
    const s = new HttpServer({ routes: [{ path: '/x', methods: ['GET'], handler: async () => ok() }], logger: silentLogger, registry: new Registry() })
    const url = await serve(s)
    assert.equal((await get(`${url}/x`)).status, 200)
    // The connection stays open for the next request; only close() can end it (see serve()).
    await s.close(HOUR)
  })
})
