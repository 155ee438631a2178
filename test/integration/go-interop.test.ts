// aicn beside the real Go node (test/integration/go-node.ts) on loopback, on the Go templates' floodsub:
// registrations, queries, chat (plain and streamed) and image jobs, both ways across the boundary, and
// rendezvous. test/integration/mixed.test.ts checks the same paths against aicn nodes in Go-wire mode;
// this is the check against the real thing.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { TestNode, waitFor } from './harness.ts'
import { goBinaryMissing, GoNode } from './go-node.ts'

const PSK = '9c'.repeat(32)
const TOKENS = ['Go', ' and', ' aicn', '.']

async function readSse (response: Response): Promise<string> {
  let text = ''
  const decoder = new TextDecoder()
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true })
  return text
}
const contentOf = (sse: string): string => sse.split('\n\n').filter((e) => e.startsWith('data: {'))
  .map((e) => JSON.parse(e.slice(6)).choices?.[0]?.delta?.content ?? '').join('')
const chat = (extra: Record<string, unknown>): Record<string, unknown> => ({ model: 'chat', messages: [{ role: 'user', content: 'Hello' }], ...extra })

describe('aicn and the Go node, both ways', { skip: goBinaryMissing() }, () => {
  let model: FakeModelServer
  let goInput: GoNode
  let goWorker: GoNode
  let input: TestNode // aicn input node
  let worker: TestNode // aicn worker

  before(async () => {
    model = await startFakeModelServer({ tokens: TOKENS, tokenDelayMs: 20 })
    goInput = await GoNode.start({ mode: 'input', psk: PSK, heartbeatInterval: '60s' })
    input = await TestNode.start({ mode: 'input', psk: PSK, bootstrap: [goInput.addr] })
    const both = [goInput.addr, await input.addr()]
    ;[goWorker, worker] = await Promise.all([
      GoNode.start({ mode: 'worker', psk: PSK, heartbeatInterval: '60s', bootstrap: both }),
      TestNode.start({ mode: 'worker', psk: PSK, bootstrap: both })
    ])
    // Every node subscribed to the topic before the registrations' heartbeats go out.
    await waitFor(async () => {
      const subscribed = (await input.call('/api/v0/pubsub/peers')).body as string[]
      const goSubscribed = (await goInput.call('/api/v0/pubsub/peers')).body as string[]
      return [goInput.peerId, goWorker.peerId, worker.peerId].every((id) => subscribed.includes(id)) &&
        [input.peerId, goWorker.peerId, worker.peerId].every((id) => goSubscribed.includes(id))
    }, 20_000, 'every node on the topic')
  })

  after(async () => {
    await Promise.all([goInput, goWorker, input, worker].filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
    await model?.close()
  })

  test('registrations on either side are heard on the other', async () => {
    const goRegistered = await goWorker.call('/api/v0/ai/project/register', {
      Project: 'GoSide',
      Models: [
        { Model: 'chat', API: `${model.url}/v1/chat/completions`, Type: 0, CID: 'go-chat' },
        { Model: 'painter', API: `${model.url}/v1/images/generations`, Type: 1, CID: 'go-painter' }
      ]
    })
    assert.equal(goRegistered.status, 200, JSON.stringify(goRegistered.body))
    const registered = await worker.call('/api/v0/ai/project/register', {
      project: 'AicnSide',
      models: [
        { model: 'chat', api: `${model.url}/v1/chat/completions`, type: 0 },
        { model: 'painter', api: `${model.url}/v1/images/generations`, type: 1 }
      ]
    })
    assert.equal(registered.body.code, 0, JSON.stringify(registered.body))
    await waitFor(async () => {
      const list = (await input.call('/api/v0/ai/projects/list')).body.data as string[]
      return list.includes('GoSide') && list.includes('AicnSide')
    }, 20_000, 'the aicn input node to hear both workers')
    await waitFor(async () => {
      const list = ((await goInput.call('/api/v0/ai/projects/list')).body.data ?? []) as string[]
      return list.includes('GoSide') && list.includes('AicnSide')
    }, 20_000, 'the Go input node to hear both workers')
    const goModels = (await goInput.call('/api/v0/ai/projects/models?project=AicnSide')).body.data as string[]
    assert.deepEqual([...goModels].sort(), ['chat', 'painter'])
  })

  test('queries from aicn to a Go worker', async () => {
    const peer = await input.call('/api/v0/peer', { node_id: goWorker.peerId, timeout: '10s' })
    assert.equal(peer.status, 200, JSON.stringify(peer.body))
    assert.equal(peer.body.data.peer_id, goWorker.peerId)
    assert.equal(peer.body.data.agent_version, 'v0.2.3')
    const info = await input.call('/api/v0/host/info', { node_id: goWorker.peerId, timeout: '10s' })
    assert.equal(info.status, 200, JSON.stringify(info.body))
    assert.equal(info.body.data.os.os, 'linux')
    const projects = await input.call('/api/v0/ai/project/peer', { node_id: goWorker.peerId, timeout: '10s' })
    assert.equal(projects.status, 200, JSON.stringify(projects.body))
    assert.deepEqual(projects.body.data, [{ project: 'GoSide', models: ['chat', 'painter'] }])
  })

  test('queries from the Go node to an aicn worker', async () => {
    const peer = await goInput.call('/api/v0/peer', { node_id: worker.peerId })
    assert.equal(peer.status, 200, JSON.stringify(peer.body))
    assert.equal(peer.body.peer_id, worker.peerId)
    const info = await goInput.call('/api/v0/host/info', { node_id: worker.peerId })
    assert.equal(info.status, 200, JSON.stringify(info.body))
    assert.equal(info.body.os.os, 'linux')
    const projects = await goInput.call('/api/v0/ai/project/peer', { node_id: worker.peerId })
    assert.equal(projects.status, 200, JSON.stringify(projects.body))
    assert.deepEqual(Object.keys(projects.body.data), ['AicnSide'])
  })

  test('jobs from aicn to a Go worker: chat, streamed chat, image, routed by project', async () => {
    const direct = await input.call('/api/v0/chat/completion', chat({ node_id: goWorker.peerId, project: 'GoSide' }))
    assert.equal(direct.status, 200, JSON.stringify(direct.body))
    assert.equal(direct.body.data.choices[0].message.content, TOKENS.join(''))

    const stream = await fetch(`${input.api}/api/v0/chat/completion`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat({ node_id: goWorker.peerId, project: 'GoSide', stream: true })) })
    assert.equal(stream.status, 200)
    const sse = await readSse(stream)
    assert.equal(contentOf(sse), TOKENS.join(''))
    assert.match(sse, /data: \[DONE\]/)

    const image = await input.call('/api/v0/image/gen', { node_id: goWorker.peerId, project: 'GoSide', model: 'painter', prompt: 'x', n: 1, response_format: 'b64_json' })
    assert.equal(image.status, 200, JSON.stringify(image.body))
    assert.ok(image.body.data.data[0].b64_json.length > 0)

    const proxied = await input.call('/api/v0/chat/completion/proxy', chat({ project: 'GoSide' }))
    assert.equal(proxied.status, 200, JSON.stringify(proxied.body))
    assert.equal(proxied.headers.get('x-aicn-node'), goWorker.peerId)
  })

  test('jobs from the Go node to an aicn worker: chat, streamed chat, images', async () => {
    // Not streamed: a CHAT_COMPLETION request on the topic, answered on the topic.
    const direct = await goInput.call('/api/v0/chat/completion', chat({ node_id: worker.peerId, project: 'AicnSide' }))
    assert.equal(direct.status, 200, JSON.stringify(direct.body))
    assert.equal(direct.body.choices[0].message.content, TOKENS.join(''))

    // Streamed: /chat-proxy/0.0.1.
    const stream = await fetch(`${goInput.api}/api/v0/chat/completion`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat({ node_id: worker.peerId, project: 'AicnSide', stream: true })) })
    assert.equal(stream.status, 200)
    const sse = await readSse(stream)
    assert.equal(contentOf(sse), TOKENS.join(''))

    // b64_json goes over /chat-proxy/0.0.1, other formats as an IMAGE_GENERATION request on the topic.
    const b64 = await goInput.call('/api/v0/image/gen', { node_id: worker.peerId, project: 'AicnSide', model: 'painter', prompt: 'x', n: 1, response_format: 'b64_json' })
    assert.equal(b64.status, 200, JSON.stringify(b64.body))
    assert.ok(b64.body.data[0].b64_json.length > 0)
    const url = await goInput.call('/api/v0/image/gen', { node_id: worker.peerId, project: 'AicnSide', model: 'painter', prompt: 'x', n: 1, response_format: 'url' })
    assert.equal(url.status, 200, JSON.stringify(url.body))
    assert.match(url.body.data[0].url, /^http:\/\/127\.0\.0\.1:\d+\/files\//)

    // Routed by project name: the Go node picks the aicn worker from the heartbeats it collected.
    const proxied = await goInput.call('/api/v0/chat/completion/proxy', chat({ project: 'AicnSide' }))
    assert.equal(proxied.status, 200, JSON.stringify(proxied.body))
    assert.equal(proxied.body.choices[0].message.content, TOKENS.join(''))
  })

  test('rendezvous: each side lists the other as a provider of the topic', async () => {
    await waitFor(async () => {
      const result = await input.call('/api/v0/rendezvous/peers')
      return result.status === 200 && result.body.data.includes(goWorker.peerId) && result.body.data.includes(worker.peerId)
    }, 20_000, 'the aicn input node to list both workers')
    await waitFor(async () => {
      const result = await goInput.call('/api/v0/rendezvous/peers')
      return result.status === 200 && (result.body.data ?? []).includes(worker.peerId)
    }, 20_000, 'the Go input node to list the aicn worker')
  })
})
