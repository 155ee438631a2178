// The API's early listener (src/api/early.ts): before the node hands over its app, GET /api/v0/id is
// answered from the identity alone and every other request waits for the app; past MAX_HELD waiting
// requests, and when the node fails to start, requests get 503.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { silentLogger } from '../../../src/core/logger.ts'
import { EarlyApi, MAX_HELD } from '../../../src/api/early.ts'

const ID = { peer_id: '16Uiu2HAmTest', protocol_version: 'aicn/0.0.1', agent_version: 'aicn/test' }

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
    req.on('error', reject)
    req.end()
  })
}

test('answers the id at once, holds the rest until the app is there, then the app answers them in order', async () => {
  const early = new EarlyApi(ID)
  const { listening } = await early.listen('127.0.0.1:0', 'API.Addr', silentLogger)
  try {
    const id = await get(`${listening.url}/api/v0/id?x=1`)
    assert.equal(id.status, 200)
    assert.deepEqual(JSON.parse(id.body), { ...ID, addresses: [], protocols: [] })
    const seen: string[] = []
    const held = [get(`${listening.url}/api/v0/peers`), get(`${listening.url}/api/v0/id`, { origin: 'http://127.0.0.1:1' })]
    // Both requests reach the server and wait (they are answered only after serve()).
    await new Promise((resolve) => setImmediate(resolve))
    while ((early as any).held.length < 2) await new Promise((resolve) => setImmediate(resolve))
    early.serve((req, res) => { seen.push(req.url ?? ''); res.end('app') })
    const answers = await Promise.all(held)
    assert.deepEqual(answers.map((a) => a.body), ['app', 'app'])
    assert.deepEqual(seen, ['/api/v0/peers', '/api/v0/id'])
    assert.equal((await get(`${listening.url}/api/v0/id`)).body, 'app', 'the app answers everything once it is there')
  } finally {
    await early.close()
  }
})

test('a host the browser guard refuses waits for the app instead of getting the early id', async () => {
  const early = new EarlyApi(ID)
  const { listening } = await early.listen('127.0.0.1:0', 'API.Addr', silentLogger)
  try {
    const pending = get(`${listening.url}/api/v0/id`, { host: 'evil.example:80' })
    while ((early as any).held.length < 1) await new Promise((resolve) => setImmediate(resolve))
    early.serve((_req, res) => { res.statusCode = 403; res.end('refused') })
    assert.equal((await pending).status, 403)
  } finally {
    await early.close()
  }
})

test('past MAX_HELD waiting requests, and on close, requests get 503', async () => {
  const early = new EarlyApi(ID)
  const { listening } = await early.listen('127.0.0.1:0', 'API.Addr', silentLogger)
  const held = Array.from({ length: MAX_HELD }, async () => await get(`${listening.url}/api/v0/peers`))
  while ((early as any).held.length < MAX_HELD) await new Promise((resolve) => setImmediate(resolve))
  const extra = await get(`${listening.url}/api/v0/peers`)
  assert.equal(extra.status, 503)
  assert.match(JSON.parse(extra.body).message, /starting/)
  await early.close()
  const answers = await Promise.all(held)
  assert.ok(answers.every((a) => a.status === 503))
})
