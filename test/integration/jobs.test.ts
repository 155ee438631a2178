// Jobs through a real network: an input node B and workers W1, W2, W3 with fake model servers. Every path
// (local/remote × stream/non-stream × direct/proxy, images, edit), failover, failures mid-stream, aborts.
import '../../src/core/polyfill.ts'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { multiaddr } from '@multiformats/multiaddr'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { swarmKeyFromHex } from '../../src/p2p/psk.ts'
import { connectedPeers, TestNode, waitFor } from './harness.ts'

const PSK = 'ee'.repeat(32)
const PROJECT = 'DecentralGPT'
const CHAT = 'Llama3-70B'
const TOKENS = ['Hello', ' from', ' a', ' streamed', ' model', '.']

interface Worker { node: TestNode, chat: FakeModelServer, images: FakeModelServer }

async function readSse (response: Response): Promise<{ chunks: string[], events: string[] }> {
  const chunks: string[] = []
  const decoder = new TextDecoder()
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) chunks.push(decoder.decode(chunk, { stream: true }))
  const events = chunks.join('').split('\n\n').map((e) => e.trim()).filter((e) => e !== '')
  return { chunks, events }
}

const contentOf = (events: string[]): string => events
  .filter((e) => e.startsWith('data: {'))
  .map((e) => JSON.parse(e.slice(6)).choices?.[0]?.delta?.content ?? '')
  .join('')

