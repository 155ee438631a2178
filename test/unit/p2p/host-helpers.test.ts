// The helpers that read or change the host for the API (src/p2p/swarm.ts, src/p2p/peer-info.ts,
// src/protocols/network.ts, src/node/control.ts) take only the parts of libp2p they use, so they run here
// on stubs: no node, no sockets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Connection, PeerId } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { connectTo, disconnectFrom, swarmAddrs, swarmPeers, USER_CONNECT_TAG } from '../../../src/p2p/swarm.ts'
import { identifiedPeerInfo, localPeerInfo } from '../../../src/p2p/peer-info.ts'
import { CONNECTIVITY, NetworkRegistry } from '../../../src/protocols/network.ts'
import { NodeControl, type ControlComponents } from '../../../src/node/control.ts'
import type { NetworkView } from '../../../src/registry/view.ts'
import type { LocalRegistry } from '../../../src/registry/local.ts'
import type { QueryRequester } from '../../../src/protocols/query-requester.ts'

async function peerId (): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

const encoder = new TextEncoder()

/** A host stub: connections by peer, a peer store of maps, dials and hang-ups recorded. */
async function stubHost (): Promise<{ host: ControlComponents, self: PeerId, connected: Map<string, Connection[]>, merged: Array<[string, unknown]>, dialled: string[], hungUp: string[] }> {
  const self = await peerId()
  const connected = new Map<string, Connection[]>()
  const merged: Array<[string, unknown]> = []
  const dialled: string[] = []
  const hungUp: string[] = []
  const peers = new Map<string, { protocols: string[], metadata: Map<string, Uint8Array>, addresses: Array<{ multiaddr: ReturnType<typeof multiaddr> }> }>()
  peers.set(self.toString(), { protocols: [], metadata: new Map([['AgentVersion', encoder.encode('aicn/test')], ['ProtocolVersion', encoder.encode('aicn/1')]]), addresses: [] })
  const host = {
    peerId: self,
    getConnections: (peer?: PeerId) => peer === undefined ? [...connected.values()].flat() : connected.get(peer.toString()) ?? [],
    dial: async (addr: ReturnType<typeof multiaddr>) => { dialled.push(addr.toString()) },
    hangUp: async (peer: PeerId) => { hungUp.push(peer.toString()); connected.delete(peer.toString()) },
    getMultiaddrs: () => [multiaddr(`/ip4/127.0.0.1/tcp/4001/p2p/${self.toString()}`)],
    getProtocols: () => ['/b/1', '/a/1'],
    peerStore: {
      get: async (peer: PeerId) => {
        const found = peers.get(peer.toString())
        if (found === undefined) throw new Error('not found')
        return { id: peer, ...found }
      },
      has: async (peer: PeerId) => peers.has(peer.toString()),
      merge: async (peer: PeerId, data: unknown) => { merged.push([peer.toString(), data]) },
      all: async () => [...peers.entries()].map(([id, p]) => ({ id: { toString: () => id }, ...p }))
    },
    services: { pubsub: { getSubscribers: () => [self] } }
  }
  return { host: host as unknown as ControlComponents, self, connected, merged, dialled, hungUp }
}

