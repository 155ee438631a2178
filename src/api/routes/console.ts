// Read-only endpoints the web console polls (README "Console"): this node's status in one answer, and the
// network as this node sees it (every node of the view and every connection, with connectivity, latency,
// busy count and when it was last heard). Nothing here changes state.
import type { LocalRegistry } from '../../registry/local.ts'
import type { NetworkView } from '../../registry/view.ts'
import { CONNECTIVITY } from '../../protocols/network.ts'
import { fromThisMachine } from '../access.ts'
import { ok } from '../../web/reply.ts'
import type { Route } from '../../web/route.ts'
// The answers' shapes, shared with the web console (console/src/).
import type { ConnectionInfo, NetworkSnapshot, NodeStatus, ViewNode } from '../../web/console-types.ts'

export interface ConsoleDeps {
  selfId: string
  version: string
  /** ms since epoch */
  startedAt: number
  role: 'input' | 'worker'
  psk: boolean
  keysRequired: boolean
  local: LocalRegistry
  view: NetworkView
  connections: () => ConnectionInfo[]
  /** smoothed ping round trip in µs, 0 when unknown */
  latencyMicros: (nodeId: string) => number
  /** a node heard within this long counts for routing */
  routingFreshMs: number
  /** why a local model is down, as its last health probe said (src/registry/health.ts) */
  healthReason?: (project: string, model: string, cid: string) => string
  now?: () => number
}

/** How many nodes `network/view` lists at most (the rest is counted in `more`). */
export const VIEW_MAX_NODES = 2000
/** heartbeat nodeType bits (src/protocols/heartbeat-codec.ts) */
const PEERS_COLLECT = 0x02

export function consoleRoutes (deps: ConsoleDeps): Route[] {
  const now = deps.now ?? Date.now
  return [
    {
      path: '/api/v0/node/status',
      methods: ['GET', 'POST'],
      handler: async (rc) => {
        const admin = fromThisMachine(rc.req)
        const status: NodeStatus = {
          peer_id: deps.selfId,
          version: deps.version,
          started: new Date(deps.startedAt).toISOString(),
          uptime_s: Math.max(0, Math.floor((now() - deps.startedAt) / 1000)),
          role: deps.role,
          psk: deps.psk,
          connections: deps.connections().length,
          keys_required: deps.keysRequired,
          admin,
          models: deps.local.projects().flatMap((p) => p.models.map((m) => ({
            project: p.project,
            model: m.model,
            type: m.type,
            cid: m.cid,
            busy: m.busy,
            available: m.available,
            // The model server's own address is this machine's business.
            ...(admin ? { api: m.api } : {}),
            reason: m.available ? '' : (deps.healthReason?.(p.project, m.model, m.cid) ?? '') || 'its server did not answer the last health check'
          })))
        }
        return ok(status)
      }
    },
    {
      path: '/api/v0/network/view',
      methods: ['GET', 'POST'],
      handler: async () => ok(networkView(deps, now()))
    }
  ]
}

function networkView (deps: ConsoleDeps, at: number): NetworkSnapshot {
  const connections = deps.connections()
  const connectivity = new Map<string, number>()
  for (const c of connections) {
    if (!c.limited) connectivity.set(c.peer, CONNECTIVITY.CONNECTED)
    else if (!connectivity.has(c.peer)) connectivity.set(c.peer, CONNECTIVITY.LIMITED)
  }
  // This node first, then the view, then peers we are connected to that sent no heartbeat (yet).
  const ids = [...new Set([deps.selfId, ...deps.view.nodes(), ...connectivity.keys()])]
  const nodes = ids.slice(0, VIEW_MAX_NODES).map((nodeId): ViewNode => {
    const entry = deps.view.get(nodeId)
    const self = nodeId === deps.selfId
    return {
      node_id: nodeId,
      self,
      role: self ? deps.role : entry === undefined ? 'unknown' : (entry.nodeType & PEERS_COLLECT) !== 0 ? 'input' : 'worker',
      connectivity: self ? CONNECTIVITY.CONNECTED : connectivity.get(nodeId) ?? CONNECTIVITY.NOT_CONNECTED,
      latency_us: self ? 0 : deps.latencyMicros(nodeId),
      busy: entry?.projects.reduce((sum, p) => sum + p.models.reduce((s, m) => s + m.busy, 0), 0) ?? 0,
      last_heard_ms: entry === undefined ? null : Math.max(0, at - entry.lastHeard),
      fresh: entry !== undefined && at - entry.lastHeard <= deps.routingFreshMs,
      version: entry?.version ?? '',
      projects: entry?.projects ?? []
    }
  })
  return {
    self: deps.selfId,
    nodes,
    more: Math.max(0, ids.length - VIEW_MAX_NODES),
    connections: connections.map((c) => ({ ...c, latency_us: deps.latencyMicros(c.peer) }))
  }
}
