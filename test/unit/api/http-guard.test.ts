// The browser guard and the access classes on stub contexts: pure decisions, no sockets. The integration
// side (real daemons, real requests) is test/integration/front-door.test.ts.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Context } from 'koa'
import { AccessControl } from '../../../src/api/access.ts'
import { BrowserGuard, requireJsonFromBrowsers } from '../../../src/api/guard.ts'

interface Stub { headers?: Record<string, string>, localPort?: number, remoteAddress?: string }

function ctx ({ headers = {}, localPort = 6080, remoteAddress = '127.0.0.1' }: Stub): Context {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  return { get: (name: string) => lower[name.toLowerCase()] ?? '', req: { headers: lower, socket: { localPort, remoteAddress } } } as unknown as Context
}

const refused = (status: number) => (err: any) => err.status === status && err.code === (status === 403 ? 1009 : 1001)

describe('BrowserGuard', () => {
  const guard = new BrowserGuard({ allowedOrigins: ['https://app.example'], allowedHosts: ['node.example'] })

  it('serves loopback names, IP literals and configured host names', () => {
    for (const host of ['localhost', 'localhost:6080', '127.0.0.1:6000', '127.9.9.9', '[::1]:6080', 'console.localhost:6080', '10.1.2.3:6080', '[2001:db8::1]:6080', 'node.example:6080', 'NODE.example']) {
      assert.doesNotThrow(() => { guard.check(ctx({ headers: { Host: host } })) }, host)
    }
    assert.doesNotThrow(() => { guard.check(ctx({})) }, 'HTTP/1.0 without Host')
  })

  it('refuses other host names (DNS rebinding) with 403', () => {
    for (const host of ['evil.example', 'evil.example:6080', 'localhost.evil.example', '127.0.0.1.evil.example', 'node.example.evil']) {
      assert.throws(() => { guard.check(ctx({ headers: { Host: host } })) }, refused(403), host)
    }
  })

  it('lets requests without Origin through, and the node\'s own origin on the port it came in on', () => {
    assert.doesNotThrow(() => { guard.check(ctx({ headers: { Host: '127.0.0.1:6080' } })) })
    for (const origin of ['http://127.0.0.1:6080', 'http://localhost:6080', 'http://[::1]:6080']) {
      assert.doesNotThrow(() => { guard.check(ctx({ headers: { Origin: origin } })) }, origin)
    }
  })

  it('refuses foreign origins, "null", other ports and https look-alikes', () => {
    for (const origin of ['http://evil.example', 'null', 'http://127.0.0.1:6081', 'https://127.0.0.1:6080', 'http://evil.example:6080', 'garbage']) {
      assert.throws(() => { guard.check(ctx({ headers: { Origin: origin } })) }, refused(403), origin)
    }
  })

  it('grants configured origins, and only those get CORS', () => {
    assert.doesNotThrow(() => { guard.check(ctx({ headers: { Origin: 'https://app.example' } })) })
    assert.equal(guard.corsOrigin('https://app.example'), true)
    assert.equal(guard.corsOrigin('http://127.0.0.1:6080'), false, 'same-origin needs no CORS grant')
    assert.equal(new BrowserGuard({ allowedOrigins: ['*'] }).corsOrigin('http://any.example'), true)
    assert.equal(new BrowserGuard({ allowedOrigins: ['*'] }).corsOrigin('null'), false)
  })
})

describe('requireJsonFromBrowsers', () => {
  it('refuses the types a page can send without a preflight, from browsers only', () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      assert.throws(() => { requireJsonFromBrowsers(ctx({ headers: { Origin: 'http://127.0.0.1:6080', 'Content-Type': type, 'Content-Length': '2' } }), false) }, refused(415), type)
      assert.throws(() => { requireJsonFromBrowsers(ctx({ headers: { 'Sec-Fetch-Site': 'cross-site', 'Content-Type': type, 'Content-Length': '2' } }), false) }, refused(415), type)
      assert.doesNotThrow(() => { requireJsonFromBrowsers(ctx({ headers: { 'Content-Type': type, 'Content-Length': '2' } }), false) }, `curl: ${type}`)
    }
    assert.doesNotThrow(() => { requireJsonFromBrowsers(ctx({ headers: { Origin: 'http://127.0.0.1:6080', 'Content-Type': 'application/json', 'Content-Length': '2' } }), false) })
    assert.doesNotThrow(() => { requireJsonFromBrowsers(ctx({ headers: { Origin: 'http://127.0.0.1:6080', 'Content-Type': 'multipart/form-data; boundary=x', 'Content-Length': '2' } }), true) }, 'uploads')
    assert.doesNotThrow(() => { requireJsonFromBrowsers(ctx({ headers: { Origin: 'http://127.0.0.1:6080' } }), false) }, 'no body')
  })
})

describe('AccessControl', () => {
  it('opens admin routes to loopback callers only, unless the admin key is presented', async () => {
    const access = new AccessControl({ adminKey: 'a-very-long-admin-secret' })
    for (const remoteAddress of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '127.0.0.2']) {
      await access.check('admin', ctx({ remoteAddress }))
    }
    for (const remoteAddress of ['10.0.0.5', '192.0.2.1', '::ffff:10.0.0.5', '2001:db8::1', '']) {
      await assert.rejects(access.check('admin', ctx({ remoteAddress })), refused(403), remoteAddress)
      await assert.rejects(access.check('admin', ctx({ remoteAddress, headers: { Authorization: 'Bearer wrong-secret-of-any-length' } })), refused(403))
      await access.check('admin', ctx({ remoteAddress, headers: { Authorization: 'Bearer a-very-long-admin-secret' } }))
    }
    await assert.rejects(new AccessControl().check('admin', ctx({ remoteAddress: '10.0.0.5', headers: { Authorization: 'Bearer ' } })), refused(403), 'no admin key configured')
  })

  it('asks the key check on job routes, and nothing on open ones', async () => {
    const seen: string[] = []
    const access = new AccessControl({ checkJobKey: async (authorization) => { seen.push(authorization) } })
    await access.check('job', ctx({ remoteAddress: '10.0.0.5', headers: { Authorization: 'Bearer sk-x' } }))
    await access.check('open', ctx({ remoteAddress: '10.0.0.5' }))
    assert.deepEqual(seen, ['Bearer sk-x'])
  })
})