describe('jobs across the network', () => {
  let b: TestNode
  const workers: Worker[] = []
  /** Set by the streaming test: paces the chat models' tokens (startFakeModelServer's beforeToken). */
  let pace: ((index: number, signal: AbortSignal) => Promise<void>) | undefined
  let ipfs: Server
  let ipfsUploads = 0

  const chatBody = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    project: PROJECT, model: CHAT, messages: [{ role: 'user', content: 'Hello' }], ...extra
  })

  before(async () => {
    ipfs = createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        ipfsUploads++
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ Name: 'x.png', Hash: `QmFake${ipfsUploads}`, Size: '10' }) + '\n')
      })
    })
    await new Promise<void>((resolve) => ipfs.listen(0, '127.0.0.1', resolve))

    // B's image jobs may run 3 s (Jobs.Timeouts): the slow-model test runs into it.
    b = await TestNode.start({ mode: 'input', psk: PSK, edit: (c) => { c.Jobs.Timeouts.ImageGen = '3s' } })
    const bAddr = await b.addr()
    for (let i = 0; i < 3; i++) {
      const chat = await startFakeModelServer({ tokens: TOKENS, tokenDelayMs: 30, beforeToken: async (index, signal) => { await pace?.(index, signal) } })
      const images = await startFakeModelServer()
      const node = await TestNode.start({ psk: PSK, bootstrap: [bAddr] })
      workers.push({ node, chat, images })
      const register = await node.call('/api/v0/ai/project/register', {
        project: PROJECT,
        models: [
          { model: CHAT, api: `${chat.url}/v1/chat/completions`, type: 0 },
          { model: 'superImage', api: `${images.url}/v1/images/generations`, type: 1 },
          { model: 'editor', api: `${images.url}/v1/images/edits`, type: 2 }
        ]
      })
      assert.equal(register.body.code, 0, JSON.stringify(register.body))
    }
    await waitFor(async () => {
      const peers = await b.call('/api/v0/ai/projects/peers', { project: PROJECT, model: CHAT })
      return peers.body.data?.length === 3 && peers.body.data.every((p: any) => p.connectivity === 1)
    }, 20_000, 'B to see all three workers')
  })

  after(async () => {
    await Promise.all([b, ...workers.map((w) => w.node)].filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
    await Promise.all(workers.flatMap((w) => [w.chat.close(), w.images.close()]))
    await new Promise((resolve) => ipfs?.close(resolve))
  })

  test('non-stream chat, local and remote, in the envelope with the model\'s fields intact', async () => {
    const w1 = workers[0].node
    for (const via of [w1, b]) {
      const result = await via.call('/api/v0/chat/completion', chatBody({ node_id: w1.peerId }))
      assert.equal(result.status, 200, JSON.stringify(result.body))
      assert.equal(result.body.code, 0)
      assert.equal(result.body.message, 'ok')
      const data = result.body.data
      assert.match(data.id, /^chatcmpl/)
      assert.equal(data.object, 'chat.completion')
      assert.equal(data.model, CHAT)
      assert.equal(data.choices[0].message.content, TOKENS.join(''))
      assert.equal(typeof data.usage.total_tokens, 'number')
      assert.equal(result.headers.get('x-aicn-node'), w1.peerId)
    }
  })

  test('every parameter reaches the model; routing fields do not', async () => {
    const w1 = workers[0]
    const before = w1.chat.requests.length
    const extra = { temperature: 0.3, top_p: 0.9, max_tokens: 17, stop: ['\n'], tools: [{ type: 'function', function: { name: 'f', parameters: {} } }], user: 'u1' }
    const result = await b.call('/api/v0/chat/completion', chatBody({ node_id: w1.node.peerId, cid: '', ...extra }))
    assert.equal(result.status, 200)
    const sent = JSON.parse(w1.chat.requests[before].body.toString())
    for (const [key, value] of Object.entries(extra)) assert.deepEqual(sent[key], value, key)
    assert.equal(sent.model, CHAT)
    assert.deepEqual(sent.messages, [{ role: 'user', content: 'Hello' }])
    for (const key of ['node_id', 'project', 'cid']) assert.ok(!(key in sent), `${key} not sent to the model`)
  })

  test('streamed chat, local and remote: SSE lines as the model sends them, token by token', async () => {
    const w1 = workers[0].node
    for (const via of [w1, b]) {
      // The model sends token i only once the client has read tokens 0 … i-1, so a hop that held tokens back
      // would stall the stream. A stall is bounded: after 10 s the token goes out anyway and the test fails.
      let received = 0
      const stalled: number[] = []
      const progress = new EventTarget()
      pace = async (index, signal) => {
        if (received >= index) return
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer)
            progress.removeEventListener('token', check)
            signal.removeEventListener('abort', done)
            resolve()
          }
          const check = (): void => { if (received >= index) done() }
          const timer = setTimeout(() => { stalled.push(index); done() }, 10_000)
          progress.addEventListener('token', check)
          signal.addEventListener('abort', done)
        })
      }
      try {
        const response = await fetch(`${via.api}/api/v0/chat/completion`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chatBody({ node_id: w1.peerId, stream: true })) })
        assert.equal(response.status, 200)
        assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/)
        assert.equal(response.headers.get('x-aicn-node'), w1.peerId)
        const decoder = new TextDecoder()
        let text = ''
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          text += decoder.decode(chunk, { stream: true })
          // Whole events only: the text after the last blank line may be half an event.
          const whole = text.split('\n\n').slice(0, -1).map((e) => e.trim())
          received = whole.filter((e) => e.startsWith('data: {') && contentOf([e]) !== '').length
          progress.dispatchEvent(new Event('token'))
        }
        const events = text.split('\n\n').map((e) => e.trim()).filter((e) => e !== '')
        assert.equal(events.at(-1), 'data: [DONE]')
        assert.equal(contentOf(events), TOKENS.join(''))
        assert.deepEqual(stalled, [], 'every token reached the client before the model sent the next')
      } finally {
        pace = undefined
      }
    }
  })

  test('proxy: the network picks a node, reports it, and spreads the load', async () => {
    const served = new Set<string>()
    for (let i = 0; i < 12; i++) {
      const result = await b.call('/api/v0/chat/completion/proxy', chatBody())
      assert.equal(result.status, 200, JSON.stringify(result.body))
      assert.equal(result.body.data.choices[0].message.content, TOKENS.join(''))
      served.add(result.headers.get('x-aicn-node') ?? '')
    }
    assert.ok(served.size >= 2, `served by ${served.size} nodes`)
    const response = await fetch(`${b.api}/api/v0/chat/completion/proxy`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chatBody({ stream: true })) })
    const { events } = await readSse(response)
    assert.equal(contentOf(events), TOKENS.join(''))
  })

  test('image generation: url, b64_json, and upload to an IPFS node', async () => {
    const w2 = workers[1].node
    const url = await b.call('/api/v0/image/gen', { node_id: w2.peerId, project: PROJECT, model: 'superImage', prompt: 'a bird', n: 2, size: '256x256', response_format: 'url' })
    assert.equal(url.status, 200, JSON.stringify(url.body))
    assert.equal(url.body.data.data.length, 2)
    assert.match(url.body.data.data[0].url, /^http:\/\/127\.0\.0\.1:\d+\/files\//)
    const b64 = await b.call('/api/v0/image/gen/proxy', { project: PROJECT, model: 'superImage', prompt: 'a bird', n: 1, response_format: 'b64_json' })
    assert.equal(Buffer.from(b64.body.data.data[0].b64_json, 'base64').subarray(1, 4).toString(), 'PNG')
    const port = (ipfs.address() as AddressInfo).port
    const stored = await b.call('/api/v0/image/gen', { node_id: w2.peerId, project: PROJECT, model: 'superImage', prompt: 'a bird', n: 2, ipfs_node: `http://127.0.0.1:${port}` })
    assert.equal(stored.status, 200, JSON.stringify(stored.body))
    assert.equal(stored.body.data.ipfs_node, `http://127.0.0.1:${port}`)
    assert.equal(stored.body.data.choices.length, 2)
    assert.match(stored.body.data.choices[0].cid, /^QmFake/)
    assert.match(stored.body.data.choices[0].image_name, /\.png$/)
  })

  test('image edit: a multipart upload streams to the model, direct and by project', async () => {
    const w3 = workers[2].node
    const image = Buffer.alloc(3 * 1024 * 1024, 7)
    for (const path of [`/api/v0/image/edit?node_id=${w3.peerId}&project=${PROJECT}&model=editor`, `/api/v0/image/edit/proxy?project=${PROJECT}&model=editor`]) {
      const form = new FormData()
      form.append('image', new Blob([image], { type: 'image/png' }), 'in.png')
      form.append('prompt', 'make it blue')
      form.append('model', 'editor')
      const response = await fetch(`${b.api}${path}`, { method: 'POST', body: form })
      const body = await response.json() as any
      assert.equal(response.status, 200, JSON.stringify(body))
      assert.equal(body.data.received_bytes, image.length)
      assert.ok(body.data.data[0].b64_json.length > 0)
    }
  })

  test('bad job requests get the documented error and the node keeps serving', async () => {
    const w1 = workers[0].node
    const cases: Array<[string, unknown, number, number, RegExp]> = [
      ['/api/v0/chat/completion', { project: PROJECT, model: CHAT, messages: [] }, 400, 1001, /node_id/],
      ['/api/v0/chat/completion', { node_id: w1.peerId, model: CHAT, messages: [] }, 400, 1001, /project/],
      ['/api/v0/chat/completion', { node_id: w1.peerId, project: PROJECT, model: CHAT }, 400, 1001, /messages/],
      ['/api/v0/chat/completion', { node_id: 'nope', project: PROJECT, model: CHAT, messages: [] }, 400, 1001, /node id/],
      ['/api/v0/chat/completion', chatBody({ node_id: w1.peerId, model: 'Unknown-1B' }), 404, 1006, /not served/],
      ['/api/v0/chat/completion', chatBody({ node_id: w1.peerId, model: 'superImage' }), 400, 1001, /text-to-image model, not a chat model/],
      ['/api/v0/chat/completion/proxy', chatBody({ model: 'Unknown-1B' }), 503, 1016, /no reachable node/],
      ['/api/v0/image/gen', { node_id: w1.peerId, project: PROJECT, model: 'superImage' }, 400, 1001, /prompt/],
      ['/api/v0/image/gen', { node_id: w1.peerId, project: PROJECT, model: 'superImage', prompt: 'x', ipfs_node: 'ftp://x' }, 400, 1001, /ipfs_node/],
      ['/api/v0/image/edit?project=P&model=editor', { prompt: 'x' }, 400, 1001, /node_id/],
      [`/api/v0/image/edit?node_id=${w1.peerId}&project=P&model=editor`, { prompt: 'x' }, 400, 1001, /multipart/]
    ]
    for (const [path, body, status, code, message] of cases) {
      const result = await b.call(path, body)
      assert.equal(result.status, status, `${path} ${JSON.stringify(body)} → ${JSON.stringify(result.body)}`)
      assert.equal(result.body.code, code, JSON.stringify(result.body))
      assert.match(result.body.message, message)
    }
    assert.equal((await b.call('/api/v0/chat/completion', chatBody({ node_id: w1.peerId }))).status, 200)
  })

  test('a model error is passed through with its status and message', async () => {
    const w1 = workers[0].node
    const failing = await startFakeModelServer({ failWith: { status: 429, body: { error: { message: 'slow down', type: 'rate_limit' } } } })
    try {
      assert.equal((await w1.call('/api/v0/ai/model/register', { project: 'Errors', model: 'limited', api: `${failing.url}/v1/chat/completions` })).body.code, 0)
      const result = await b.call('/api/v0/chat/completion', { node_id: w1.peerId, project: 'Errors', model: 'limited', messages: [] })
      assert.equal(result.status, 429)
      assert.equal(result.body.code, 1006)
      assert.match(result.body.message, /slow down/)
    } finally {
      await failing.close()
    }
  })

  test('a dead model server: a clear model error, and the node keeps serving', async () => {
    const w1 = workers[0].node
    const dead = await startFakeModelServer()
    await dead.close()
    assert.equal((await w1.call('/api/v0/ai/model/register', { project: 'Dead', model: 'gone', api: `${dead.url}/v1/chat/completions` })).body.code, 0)
    const result = await b.call('/api/v0/chat/completion', { node_id: w1.peerId, project: 'Dead', model: 'gone', messages: [] })
    assert.equal(result.status, 502, JSON.stringify(result.body))
    assert.equal(result.body.code, 1006)
    assert.match(result.body.message, /unreachable/)
    assert.equal((await b.call('/api/v0/chat/completion', chatBody({ node_id: w1.peerId }))).status, 200)
  })

  test('a slow model runs into the job timeout (timeout code)', async () => {
    const w1 = workers[0].node
    const slow = await startFakeModelServer({ responseDelayMs: 5_000 })
    try {
      assert.equal((await w1.call('/api/v0/ai/model/register', { project: 'Slow', model: 'sloth', api: `${slow.url}/v1/chat/completions` })).body.code, 0)
      const result = await b.call('/api/v0/chat/completion', { node_id: w1.peerId, project: 'Slow', model: 'sloth', messages: [], timeout: '1s' })
      assert.equal(result.status, 504, JSON.stringify(result.body))
      assert.equal(result.body.code, 1004)
      // Without a `timeout` in the request, the node's configured limit for the kind applies: B's 3 s
      // (with the 5 min default, the model's answer after 5 s would have been a success).
      assert.equal((await w1.call('/api/v0/ai/model/register', { project: 'Slow', model: 'painter', api: `${slow.url}/v1/images/generations`, type: 1 })).body.code, 0)
      const image = await b.call('/api/v0/image/gen', { node_id: w1.peerId, project: 'Slow', model: 'painter', prompt: 'a sloth' })
      assert.equal(image.status, 504, JSON.stringify(image.body))
      assert.equal(image.body.code, 1004)
    } finally {
      await slow.close()
    }
  })

  test('a client that disconnects mid-stream aborts the model call', async () => {
    const w1 = workers[0]
    const slowStream = await startFakeModelServer({ tokens: Array.from({ length: 50 }, (_, i) => ` t${i}`), tokenDelayMs: 100 })
    try {
      assert.equal((await w1.node.call('/api/v0/ai/model/register', { project: 'Abort', model: 'long', api: `${slowStream.url}/v1/chat/completions` })).body.code, 0)
      const controller = new AbortController()
      const response = await fetch(`${b.api}/api/v0/chat/completion`, { method: 'POST', signal: controller.signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ node_id: w1.node.peerId, project: 'Abort', model: 'long', messages: [], stream: true }) })
      const reader = (response.body as ReadableStream<Uint8Array>).getReader()
      await reader.read()
      controller.abort()
      await waitFor(() => slowStream.abortedStreams === 1, 10_000, 'the model call to be aborted')
    } finally {
      await slowStream.close()
    }
  })

  test('garbage on the job protocol: the worker keeps serving', async () => {
    const w1 = workers[0].node
    const rogue = await createLibp2p({
      transports: [tcp()],
      connectionProtector: preSharedKey({ psk: swarmKeyFromHex(PSK) }),
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()]
    })
    try {
      for (const garbage of [new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]), new Uint8Array([5, 1, 2, 3, 4, 5]), new Uint8Array(0)]) {
        const stream = await rogue.dialProtocol(multiaddr(await w1.addr()), '/aicn/job/1.0.0')
        stream.send(garbage)
        await stream.close().catch(() => {})
      }
    } finally {
      await rogue.stop()
    }
    assert.equal((await b.call('/api/v0/chat/completion', chatBody({ node_id: w1.peerId }))).status, 200)
  })

  test('a worker killed mid-stream: the client sees an error event and the end of the stream', async () => {
    const w3 = workers[2]
    const response = await fetch(`${b.api}/api/v0/chat/completion`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...chatBody({ node_id: w3.node.peerId, stream: true }) }) })
    assert.equal(response.status, 200)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const first = await reader.read()
    assert.equal(first.done, false)
    await w3.node.kill()
    let rest = ''
    for (let chunk = await reader.read(); chunk.done !== true; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value)
    assert.match(rest, /data: \{"error":\{"code":\d+,"message":/)
    assert.ok(!rest.includes('[DONE]'))
  })

  test('with one of three workers dead, every proxied request still succeeds', async () => {
    // W3 was killed above; B still has it in its view for a while.
    await waitFor(async () => !(await connectedPeers(b)).includes(workers[2].node.peerId), 10_000, 'B to notice W3 is gone')
    for (let i = 0; i < 10; i++) {
      const result = await b.call('/api/v0/chat/completion/proxy', chatBody())
      assert.equal(result.status, 200, JSON.stringify(result.body))
      assert.notEqual(result.headers.get('x-aicn-node'), workers[2].node.peerId)
    }
  })
})
