// The registry side of `/api/v0`: this node's registrations, the network's view (who serves which
// project and model, how busy, how far), and any node's registrations asked over the RPC protocol.
import type { Connection, PeerId } from '@libp2p/interface'
import { protocol } from '../proto/index.ts'
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { LatencyTracker } from '../p2p/latency/index.ts'
import type { RpcCallOptions, RpcService } from './rpc/index.ts'
import { parsePeerId } from '../p2p/peer-id.ts'
import type { QueryRequester } from './query-requester.ts'
import type { LocalRegistry } from '../registry/local.ts'
import type { NetworkView } from '../registry/view.ts'
import type { Candidate } from '../registry/view-types.ts'

/** libp2p connectedness as the Go node reports it: 0 not connected, 1 connected, 4 relayed only. */
export const CONNECTIVITY = { NOT_CONNECTED: 0, CONNECTED: 1, LIMITED: 4 } as const

/** A node that serves a model, as `ai/projects/peers` shows it (README.md, "Models and projects"; Idle and cid as the Go node adds them). */
export interface ProjectPeer { node_id: string, connectivity: number, latency: number, Idle: number, cid: string }

/** A node's registrations as `ai/project/peer` shows them (README.md, "Models and projects"). */
export interface NodeProjects { project: string, models: string[] }

/** What the network registry takes from libp2p (a node satisfies it): our id and the connections. */
export interface NetworkComponents {
  peerId: PeerId
  getConnections: () => Array<Pick<Connection, 'remotePeer' | 'limits'>>
}

export const PEERS_DEFAULT = 20
export const PEERS_MAX = 100
export const LIST_DEFAULT = 100

export class NetworkRegistry {
  private readonly host: NetworkComponents
  private readonly view: NetworkView
  private readonly local: LocalRegistry
  private readonly queries: QueryRequester
  private readonly latency: Pick<LatencyTracker, 'latencyMs'>

  constructor (deps: { host: NetworkComponents, view: NetworkView, local: LocalRegistry, rpc: Pick<RpcService, 'handle'>, queries: QueryRequester, latency: Pick<LatencyTracker, 'latencyMs'> }) {
    this.host = deps.host
    this.view = deps.view
    this.local = deps.local
    this.queries = deps.queries
    this.latency = deps.latency
    deps.rpc.handle(protocol.MessageType.AI_PROJECT, async () => this.encodeLocalProjects())
  }

  nodes (): string[] {
    return this.view.nodes()
  }

  projects (limit: number): string[] {
    return this.view.projects(limit)
  }

  models (project: string, limit: number): string[] {
    return this.view.models(project, limit)
  }

  /** Nodes that serve the model (of the given type, when given) and count for routing, best first:
   * connected, least busy, nearest. */
  peers (project: string, model: string, limit: number, type?: number): ProjectPeer[] {
    const candidates = this.view.candidates(project, model)
    return this.rank(type === undefined ? candidates : candidates.filter((c) => c.type === type)).slice(0, limit)
  }

  /** Nodes whose copy of the model is marked down, ordered as peers() orders; for one last try. */
  downPeers (project: string, model: string, limit: number): ProjectPeer[] {
    return this.rank(this.view.downCandidates(project, model)).slice(0, limit)
  }

  /** Candidates ordered for routing; callers pick from the front. */
  rank (candidates: Candidate[]): ProjectPeer[] {
    const connectivity = this.connectivityByNode()
    const self = this.host.peerId.toString()
    const peers = candidates.map((c) => ({
      node_id: c.nodeId,
      connectivity: c.nodeId === self ? CONNECTIVITY.CONNECTED : connectivity.get(c.nodeId) ?? CONNECTIVITY.NOT_CONNECTED,
      latency: this.latencyMicros(c.nodeId),
      Idle: c.busy,
      cid: c.cid
    }))
    const connectedFirst = (p: ProjectPeer): number => p.node_id === this.host.peerId.toString() ? 0 : p.connectivity === CONNECTIVITY.CONNECTED ? 1 : p.connectivity === CONNECTIVITY.LIMITED ? 2 : 3
    const unknownLast = (latency: number): number => latency === 0 ? Number.MAX_SAFE_INTEGER : latency
    return peers.sort((a, b) => connectedFirst(a) - connectedFirst(b) || a.Idle - b.Idle || unknownLast(a.latency) - unknownLast(b.latency) || a.node_id.localeCompare(b.node_id))
  }

  /** Connectedness of every connected node, from one pass over the connections (parsing each
   * candidate's peer ID instead cost 0.16 ms apiece, 150 ms for a model served by 900 nodes). */
  private connectivityByNode (): Map<string, number> {
    const out = new Map<string, number>()
    for (const connection of this.host.getConnections()) {
      const id = connection.remotePeer.toString()
      if (connection.limits === undefined) out.set(id, CONNECTIVITY.CONNECTED)
      else if (!out.has(id)) out.set(id, CONNECTIVITY.LIMITED)
    }
    return out
  }

  /** Smoothed ping round trip in microseconds; 0 when unknown (and for this node). */
  latencyMicros (nodeId: string): number {
    const ms = this.latency.latencyMs(nodeId)
    return ms === undefined ? 0 : Math.max(1, Math.round(ms * 1000))
  }

  /** Any node's registrations: this node's from the registry, others' asked over the RPC protocol. */
  async projectsOf (nodeId: string, call: RpcCallOptions): Promise<NodeProjects[]> {
    const peerId = parsePeerId(nodeId)
    if (peerId.equals(this.host.peerId)) return this.local.projects().map((p) => ({ project: p.project, models: p.models.map((m) => m.model) }))
    const res = await this.registrationsOf(peerId, call)
    return (res.projects ?? []).map((p) => ({ project: p.project ?? '', models: [...new Set((p.models ?? []).map((m) => m.model ?? ''))] }))
  }

  /** Another node's registrations as it answers an AI_PROJECT query (over whichever protocol it speaks). */
  async registrationsOf (peerId: PeerId, call: RpcCallOptions): Promise<protocol.AIProjectResponse.$Properties> {
    const body = await this.queries.request(peerId, protocol.MessageType.AI_PROJECT, protocol.AIProjectBody.encode({ req: {} }).finish(), call)
    let res: protocol.AIProjectResponse.$Properties | null | undefined
    try {
      res = protocol.AIProjectBody.decode(body).res
    } catch (err) {
      throw new AicnError(ErrorCode.PROTOBUF, `malformed answer from ${peerId.toString()}: ${(err as Error).message}`)
    }
    if (res == null) throw new AicnError(ErrorCode.PROTOBUF, `node ${peerId.toString()} sent no projects`)
    return res
  }

  /** This node's registrations as an AIProjectResponse (the answer to AI_PROJECT queries). */
  localProjects (): protocol.AIProjectResponse.$Properties {
    return {
      projects: this.local.projects().map((p) => ({
        project: p.project,
        // Other nodes never need a model server's internal URL.
        models: p.models.map((m) => ({ model: m.model, api: '', type: m.type, idle: m.busy, cid: m.cid, available: m.available }))
      }))
    }
  }

  private encodeLocalProjects (): Uint8Array {
    return protocol.AIProjectBody.encode({ res: this.localProjects() }).finish()
  }
}
