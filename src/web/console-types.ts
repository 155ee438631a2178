// The answers of the console's endpoints (`node/status`, `network/view`; src/api/routes/console.ts builds
// them) as the web console reads them (console/src/). One definition for both sides: this file imports
// nothing, so the console's own build (console/tsconfig.json) compiles it too, and both import it with
// `import type` only (nothing of it exists at run time).

/** One model of this node, in `node/status`. */
export interface LocalModel {
  project: string
  model: string
  type: number
  cid: string
  busy: number
  available: boolean
  /** the model server's address: only to a request from this machine */
  api?: string
  /** why it is down, '' while it is up */
  reason: string
}

/** `GET /api/v0/node/status` */
export interface NodeStatus {
  peer_id: string
  version: string
  started: string
  uptime_s: number
  role: 'input' | 'worker'
  psk: boolean
  connections: number
  keys_required: boolean
  /** the request came from this machine */
  admin: boolean
  models: LocalModel[]
}

/** One model a node announces under a project (src/registry/view-types.ts holds the view's own). */
export interface ViewModel { model: string, cid: string, type: number, busy: number, available: boolean }
export interface ViewProject { project: string, models: ViewModel[] }

/** One node of `network/view`. */
export interface ViewNode {
  node_id: string
  self: boolean
  role: 'input' | 'worker' | 'unknown'
  connectivity: number
  latency_us: number
  busy: number
  /** ms since the last heartbeat; null when never heard (a connection without heartbeats) */
  last_heard_ms: number | null
  fresh: boolean
  version: string
  projects: ViewProject[]
}

/** One connection of this node. */
export interface ConnectionInfo { peer: string, addr: string, direction: 'inbound' | 'outbound', limited: boolean }

/** A connection in `network/view`, with the smoothed ping round trip (µs, 0 when unknown). */
export interface Connection extends ConnectionInfo { latency_us: number }

/** `GET /api/v0/network/view` */
export interface NetworkSnapshot { self: string, nodes: ViewNode[], more: number, connections: Connection[] }
