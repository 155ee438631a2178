// Freshness from each sender's own rhythm (src/registry/rhythm.ts), against the real Go node: an idle Go
// worker that heartbeats every 60 s stays routable from an aicn node set to 10 s. Before, the aicn node held
// every node to three of its own intervals (30 s) and dropped the worker between its heartbeats (503, code
// 1016, while the worker was up). This test runs two real minutes (two of the worker's intervals); it
// shares nothing with the other Go tests, so the runner can run it beside them.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { TestNode, waitFor } from './harness.ts'
import { goBinaryMissing, GoNode } from './go-node.ts'

const PSK = 'f7'.repeat(32)
const WATCH_MS = 120_000
/** One poll a second: the window the old rule left open between heartbeats was 30 s wide. */
const POLL_GAP_MS = 1000
const MAX_POLLS = 200

describe('an idle Go worker with a 60 s heartbeat, seen from an aicn node set to 10 s', { skip: goBinaryMissing() }, () => {
  let model: FakeModelServer
  let input: TestNode
  let worker: GoNode

  before(async () => {
    model = await startFakeModelServer({ tokens: ['idle'] })
    input = await TestNode.start({ mode: 'input', psk: PSK, edit: (config) => { config.App.PeersCollect.HeartbeatInterval = '10s' } })
    worker = await GoNode.start({ mode: 'worker', psk: PSK, heartbeatInterval: '60s', bootstrap: [await input.addr()] })
    await waitFor(async () => ((await input.call('/api/v0/pubsub/peers')).body as string[]).includes(worker.peerId), 20_000, 'the Go worker to join the topic')
    // A registration makes the Go node heartbeat at once; after that it is idle: one heartbeat a minute.
    await register()
  })

  /** Registering makes the Go node heartbeat at once. */
  const register = async (): Promise<void> => {
    const registered = await worker.call('/api/v0/ai/project/register', { Project: 'Idle', Models: [{ Model: 'chat', API: `${model.url}/v1/chat/completions`, Type: 0, CID: 'go-chat' }] })
    assert.equal(registered.status, 200, JSON.stringify(registered.body))
  }

  after(async () => {
    await Promise.all([input?.destroy(), worker?.destroy()])
    await model?.close()
  })

  test('it stays routable for two minutes', async () => {
    const routable = async (): Promise<boolean> => {
      const peers = await input.call('/api/v0/ai/projects/peers?project=Idle&model=chat')
      return peers.status === 200 && (peers.body.data as Array<{ node_id: string }>).some((p) => p.node_id === worker.peerId)
    }
    // The Go node's first heartbeat can go out before its pubsub sees the input node (it joined the topic
    // a moment ago) and is then lost until its next one, a minute later: register again every 5 s until
    // the aicn node has heard it (seen in CI). The watch below starts only after that, with the worker idle.
    let registeredAt = Date.now()
    await waitFor(async () => {
      if (await routable()) return true
      if (Date.now() - registeredAt >= 5_000) {
        await register()
        registeredAt = Date.now()
      }
      return false
    }, 60_000, 'the aicn node to route to the Go worker')
    const deadline = Date.now() + WATCH_MS
    let polls = 0
    const missed: number[] = []
    while (Date.now() < deadline && polls < MAX_POLLS) {
      polls++
      if (!await routable()) missed.push(polls)
      await new Promise((resolve) => setTimeout(resolve, POLL_GAP_MS))
    }
    assert.ok(worker.running, 'the Go worker is still up')
    assert.ok(polls >= 60, `only ${polls} polls`)
    assert.deepEqual(missed, [], `not routable at ${missed.length} of ${polls} polls`)
    // A routed job still reaches it (the proxy picks from the same candidates).
    const job = await input.call('/api/v0/chat/completion/proxy', { project: 'Idle', model: 'chat', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(job.status, 200, JSON.stringify(job.body))
    assert.equal(job.headers.get('x-aicn-node'), worker.peerId)
  })
})
