// A good citizen of a mixed network, checked against the real Go node (test/integration/go-node.ts): after a
// minute of pubsub traffic among Go and aicn nodes, no Go node has been sent back a message it published.
// Go nodes log each such copy as "REJECT_MESSAGE … self originated message"; before the rules of
// src/p2p/patches/pubsub-go-rules.ts a Go worker got back more than half of what it published. On gossipsub the
// check also covers the message ID: with IDs that Go does not know, our IHAVE gossip made Go nodes ask for
// (and get back) their own messages.
//
// One network per router, both at once (about 70 s): a Go input node, an aicn input node, a Go worker and
// an aicn worker, each worker connected to both inputs, so every message reaches an input node both
// directly and through the other input node — the path on which a node that does not skip the author
// forwards the message back to it.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { TestNode, waitFor } from './harness.ts'
import { goBinaryMissing, GoNode, selfOriginatedLines } from './go-node.ts'

const PSK = 'ec'.repeat(32)
const TRAFFIC_MS = 60_000
/** Pacing of the query loop (load, not waiting for anything); bounded in count as well as in time. */
const QUERY_GAP_MS = 500
const MAX_ROUNDS = 200

type Router = 'floodsub' | 'gossipsub'

interface Network { router: Router, goInput: GoNode, goWorker: GoNode, input: TestNode, worker: TestNode }

async function startNetwork (router: Router, aicnWorkerRouter: Router): Promise<Network> {
  const goInput = await GoNode.start({ mode: 'input', psk: PSK, router, heartbeatInterval: '1s' })
  const aicn = (r: Router) => (config: any): void => {
    config.Pubsub.Router = r
    config.App.PeersCollect.HeartbeatInterval = '1s'
  }
  const input = await TestNode.start({ mode: 'input', psk: PSK, bootstrap: [goInput.addr], edit: aicn(router) })
  const both = [goInput.addr, await input.addr()]
  const [goWorker, worker] = await Promise.all([
    GoNode.start({ mode: 'worker', psk: PSK, router, heartbeatInterval: '1s', bootstrap: both }),
    TestNode.start({ mode: 'worker', psk: PSK, bootstrap: both, edit: aicn(aicnWorkerRouter) })
  ])
  return { router, goInput, goWorker, input, worker }
}

async function destroy (network: Network | undefined): Promise<void> {
  if (network === undefined) return
  await Promise.all([network.goInput, network.goWorker, network.input, network.worker].map(async (n) => { await n.destroy() }))
}

/** A minute of heartbeats (every node, every second) and broadcast queries both ways across the boundary. */
async function traffic (network: Network): Promise<{ rounds: number, answered: number }> {
  const { goInput, goWorker, input, worker } = network
  // Everyone hears everyone first: the Go input node collects heartbeats, the aicn input node too.
  await waitFor(async () => {
    const goKnows = (await goInput.call('/api/v0/peers')).body?.data ?? []
    const aicnKnows = (await input.call('/api/v0/peers')).body?.data ?? []
    return [input.peerId, worker.peerId, goWorker.peerId].every((id) => goKnows.includes(id)) &&
      [goInput.peerId, worker.peerId, goWorker.peerId].every((id) => aicnKnows.includes(id))
  }, 30_000, `every node of the ${network.router} network to be heard`)
  const deadline = Date.now() + TRAFFIC_MS
  let rounds = 0
  let answered = 0
  while (Date.now() < deadline && rounds < MAX_ROUNDS) {
    rounds++
    const results = await Promise.all([
      input.call('/api/v0/peer', { node_id: goWorker.peerId, timeout: '10s' }),
      goInput.call('/api/v0/peer', { node_id: worker.peerId })
    ])
    answered += results.filter((r) => r.status === 200).length
    await new Promise((resolve) => setTimeout(resolve, QUERY_GAP_MS))
  }
  return { rounds, answered }
}

describe('no echo to Go nodes', { skip: goBinaryMissing() }, () => {
  let flood: Network | undefined
  let gossip: Network | undefined

  before(async () => {
    // The Go templates' router; our workers default to gossipsub with the floodsub fallback.
    ;[flood, gossip] = await Promise.all([startNetwork('floodsub', 'gossipsub'), startNetwork('gossipsub', 'gossipsub')])
  })

  after(async () => {
    await Promise.all([destroy(flood), destroy(gossip)])
  })

  test('a minute of traffic on floodsub and on gossipsub: no "self originated" line in any Go log', async () => {
    const networks = [flood!, gossip!]
    const loads = await Promise.all(networks.map(traffic))
    for (const [i, network] of networks.entries()) {
      const { rounds, answered } = loads[i]
      assert.ok(rounds >= 20, `${network.router}: only ${rounds} query rounds`)
      assert.ok(answered >= rounds, `${network.router}: ${answered} of ${2 * rounds} queries answered`)
      for (const go of [network.goInput, network.goWorker]) {
        const echoed = selfOriginatedLines(await go.log())
        assert.deepEqual(echoed.slice(0, 3), [], `${network.router}: ${echoed.length} of the Go node's own messages came back`)
      }
    }
  })
})
