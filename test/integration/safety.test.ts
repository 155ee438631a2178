// Issue 13, parts 6, 8 and 9 through real daemons on 127.0.0.1: a model's api cannot reach the node's own
// listeners or metadata addresses (at registration and at call time), ipfs_node only reaches allowed IPFS
// nodes and their answers are not reflected, requests for unknown or unreachable nodes end within their
// deadlines, and a dead model server on one worker does not fail proxied requests that another can serve.
// Nothing here sends traffic to a non-loopback address: refusals happen before any connection.
import '../../src/core/polyfill.ts'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { freePort, TestNode, waitFor, type ApiResult } from './harness.ts'

const PROJECT = 'Safety'
const CHAT = 'chatty'
const FAILOVER = 'failover-chat'
const IMAGES = 'painter'
const SECRET = 'SECRET-do-not-reflect-7f3a'
const chat = { messages: [{ role: 'user', content: 'Hello' }] }

/** A request with a deadline on the client far below the node's defaults (3 min jobs, 10 s lookups). */
async function callWithin (node: TestNode, path: string, body: unknown, ms: number): Promise<ApiResult> {
  return await node.call(path, body, { signal: AbortSignal.timeout(ms) })
}

async function randomPeerId (): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

async function httpServer (handler: Parameters<typeof createServer>[1]): Promise<{ server: Server, url: string, hits: () => number }> {
  let hits = 0
  const server = createServer((req, res) => { hits++; handler?.(req, res) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits }
}

describe('the front door: SSRF, deadlines, failover', () => {
  let b: TestNode
  let w1: TestNode
  let w2: TestNode
  let w1ApiPort: number
  const models: FakeModelServer[] = []
  let ipfsOk: Awaited<ReturnType<typeof httpServer>>
  let ipfsBroken: Awaited<ReturnType<typeof httpServer>>
  let ipfsUnlisted: Awaited<ReturnType<typeof httpServer>>
  let flaky: FakeModelServer

  before(async () => {
    ipfsOk = await httpServer((req, res) => {
      req.resume()
      req.on('end', () => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ Name: 'x.png', Hash: 'QmSafe1', Size: '10' }) + '\n') })
    })
    ipfsBroken = await httpServer((req, res) => {
      req.resume()
      req.on('end', () => { res.statusCode = 500; res.end(`internal page of another service: ${SECRET}`) })
    })
    ipfsUnlisted = await httpServer((req, res) => { req.resume(); res.end('{}') })

    // B: an input node that logs at debug level, so the test can see that failover happened; it may
    // upload only to the two IPFS nodes listed.
    b = await TestNode.start({
      mode: 'input',
      edit: (c) => { c.App.LogLevel = 'debug'; c.Jobs.IpfsNodes = [ipfsOk.url, ipfsBroken.url] }
    })
    const bAddr = await b.addr()
    // W1 keeps its API port, and its config already holds the attack of issue 13: a model whose api is
    // W1's own key administration (a config edited by hand is never checked at registration).
    w1ApiPort = await freePort()
    w1 = await TestNode.start({
      bootstrap: [bAddr],
      edit: (c) => {
        c.API.Addr = `127.0.0.1:${w1ApiPort}`
        c.AIProjects = [{ Project: 'Exploit', Models: [{ Model: 'keys', API: `http://127.0.0.1:${w1ApiPort}/api/v0/keys/create`, Type: 0, CID: '' }] }]
      }
    })
    w2 = await TestNode.start({ bootstrap: [bAddr] })

    const good1 = await startFakeModelServer()
    const good2 = await startFakeModelServer()
    const images = await startFakeModelServer()
    flaky = await startFakeModelServer()
    models.push(good1, good2, images, flaky)
    const register = async (node: TestNode, list: Array<{ model: string, api: string, type: number }>): Promise<void> => {
      const result = await node.call('/api/v0/ai/project/register', { project: PROJECT, models: list })
      assert.equal(result.body.code, 0, JSON.stringify(result.body))
    }
    await register(w1, [{ model: CHAT, api: `${good1.url}/v1/chat/completions`, type: 0 }, { model: FAILOVER, api: `${flaky.url}/v1/chat/completions`, type: 0 }])
    await register(w2, [
      { model: CHAT, api: `${good2.url}/v1/chat/completions`, type: 0 },
      { model: FAILOVER, api: `${good2.url}/v1/chat/completions`, type: 0 },
      { model: IMAGES, api: `${images.url}/v1/images/generations`, type: 1 }
    ])
    await waitFor(async () => {
      const peers = await b.call('/api/v0/ai/projects/peers', { project: PROJECT, model: FAILOVER })
      return peers.body.data?.length === 2 && peers.body.data.every((p: any) => p.connectivity === 1)
    }, 20_000, 'B to see both workers')
  })

  after(async () => {
    await Promise.all([b, w1, w2].filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
    await Promise.all(models.map(async (m) => { await m.close() }))
    for (const s of [ipfsOk, ipfsBroken, ipfsUnlisted]) await new Promise((resolve) => s?.server.close(resolve))
  })

  test('a model api at the node\'s own listeners or at link-local/metadata addresses is refused at registration', async () => {
    const libp2pPort = Number(/\/tcp\/(\d+)/.exec(await w1.addr())?.[1])
    const attempts: Array<[string, RegExp]> = [
      [`http://127.0.0.1:${w1ApiPort}/api/v0/keys/create`, /127\.0\.0\.1 on port \d+ is this node's own listener/],
      [`http://localhost:${w1ApiPort}/api/v0/keys/create`, /localhost on port \d+ is this node's own listener/],
      [`http://[::1]:${w1ApiPort}/api/v0/keys/create`, /::1 on port \d+ is this node's own listener/],
      [`http://0.0.0.0:${w1ApiPort}/api/v0/keys/create`, /0\.0\.0\.0 is not an address of this machine/],
      [`http://127.0.0.1:${libp2pPort}/`, /is this node's own listener/],
      ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', /169\.254\.169\.254 is a link-local or cloud-metadata address/],
      ['http://[::ffff:169.254.169.254]/latest/meta-data/', /link-local or cloud-metadata/],
      ['http://[fe80::1]:8000/v1/chat/completions', /fe80::1 is a link-local or cloud-metadata address/]
    ]
    for (const [api, message] of attempts) {
      const result = await w1.call('/api/v0/ai/model/register', { project: 'Attack', model: 'm', api })
      assert.equal(result.status, 400, `${api}: ${JSON.stringify(result.body)}`)
      assert.equal(result.body.code, 1001)
      assert.match(result.body.message, message, api)
    }
    // Nothing was saved, and the node keeps serving.
    assert.ok(!(await readFile(w1.configPath, 'utf8')).includes('Attack'))
    assert.equal((await w1.call('/api/v0/id')).status, 200)
    assert.equal((await b.call('/api/v0/chat/completion', { node_id: w1.peerId, project: PROJECT, model: CHAT, ...chat })).status, 200)
  })

  test('the rule holds at call time: a model already in the config that points at the node\'s own API is never called', async () => {
    const result = await b.call('/api/v0/chat/completion', { node_id: w1.peerId, project: 'Exploit', model: 'keys', ...chat })
    assert.equal(result.status, 502, JSON.stringify(result.body))
    assert.equal(result.body.code, 1006)
    assert.match(result.body.message, /refused to call the model: .*own listener/)
    // No key was created on W1, and no secret came back.
    const keys = await w1.call('/api/v0/keys/list')
    assert.equal(keys.status, 200, JSON.stringify(keys.body))
    assert.deepEqual(keys.body.data, [])
    assert.ok(!JSON.stringify(result.body).includes('secret'))
    assert.equal((await b.call('/api/v0/chat/completion', { node_id: w1.peerId, project: PROJECT, model: CHAT, ...chat })).status, 200)
  })

  test('ipfs_node: only allowed IPFS nodes, checked before the job runs; their error pages are not reflected', async () => {
    const image = { node_id: w2.peerId, project: PROJECT, model: IMAGES, prompt: 'a bird' }
    const stored = await b.call('/api/v0/image/gen', { ...image, ipfs_node: ipfsOk.url })
    assert.equal(stored.status, 200, JSON.stringify(stored.body))
    assert.equal(stored.body.data.choices[0].cid, 'QmSafe1')

    // Not listed: another loopback port, the same port under another name, a LAN address, metadata.
    const unlistedHits = ipfsUnlisted.hits()
    for (const ipfsNode of [ipfsUnlisted.url, ipfsOk.url.replace('127.0.0.1', 'localhost'), 'http://10.1.2.3:5001', 'http://169.254.169.254/', 'file:///etc/passwd', 'http://user:pw@127.0.0.1:5001']) {
      const result = await b.call('/api/v0/image/gen', { ...image, ipfs_node: ipfsNode })
      assert.equal(result.status, 400, `${ipfsNode}: ${JSON.stringify(result.body)}`)
      assert.equal(result.body.code, 1001)
      assert.match(result.body.message, /ipfs_node/)
    }
    assert.equal(ipfsUnlisted.hits(), unlistedHits)

    // W2 has the default (empty) list: loopback IPFS nodes only.
    const lan = await w2.call('/api/v0/image/gen', { ...image, ipfs_node: 'http://10.1.2.3:5001' })
    assert.equal(lan.status, 400, JSON.stringify(lan.body))
    assert.match(lan.body.message, /only to an IPFS node on its own loopback address/)
    const local = await w2.call('/api/v0/image/gen', { ...image, ipfs_node: ipfsUnlisted.url })
    assert.equal(local.body.code, 1007, `a loopback IPFS node is called (this one answers no CID): ${JSON.stringify(local.body)}`)
    assert.match(local.body.message, /did not answer with a CID/)

    const broken = await b.call('/api/v0/image/gen', { ...image, ipfs_node: ipfsBroken.url })
    assert.equal(broken.status, 502, JSON.stringify(broken.body))
    assert.equal(broken.body.code, 1007)
    assert.match(broken.body.message, /answered HTTP 500/)
    assert.ok(!JSON.stringify(broken.body).includes(SECRET), JSON.stringify(broken.body))
    assert.ok(!JSON.stringify(broken.body).includes('internal page'))
    assert.equal((await b.call('/api/v0/image/gen', { ...image, ipfs_node: ipfsOk.url })).status, 200)
  })

  test('a job for a node nobody knows is answered 404 (code 1005) long before the job deadline', async () => {
    const unknown = await randomPeerId()
    // The lookup gives up after 10 s; the client after 30 s: the job's own deadline (3 min, plus grace:
    // 185 s before) must not be what ends the request. The three requests run side by side.
    const [result, image, peer] = await Promise.all([
      callWithin(b, '/api/v0/chat/completion', { node_id: unknown, project: PROJECT, model: CHAT, ...chat }, 30_000),
      callWithin(b, '/api/v0/image/gen', { node_id: unknown, project: PROJECT, model: IMAGES, prompt: 'x' }, 30_000),
      callWithin(b, '/api/v0/peer', { node_id: unknown }, 30_000)
    ])
    assert.equal(result.status, 404, JSON.stringify(result.body))
    assert.equal(result.body.code, 1005)
    assert.match(result.body.message, /not found in the network/)
    assert.equal(image.body.code, 1005, JSON.stringify(image.body))
    assert.equal(peer.status, 404, JSON.stringify(peer.body))
    assert.equal(peer.body.code, 1005, JSON.stringify(peer.body))
    assert.equal((await b.call('/api/v0/chat/completion/proxy', { project: PROJECT, model: CHAT, ...chat })).status, 200)
  })

  describe('with a DHT peer that never answers (a lookup that hangs)', () => {
    let rogue: Libp2p

    before(async () => {
      rogue = await createLibp2p({
        addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        services: { identify: identify() }
      })
      // It says it speaks the DHT (B's protocol prefix is /dbc), then never answers a query.
      await rogue.handle('/dbc/kad/1.0.0', () => {})
      const connect = await b.call('/api/v0/swarm/connect', { node_addr: rogue.getMultiaddrs()[0].toString() })
      assert.equal(connect.body.code, 0, JSON.stringify(connect.body))
    })

    after(async () => { await rogue?.stop() })

    test('`timeout: "1s"` on peer, host/info and chat/completion is answered with the timeout code', async () => {
      const unknown = await randomPeerId()
      // Poll until B's DHT asks the rogue peer (after identify); each try must end well inside the 10 s
      // lookup deadline, which the client enforces with its own 5 s deadline.
      let last: ApiResult | undefined
      await waitFor(async () => {
        last = await callWithin(b, '/api/v0/peer', { node_id: unknown, timeout: '1s' }, 5_000)
        return last.body.code === 1004
      }, 20_000, 'a peer lookup that runs into the 1 s timeout')
      assert.equal(last?.status, 504)
      const info = await callWithin(b, '/api/v0/host/info', { node_id: unknown, timeout: '1s' }, 5_000)
      assert.equal(info.status, 504, JSON.stringify(info.body))
      assert.equal(info.body.code, 1004)
      const job = await callWithin(b, '/api/v0/chat/completion', { node_id: unknown, project: PROJECT, model: CHAT, timeout: '1s', ...chat }, 5_000)
      assert.equal(job.status, 504, JSON.stringify(job.body))
      assert.equal(job.body.code, 1004)
      assert.equal((await b.call('/api/v0/id')).status, 200)
    })
  })

  test('one of two model servers down: every proxied request succeeds on the other node', async () => {
    // The model server dies after registration: W1 still announces the model (its next health probe is
    // up to 30 s away), so B will try W1 first for some requests.
    await flaky.close()
    const body = { project: PROJECT, model: FAILOVER, ...chat }
    // Concurrent requests spread over both nodes (the selector counts jobs in flight), so W1 is tried.
    const concurrent = await Promise.all(Array.from({ length: 8 }, async () => await b.call('/api/v0/chat/completion/proxy', body)))
    const sequential: ApiResult[] = []
    for (let i = 0; i < 8; i++) sequential.push(await b.call('/api/v0/chat/completion/proxy', { ...body, stream: i % 2 === 0 }))
    for (const result of [...concurrent, ...sequential]) {
      assert.equal(result.status, 200, JSON.stringify(result.body))
      assert.equal(result.headers.get('x-aicn-node'), w2.peerId)
    }
    assert.match(b.output, /node failed before answering; trying the next/)
  })
})
