// What an operator sees (issue 15), on real daemons over 127.0.0.1: a model registered before its server
// is up becomes routable within 2 s of the server starting (the register answer says it does not answer
// yet, the log says down and up); a peer with another pre-shared key is named as such, in the
// swarm/connect error and in the other node's log; and the job metrics count what a few jobs did.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { connectedPeers, freePort, TestNode, waitFor } from './harness.ts'

const PSK = 'ab'.repeat(32)
const OTHER_PSK = 'cd'.repeat(32)
const PROJECT = 'OpsProject'
const fastHeartbeat = (config: any): void => { config.App.PeersCollect.HeartbeatInterval = '2s' }

async function lists (node: TestNode, model: string, serving: string): Promise<boolean> {
  const peers = await node.call('/api/v0/ai/projects/peers', { project: PROJECT, model })
  return peers.status === 200 && peers.body.data.some((p: { node_id: string }) => p.node_id === serving)
}

/** The value of one Prometheus sample, or undefined; `labels` must all match. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))
    if (ok) total = (total ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return total
}

describe('operator experience', () => {
  const nodes: TestNode[] = []
  const models: FakeModelServer[] = []

  after(async () => {
    await Promise.all(nodes.map(async (n) => { await n.destroy() }))
    await Promise.all(models.map(async (m) => { await m.close() }))
  })

  test('a model registered before its server starts is routable within 2 s of the server answering', async () => {
    const w = await TestNode.start({ psk: PSK, edit: fastHeartbeat })
    nodes.push(w)
    const port = await freePort()
    const registered = await w.call('/api/v0/ai/model/register', { project: PROJECT, model: 'late', api: `http://127.0.0.1:${port}/v1/chat/completions`, type: 0 })
    assert.equal(registered.status, 200)
    assert.equal(registered.body.code, 0)
    assert.equal(registered.body.message, 'ok')
    assert.deepEqual(registered.body.data.not_answering, ['late'])
    assert.match(registered.body.data.warning, /does not answer yet/)
    await waitFor(() => /model OpsProject\/late is down: .*ECONNREFUSED/.test(w.output), 10_000, 'the log to say the model is down and why')
    assert.equal(await lists(w, 'late', w.peerId), false, 'a model whose server is down is not routed to')

    const model = await startFakeModelServer({ port, model: 'late' })
    models.push(model)
    // The bound of the issue: routable within 2 s of the server starting (probes retry after 1 s, 2 s, …).
    await waitFor(async () => await lists(w, 'late', w.peerId), 2_000, 'the late model to be routable')
    // The daemon's log reaches us through a pipe, possibly after its API has answered: wait for the line.
    await waitFor(() => /model OpsProject\/late is up/.test(w.output), 10_000, 'the log to say the model is up')
    const chat = await w.call('/api/v0/chat/completion/proxy', { project: PROJECT, model: 'late', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(chat.status, 200)
  })

  test('a peer with another pre-shared key is named as such', async () => {
    const b = await TestNode.start({ mode: 'input', psk: PSK })
    const stranger = await TestNode.start({ psk: OTHER_PSK })
    nodes.push(b, stranger)
    const connect = await stranger.call('/api/v0/swarm/connect', { node_addr: await b.addr() })
    assert.equal(connect.status, 502)
    assert.match(connect.body.message, /pre-shared key/)
    const bootstrap = await stranger.call('/api/v0/bootstrap/add', { node_addr: await b.addr() })
    assert.equal(bootstrap.status, 502)
    assert.match(bootstrap.body.message, /pre-shared key/)
    // B saw someone knock with the wrong key, and says so (as the Go node does).
    await waitFor(() => /different pre-shared key/.test(b.output), 10_000, 'B to warn about the wrong key')
    assert.deepEqual(await connectedPeers(b), [])
  })

  describe('metrics after a few jobs', () => {
    let b: TestNode
    let w: TestNode
    before(async () => {
      const model = await startFakeModelServer({ model: 'counted' })
      models.push(model)
      b = await TestNode.start({ mode: 'input', psk: PSK, edit: fastHeartbeat })
      w = await TestNode.start({ psk: PSK, bootstrap: [await b.addr()], edit: fastHeartbeat })
      nodes.push(b, w)
      await w.call('/api/v0/ai/model/register', { project: PROJECT, model: 'counted', api: `${model.url}/v1/chat/completions`, type: 0 })
      await waitFor(async () => await lists(b, 'counted', w.peerId), 15_000, 'B to route to W')
    })

    test('jobs by outcome and place, tokens, first byte, failures, view and peers', async () => {
      const messages = [{ role: 'user', content: 'count me' }]
      const localUsage = { prompt_tokens: 0, completion_tokens: 0 }
      for (let i = 0; i < 2; i++) {
        const local = await w.call('/api/v0/chat/completion/proxy', { project: PROJECT, model: 'counted', messages })
        assert.equal(local.status, 200)
        localUsage.prompt_tokens += local.body.data.usage.prompt_tokens as number
        localUsage.completion_tokens += local.body.data.usage.completion_tokens as number
      }
      const remote = await b.call('/api/v0/chat/completion/proxy', { project: PROJECT, model: 'counted', messages, stream: true })
      assert.equal(remote.status, 200)
      const gateway = await b.call('/v1/chat/completions', { model: `${PROJECT}/counted`, messages })
      assert.equal(gateway.status, 200)
      const usage = gateway.body.usage as { prompt_tokens: number, completion_tokens: number }
      const missing = await b.call('/api/v0/chat/completion/proxy', { project: PROJECT, model: 'no-such-model', messages })
      assert.equal(missing.status, 503)
      const unknown = await b.call('/v1/chat/completions', { model: 'no-such-model', messages })
      assert.equal(unknown.status, 404)

      const wText = (await w.call('/metrics')).body as string
      const bText = (await b.call('/metrics')).body as string
      assert.equal(sample(wText, 'aicn_jobs_total', { kind: 'chat', model: 'counted', outcome: 'ok', where: 'local' }), 2)
      assert.equal(sample(wText, 'aicn_jobs_total', { kind: 'chat', model: 'counted', outcome: 'ok', where: 'for_peer' }), 2, 'the two jobs B sent')
      assert.equal(sample(bText, 'aicn_jobs_total', { kind: 'chat', model: 'counted', outcome: 'ok', where: 'remote' }), 2)
      // The unknown model's name is never a label value.
      assert.equal(sample(bText, 'aicn_jobs_total', { outcome: 'no_node', where: 'none', model: 'other' }), 1)
      assert.ok(!bText.includes('no-such-model'))
      assert.equal(sample(bText, 'aicn_job_first_byte_seconds_count', { kind: 'chat', where: 'remote' }), 2)
      assert.equal(sample(bText, 'aicn_tokens_total', { direction: 'in', model: 'counted' }), usage.prompt_tokens)
      assert.equal(sample(bText, 'aicn_tokens_total', { direction: 'out', model: 'counted' }), usage.completion_tokens)
      // Keyless /api/v0 calls count their reported tokens too.
      assert.equal(sample(wText, 'aicn_tokens_total', { direction: 'in', model: 'counted' }), localUsage.prompt_tokens)
      assert.equal(sample(wText, 'aicn_tokens_total', { direction: 'out', model: 'counted' }), localUsage.completion_tokens)
      assert.equal(sample(bText, 'aicn_gateway_rejections_total', { status: '404' }), 1)
      assert.equal(sample(bText, 'aicn_peers_connected'), 1)
      assert.equal(sample(bText, 'aicn_view_nodes'), 2)
      assert.equal(sample(wText, 'aicn_local_models', { state: 'up' }), 1)
      assert.equal(sample(wText, 'aicn_local_models', { state: 'down' }), 0)

      const status = await w.call('/api/v0/node/overview')
      assert.equal(status.status, 200)
      assert.equal(status.body.data.node_id, w.peerId)
      assert.equal(status.body.data.last_minute.jobs, 4)
      assert.equal(status.body.data.models[0].available, true)
    })
  })
})
