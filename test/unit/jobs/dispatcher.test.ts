// The failover rule of src/jobs/dispatcher.ts (issue 13, part 9): a node whose model server is unreachable,
// answers 5xx or 429 before the first byte is passed over for the next candidate, up to three nodes, as a
// dead node is; a model's own 4xx answer is the client's. Nodes are stubs; the selector is the real one.
import { before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { JobDispatcher } from '../../../src/jobs/dispatcher.ts'
import type { LocalExecutor } from '../../../src/jobs/local.ts'
import { NodeSelector } from '../../../src/jobs/selector.ts'
import { JobKind, type JobRequest, type JobResponse } from '../../../src/core/job-types.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import type { NetworkRegistry, ProjectPeer } from '../../../src/protocols/network.ts'

type Behaviour = (nodeId: string) => Promise<JobResponse>

async function * bytes (text: string): AsyncGenerator<Uint8Array> { yield Buffer.from(text) }
async function * none (): AsyncGenerator<Uint8Array> {}

const answer = (nodeId: string, status: number, body = '{"ok":true}'): JobResponse => ({ status, contentType: 'application/json', nodeId, cid: '', body: bytes(body) })
const errorHead = (nodeId: string, status: number, code: number, message: string): JobResponse => ({ status, contentType: '', nodeId, cid: '', error: { code, message }, body: none() })

describe('JobDispatcher failover', () => {
  const ids: string[] = []
  before(async () => {
    for (let i = 0; i < 4; i++) ids.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())
  })

  /** A dispatcher over `nodes` (node id → behaviour); `tried` lists the nodes in the order asked. */
  function setup (nodes: Record<string, Behaviour>, self = 'self-node'): { dispatcher: JobDispatcher, tried: string[], selector: NodeSelector } {
    const tried: string[] = []
    const run = async (nodeId: string): Promise<JobResponse> => {
      tried.push(nodeId)
      return await nodes[nodeId](nodeId)
    }
    const selector = new NodeSelector()
    const candidates: ProjectPeer[] = Object.keys(nodes).map((node_id) => ({ node_id, connectivity: 1, latency: 1_000, Idle: 0, cid: '' }))
    const dispatcher = new JobDispatcher({
      selfId: self,
      local: { run: async (_request: JobRequest) => await run(self) } as unknown as LocalExecutor,
      remote: { run: async (peer: PeerId) => await run(peer.toString()) },
      selector,
      network: { peers: () => candidates } as unknown as NetworkRegistry,
      log: silentLogger
    })
    return { dispatcher, tried, selector }
  }

  const job = { head: { requestId: 'r', project: 'P', model: 'M', cid: '', kind: JobKind.CHAT, contentType: 'application/json', stream: false, deadline: Date.now() + 60_000 }, body: { bytes: Buffer.from('{}') } }
  const send = async (dispatcher: JobDispatcher): Promise<JobResponse> => await dispatcher.toProject(job, new AbortController().signal, { direct: false })

  const failures: Array<[string, Behaviour]> = [
    ['model server unreachable (error head, 502)', async (id) => errorHead(id, 502, ErrorCode.MODEL, 'model server at http://127.0.0.1:9 is unreachable: ECONNREFUSED')],
    ['model server answers 500', async (id) => answer(id, 500, '{"error":"boom"}')],
    ['model server answers 503', async (id) => answer(id, 503, 'busy')],
    ['model server answers 429', async (id) => answer(id, 429, '{"error":{"message":"slow down"}}')],
    ['a 429 error head', async (id) => errorHead(id, 429, 429, 'rate limited')],
    ['a timeout before the first byte', async (id) => errorHead(id, 504, ErrorCode.TIMEOUT, 'model server did not answer in time')],
    ['the local model client throws "unreachable"', async () => { throw new AicnError(ErrorCode.MODEL, 'model server at http://127.0.0.1:9 is unreachable: ECONNREFUSED', { status: 502 }) }]
  ]

  for (const [what, failing] of failures) {
    it(`${what}: the next node answers`, async () => {
      const [bad, good] = [ids[0], ids[1]]
      // Whichever order the selector picks, every request succeeds; repeat so that the bad node comes first.
      let badTriedFirst = false
      for (let i = 0; i < 20; i++) {
        const { dispatcher, tried } = setup({ [bad]: failing, [good]: async (id) => answer(id, 200) })
        const response = await send(dispatcher)
        assert.equal(response.status, 200, what)
        assert.equal(response.nodeId, good)
        if (tried[0] === bad) {
          badTriedFirst = true
          assert.deepEqual(tried, [bad, good])
        }
      }
      assert.ok(badTriedFirst, 'the failing node was tried first at least once')
    })
  }

  it('tries at most three nodes, then reports the last failure', async () => {
    const failing: Behaviour = async (id) => errorHead(id, 502, ErrorCode.MODEL, 'unreachable')
    const { dispatcher, tried } = setup(Object.fromEntries(ids.map((id) => [id, failing])))
    const response = await send(dispatcher)
    assert.equal(tried.length, 3)
    assert.equal(new Set(tried).size, 3)
    assert.equal(response.status, 502)
    assert.equal(response.error?.code, ErrorCode.MODEL)
  })

  it('a model\'s own 4xx answer, and a bad request, are not retried', async () => {
    for (const failing of [
      async (id: string) => answer(id, 400, '{"error":{"message":"bad messages"}}'),
      async (id: string) => errorHead(id, 400, ErrorCode.PARAM, 'bad')
    ] satisfies Behaviour[]) {
      const { dispatcher, tried } = setup({ [ids[0]]: failing, [ids[1]]: failing })
      const response = await send(dispatcher)
      assert.equal(response.status, 400)
      assert.equal(tried.length, 1)
    }
    const { dispatcher, tried } = setup({ [ids[0]]: async () => { throw new AicnError(ErrorCode.PARAM, 'bad') }, [ids[1]]: async () => { throw new AicnError(ErrorCode.PARAM, 'bad') } })
    await assert.rejects(send(dispatcher), { code: ErrorCode.PARAM })
    assert.equal(tried.length, 1)
  })

  it('a node that failed cools down: the next request goes to the other node first', async () => {
    const [bad, good] = [ids[0], ids[1]]
    const { dispatcher, tried, selector } = setup({ [bad]: async (id) => errorHead(id, 502, ErrorCode.MODEL, 'unreachable'), [good]: async (id) => answer(id, 200) })
    for (let i = 0; i < 10; i++) assert.equal((await send(dispatcher)).status, 200)
    assert.ok(tried.filter((id) => id === bad).length <= 1, `the dead node was asked ${tried.filter((id) => id === bad).length} times`)
    if (tried.includes(bad)) assert.equal(selector.coolingDown(bad), true)
  })

  it('the good node cooling down after a passing failure is still tried after the dead one', async () => {
    const [dead, good] = [ids[0], ids[1]]
    const { dispatcher, tried, selector } = setup({ [dead]: async (id) => errorHead(id, 502, ErrorCode.MODEL, 'model server is unreachable: ECONNREFUSED'), [good]: async (id) => answer(id, 200) })
    selector.failed(good) // e.g. one 429 from its model a moment ago
    const response = await send(dispatcher)
    assert.equal(response.status, 200)
    assert.deepEqual(tried, [dead, good])
  })
})