function connection (remotePeer: PeerId, options: { limited?: boolean, direction?: 'inbound' | 'outbound' } = {}): Connection {
  return { remotePeer, remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/4002'), direction: options.direction ?? 'outbound', limits: options.limited === true ? {} : undefined } as unknown as Connection
}

test('swarm helpers: connect dials only when not connected and tags the peer; disconnect drops the tags first; peers and addresses listed', async () => {
  const { host, self, connected, merged, dialled, hungUp } = await stubHost()
  const other = await peerId()
  const target = { addr: multiaddr(`/ip4/127.0.0.1/tcp/4002/p2p/${other.toString()}`), peerId: other }
  await assert.rejects(connectTo(host, { addr: target.addr, peerId: self }, {}), /cannot connect to this node itself/)
  await connectTo(host, target, { [USER_CONNECT_TAG]: 100 })
  assert.deepEqual(dialled, [target.addr.toString()])
  connected.set(other.toString(), [connection(other, { direction: 'inbound' })])
  await connectTo(host, target, { [USER_CONNECT_TAG]: 100 })
  assert.equal(dialled.length, 1, 'a connected peer is not dialled again')
  assert.equal(merged.length, 2)
  assert.deepEqual(swarmPeers(host, { latencyMs: () => 12 }).map((p) => [p.peer, p.direction, p.latency]), [[other.toString(), 'Inbound', '12ms']])
  assert.deepEqual((await swarmAddrs(host)).map((p) => p.peer), [self.toString()])
  await disconnectFrom(host, target)
  assert.deepEqual(hungUp, [other.toString()])
  await assert.rejects(disconnectFrom(host, target), /not connected/)
})

test('peer info: our own from the peer store and the host; a peer only once connected and identified', async () => {
  const { host, self, connected } = await stubHost()
  assert.deepEqual(await localPeerInfo(host), {
    peer_id: self.toString(),
    protocol_version: 'aicn/1',
    agent_version: 'aicn/test',
    addresses: ['/ip4/127.0.0.1/tcp/4001'],
    protocols: ['/a/1', '/b/1']
  })
  const stranger = await peerId()
  assert.equal(await identifiedPeerInfo(host, stranger), undefined, 'not connected')
  connected.set(stranger.toString(), [connection(stranger)])
  assert.equal(await identifiedPeerInfo(host, stranger), undefined, 'not in the peer store')
})

test('network registry: ranks this node first, then connected, relayed, unknown; node control lists pubsub peers and asks a peer not identified', async () => {
  const { host, self, connected } = await stubHost()
  const [direct, relayed, far] = await Promise.all([peerId(), peerId(), peerId()])
  connected.set(direct.toString(), [connection(direct)])
  connected.set(relayed.toString(), [connection(relayed, { limited: true })])
  const network = new NetworkRegistry({
    host,
    view: {} as NetworkView,
    local: {} as LocalRegistry,
    rpc: { handle: () => {} },
    queries: {} as QueryRequester,
    latency: { latencyMs: (id) => id === direct.toString() ? 2 : undefined }
  })
  const candidate = (id: PeerId): any => ({ nodeId: id.toString(), busy: 0, cid: '' })
  const ranked = network.rank([far, relayed, direct, self].map(candidate))
  assert.deepEqual(ranked.map((p) => [p.node_id, p.connectivity]), [
    [self.toString(), CONNECTIVITY.CONNECTED],
    [direct.toString(), CONNECTIVITY.CONNECTED],
    [relayed.toString(), CONNECTIVITY.LIMITED],
    [far.toString(), CONNECTIVITY.NOT_CONNECTED]
  ])
  assert.equal(ranked[1]!.latency, 2000)

  const asked: string[] = []
  const control = new NodeControl({
    host,
    queries: { request: async (peer: PeerId) => { asked.push(peer.toString()); throw new Error('asked') } } as unknown as QueryRequester,
    config: { current: { Bootstrap: [] }, update: async () => {} } as any,
    hostInfo: {} as any,
    latency: { latencyMs: () => undefined },
    metrics: {} as any,
    topic: 'T'
  })
  assert.deepEqual(control.pubsubPeers(), [self.toString()])
  assert.equal((await control.id()).peer_id, self.toString())
  await assert.rejects(control.peer(far.toString(), { signal: new AbortController().signal }))
  assert.deepEqual(asked, [far.toString()], 'a peer not identified is asked over the network')
  await control.bootstrapRm(`/ip4/127.0.0.1/tcp/4002/p2p/${direct.toString()}`)
  assert.equal(connected.has(direct.toString()), false, 'bootstrap rm closes the connection')
})
