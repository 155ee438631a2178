// The node-control operations behind `/api/v0` (README.md, "API"). Route handlers call
// these and never touch libp2p themselves.
import { KEEP_ALIVE } from '@libp2p/interface'
import type { Registry } from 'prom-client'
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { ConfigStore } from '../config/store.ts'
import type { HostInfo, HostInfoCollector } from '../hostinfo/index.ts'
import type { LatencyTracker } from '../p2p/latency/index.ts'
import { identifiedPeerInfo, localPeerInfo, type IdentifiedPeerComponents, type LocalPeerComponents, type PeerInfo } from '../p2p/peer-info.ts'
import type { PubSub } from '../p2p/pubsub.ts'
import type { Rendezvous } from '../p2p/rendezvous/index.ts'
import { connectTo, disconnectFrom, forgetTags, parseNodeAddr, swarmAddrs, swarmPeers, USER_CONNECT_TAG, type SwarmComponents, type SwarmPeer } from '../p2p/swarm.ts'
import { explainDialError, type PskMismatches } from '../p2p/psk-watch.ts'
import { parsePeerId } from '../p2p/peer-id.ts'
import type { QueryRequester } from '../protocols/query-requester.ts'
import { queryHostInfo, queryPeerInfo } from '../protocols/queries.ts'
import type { ControlOperations } from '../api/routes/control.ts'
import type { RemoteCall } from '../api/routes/remote-call.ts'

const RENDEZVOUS_TIMEOUT_MS = 10_000

/** What node control takes from libp2p (a node satisfies it): its own PeerInfo, the identified peers,
 * the swarm operations and pubsub's subscribers. */
export type ControlComponents = LocalPeerComponents & IdentifiedPeerComponents & SwarmComponents & {
  services: { pubsub: Pick<PubSub, 'getSubscribers'> }
}

export interface ControlDeps {
  host: ControlComponents
  /** asks other nodes, with whichever protocol each speaks */
  queries: QueryRequester
  config: ConfigStore
  hostInfo: HostInfoCollector
  latency: Pick<LatencyTracker, 'latencyMs'>
  rendezvous?: Pick<Rendezvous, 'findPeers'>
  metrics: Registry
  topic: string
  /** recent peers with another pre-shared key, to name it in a failed connect */
  pskMismatches?: PskMismatches
}

export class NodeControl implements ControlOperations {
  private readonly deps: ControlDeps

  constructor (deps: ControlDeps) {
    this.deps = deps
  }

  private readonly explain = (addr: string, message: string): string => explainDialError(addr, message, this.deps.pskMismatches)

  get peerId (): string {
    return this.deps.host.peerId.toString()
  }

  async id (): Promise<PeerInfo> {
    return await localPeerInfo(this.deps.host)
  }

  async peer (nodeId: string, call: RemoteCall): Promise<PeerInfo> {
    const peerId = parsePeerId(nodeId)
    if (peerId.equals(this.deps.host.peerId)) return await this.id()
    const identified = await identifiedPeerInfo(this.deps.host, peerId)
    if (identified !== undefined) return identified
    return await queryPeerInfo(this.deps.queries, peerId, call)
  }

  async hostInfo (nodeId: string, call: RemoteCall): Promise<HostInfo> {
    const peerId = parsePeerId(nodeId)
    if (peerId.equals(this.deps.host.peerId)) return await this.deps.hostInfo.collect()
    return await queryHostInfo(this.deps.queries, peerId, call)
  }

  swarmPeers (): SwarmPeer[] {
    return swarmPeers(this.deps.host, this.deps.latency)
  }

  async swarmAddrs (): Promise<Array<{ peer: string, addrs: string[] }>> {
    return await swarmAddrs(this.deps.host)
  }

  async swarmConnect (nodeAddr: string): Promise<void> {
    await connectTo(this.deps.host, parseNodeAddr(nodeAddr), { [USER_CONNECT_TAG]: 100 }, this.explain)
  }

  async swarmDisconnect (nodeAddr: string): Promise<void> {
    await disconnectFrom(this.deps.host, parseNodeAddr(nodeAddr))
  }

  pubsubPeers (): string[] {
    return this.deps.host.services.pubsub.getSubscribers(this.deps.topic).map((p) => p.toString())
  }

  async rendezvousPeers (signal: AbortSignal): Promise<string[]> {
    const rendezvous = this.deps.rendezvous
    if (rendezvous === undefined) throw new AicnError(ErrorCode.UNSUPPORTED, 'rendezvous needs the DHT, which Routing.Type "none" turns off', { status: 501 })
    const timeout = AbortSignal.timeout(RENDEZVOUS_TIMEOUT_MS)
    try {
      return await rendezvous.findPeers(AbortSignal.any([signal, timeout]))
    } catch (err) {
      if (timeout.aborted) throw new AicnError(ErrorCode.TIMEOUT, 'rendezvous lookup timed out')
      throw new AicnError(ErrorCode.ROUTING, `rendezvous lookup failed: ${(err as Error).message}`, { status: 502 })
    }
  }

  bootstrapList (): string[] {
    return [...this.deps.config.current.Bootstrap]
  }

  /** Connects to the peer, keeps it connected, and saves it in the config's bootstrap list. */
  async bootstrapAdd (nodeAddr: string): Promise<void> {
    const target = parseNodeAddr(nodeAddr)
    await connectTo(this.deps.host, target, { [USER_CONNECT_TAG]: 100, [KEEP_ALIVE]: 1 }, this.explain)
    await this.saveBootstrap((list) => list.includes(nodeAddr) ? list : [...list, nodeAddr])
  }

  /** Removes the address from the bootstrap list and closes the connection to that peer. */
  async bootstrapRm (nodeAddr: string): Promise<void> {
    const target = parseNodeAddr(nodeAddr)
    await forgetTags(this.deps.host, target.peerId)
    if (this.deps.host.getConnections(target.peerId).length > 0) await this.deps.host.hangUp(target.peerId)
    await this.saveBootstrap((list) => list.filter((a) => a !== nodeAddr))
  }

  async metrics (): Promise<{ body: string, contentType: string }> {
    return { body: await this.deps.metrics.metrics(), contentType: this.deps.metrics.contentType }
  }

  private async saveBootstrap (change: (list: string[]) => string[]): Promise<void> {
    try {
      await this.deps.config.update((draft) => { draft.Bootstrap = change(draft.Bootstrap) })
    } catch (err) {
      throw new AicnError(ErrorCode.INTERNAL, `could not save the config: ${(err as Error).message}`)
    }
  }

}
