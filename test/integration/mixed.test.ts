// A mixed network on loopback: aicn nodes speaking our native protocols, and aicn nodes in Go-wire mode,
// which offer and use only the Go node's protocols (broadcast requests on the topic, /chat-proxy/0.0.1).
// Every query and job path must work across the boundary, both ways.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { TestNode, waitFor } from './harness.ts'

const PSK = 'ac'.repeat(32)
const TOKENS = ['Mixed', ' networks', ' work', '.']
const goWire = (config: any): void => { config.Wire = { Mode: 'go' } }

async function readSse (response: Response): Promise<string> {
  let text = ''
  const decoder = new TextDecoder()
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true })
  return text
}
const contentOf = (sse: string): string => sse.split('\n\n').filter((e) => e.startsWith('data: {'))
  .map((e) => JSON.parse(e.slice(6)).choices?.[0]?.delta?.content ?? '').join('')

describe('a mixed network of native and Go-wire nodes', () => {
  let b: TestNode // native input node
  let g: TestNode // Go-wire worker
  let a: TestNode // native worker
  let model: FakeModelServer

  const register = async (node: TestNode, project: string): Promise<void> => {
    const result = await node.call('/api/v0/ai/project/register', {
      project,
      models: [
        { model: 'chat', api: `${model.url}/v1/chat/completions`, type: 0 },
        { model: 'painter', api: `${model.url}/v1/images/generations`, type: 1 },
        { model: 'editor', api: `${model.url}/v1/images/edits`, type: 2 }
      ]
    })
    assert.equal(result.body.code, 0, JSON.stringify(result.body))
  }
  const chat = (extra: Record<string, unknown>): Record<string, unknown> => ({ model: 'chat', messages: [{ role: 'user', content: 'Hello' }], ...extra })

  before(async () => {
    model = await startFakeModelServer({ tokens: TOKENS, tokenDelayMs: 20 })
    b = await TestNode.start({ mode: 'input', psk: PSK })
    const bAddr = await b.addr()
    g = await TestNode.start({ psk: PSK, bootstrap: [bAddr], edit: goWire })
    a = await TestNode.start({ psk: PSK, bootstrap: [bAddr] })
    await register(g, 'GoSide')
    await register(a, 'NativeSide')
    for (const node of [b, g, a]) {
      await waitFor(async () => {
        const list = (await node.call('/api/v0/ai/projects/list')).body.data
        return list.includes('GoSide') && list.includes('NativeSide')
      }, 20_000, 'every node to hear both workers')
    }
  })

  after(async () => {
    await Promise.all([b, g, a].filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
    await model?.close()
  })

  test('a Go-wire node offers none of our native protocols', async () => {
    const protocols = (await g.call('/api/v0/id')).body.protocols as string[]
    assert.ok(!protocols.includes('/aicn/rpc/1.0.0'))
    assert.ok(!protocols.some((p) => p.startsWith('/aicn/job/')))
    assert.ok(protocols.includes('/chat-proxy/0.0.1'))
    assert.ok((await a.call('/api/v0/id')).body.protocols.includes('/chat-proxy/0.0.1'), 'native nodes answer Go requesters too')
  })

  test('queries cross the boundary both ways (broadcast requests on the topic)', async () => {
    for (const [from, to] of [[b, g], [g, a], [g, b]] as Array<[TestNode, TestNode]>) {
      const peer = await from.call('/api/v0/peer', { node_id: to.peerId, timeout: '10s' })
      assert.equal(peer.status, 200, JSON.stringify(peer.body))
      assert.equal(peer.body.data.peer_id, to.peerId)
      const info = await from.call('/api/v0/host/info', { node_id: to.peerId, timeout: '10s' })
      assert.equal(info.status, 200, JSON.stringify(info.body))
      assert.equal(info.body.data.os.os, 'linux')
    }
    const projects = await b.call('/api/v0/ai/project/peer', { node_id: g.peerId, timeout: '10s' })
    assert.equal(projects.status, 200, JSON.stringify(projects.body))
    assert.deepEqual(projects.body.data, [{ project: 'GoSide', models: ['chat', 'painter', 'editor'] }])
  })

  test('jobs from a native node to a Go-wire worker: chat, streamed chat, images, edit, proxy', async () => {
    const direct = await b.call('/api/v0/chat/completion', chat({ node_id: g.peerId, project: 'GoSide' }))
    assert.equal(direct.status, 200, JSON.stringify(direct.body))
    assert.equal(direct.body.data.choices[0].message.content, TOKENS.join(''))
    assert.equal(direct.headers.get('x-aicn-node'), g.peerId)

    const stream = await fetch(`${b.api}/api/v0/chat/completion`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat({ node_id: g.peerId, project: 'GoSide', stream: true })) })
    assert.equal(stream.status, 200)
    const sse = await readSse(stream)
    assert.equal(contentOf(sse), TOKENS.join(''))
    assert.match(sse, /data: \[DONE\]/)

    const image = await b.call('/api/v0/image/gen', { node_id: g.peerId, project: 'GoSide', model: 'painter', prompt: 'x', n: 1, response_format: 'b64_json' })
    assert.equal(image.status, 200, JSON.stringify(image.body))
    assert.ok(image.body.data.data[0].b64_json.length > 0)

    const form = new FormData()
    form.append('image', new Blob([Buffer.alloc(500_000, 3)], { type: 'image/png' }), 'in.png')
    form.append('prompt', 'x')
    const edit = await fetch(`${b.api}/api/v0/image/edit?node_id=${g.peerId}&project=GoSide&model=editor`, { method: 'POST', body: form })
    const editBody = await edit.json() as any
    assert.equal(edit.status, 200, JSON.stringify(editBody))
    assert.equal(editBody.data.received_bytes, 500_000)

    const proxied = await b.call('/api/v0/chat/completion/proxy', chat({ project: 'GoSide' }))
    assert.equal(proxied.status, 200, JSON.stringify(proxied.body))
    assert.equal(proxied.headers.get('x-aicn-node'), g.peerId)
  })

  test('jobs from a Go-wire node to a native worker', async () => {
    const direct = await g.call('/api/v0/chat/completion', chat({ node_id: a.peerId, project: 'NativeSide' }))
    assert.equal(direct.status, 200, JSON.stringify(direct.body))
    assert.equal(direct.body.data.choices[0].message.content, TOKENS.join(''))

    const stream = await fetch(`${g.api}/api/v0/chat/completion/proxy`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat({ project: 'NativeSide', stream: true })) })
    assert.equal(stream.status, 200)
    assert.equal(contentOf(await readSse(stream)), TOKENS.join(''))
  })
})
