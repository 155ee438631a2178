// A Go worker that starts with its models in its config (AIProjects) is listed by an aicn node as soon as
// it joins the topic, not one heartbeat interval later: the Go node's heartbeat at start can go out before
// its pubsub has a stream to us, and its next one comes a whole HeartbeatInterval later (180 s by
// default; 600 s here, far past the wait). The aicn node asks a joining node that does not speak view sync
// for its registrations (src/protocols/heartbeat/heartbeats.ts askIfUnheard), over the Go node's broadcast
// RPC. The real Go node (test/integration/go-node.ts), on loopback.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { TestNode, waitFor } from './harness.ts'
import { goBinaryMissing, GoNode } from './go-node.ts'

const PSK = 'a3'.repeat(32)

describe('a Go worker with configured models joins an aicn input node', { skip: goBinaryMissing() }, () => {
  let model: FakeModelServer
  let input: TestNode
  let worker: GoNode

  before(async () => {
    model = await startFakeModelServer({ tokens: ['joined'] })
    input = await TestNode.start({ mode: 'input', psk: PSK })
  })

  after(async () => {
    await Promise.all([input?.destroy(), worker?.destroy()])
    await model?.close()
  })

  test('it is routable within seconds of joining, not a heartbeat interval later', async () => {
    worker = await GoNode.start({
      mode: 'worker',
      psk: PSK,
      heartbeatInterval: '600s',
      bootstrap: [await input.addr()],
      projects: [{ Project: 'Joined', Models: [{ Model: 'chat', API: `${model.url}/v1/chat/completions`, Type: 0, CID: 'go-joined' }] }]
    })
    const listed = async (): Promise<boolean> => {
      const peers = await input.call('/api/v0/ai/projects/peers?project=Joined&model=chat')
      return peers.status === 200 && (peers.body.data as Array<{ node_id: string }>).some((p) => p.node_id === worker.peerId)
    }
    // Well under the worker's 600 s interval: only the question on join can have brought it.
    await waitFor(listed, 30_000, 'the aicn input node to list the Go worker')
    const job = await input.call('/api/v0/chat/completion/proxy', { project: 'Joined', model: 'chat', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(job.status, 200, JSON.stringify(job.body))
    assert.equal(job.headers.get('x-aicn-node'), worker.peerId)
  })
})