describe('JobDispatcher: a model marked down elsewhere', () => {
  it('is tried once on one such node when nobody announces the model up, and 503 when none lists it', async () => {
    const down = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const tried: string[] = []
    const make = (downPeers: ProjectPeer[]): JobDispatcher => new JobDispatcher({
      selfId: 'self-node',
      local: { run: async () => { throw new Error('not local') } } as unknown as LocalExecutor,
      remote: { run: async (peer: PeerId) => { tried.push(peer.toString()); return answer(peer.toString(), 200) } },
      selector: new NodeSelector(),
      network: { peers: () => [], downPeers: () => downPeers } as unknown as NetworkRegistry,
      log: silentLogger
    })
    const job = { head: { requestId: 'r', project: 'P', model: 'M', cid: '', kind: JobKind.CHAT, contentType: 'application/json', stream: false, deadline: Date.now() + 60_000 }, body: { bytes: Buffer.from('{}') } }
    const peer = (node_id: string): ProjectPeer => ({ node_id, connectivity: 1, latency: 1_000, Idle: 0, cid: '' })
    const response = await make([peer(down), peer(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())]).toProject(job, new AbortController().signal, { direct: false })
    assert.equal(response.status, 200)
    assert.equal(tried.length, 1, 'one try only')
    await assert.rejects(make([]).toProject(job, new AbortController().signal, { direct: false }), (err: any) => err.code === ErrorCode.NO_NODE)
  })
})
