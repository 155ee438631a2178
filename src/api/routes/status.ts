// `/api/v0/node/overview`: everything `aicn status` shows on one screen (issue 15) — the node, its
// listeners, peers, the models registered here and their health (with why a server is down), jobs and
// errors in the last minute. Admin only: it shows the model servers' URLs, which other machines have no
// business knowing. (The web console's `node/status` is the open, smaller answer.)
import { ok } from '../../web/reply.ts'
import type { Route } from '../../web/route.ts'

export interface NodeStatus {
  node_id: string
  version: string
  uptime_seconds: number
  listeners: { api: string, web: string }
  peers: { connected: number, list: Array<{ peer: string, addr: string, latency: string, direction: string }> }
  view_nodes: number
  models: Array<{ project: string, model: string, cid: string, api: string, type: number, busy: number, available: boolean, reason: string }>
  last_minute: { jobs: number, errors: number }
}

/** Connections listed at most (the count is exact). */
const MAX_LISTED_PEERS = 50

export function statusRoutes (status: () => NodeStatus): Route[] {
  return [{
    path: '/api/v0/node/overview',
    methods: ['GET', 'POST'],
    access: 'admin',
    handler: async () => {
      const now = status()
      return ok({ ...now, peers: { connected: now.peers.connected, list: now.peers.list.slice(0, MAX_LISTED_PEERS) } })
    }
  }]
}
