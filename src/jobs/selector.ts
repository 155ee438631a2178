// Which node runs a job when the client names only a project and model. The Go node took the first
// of 20 nodes in peer-ID order and never retried, so jobs piled onto a few nodes and a dead one failed
// the job; it also dropped every node without a latency sample from streamed paths, and only relay
// nodes measured latency. Here every fresh candidate can be
// chosen, unknown latency only costs a little, the choice is randomised with power-of-two choices so
// that many input nodes with the same view do not all pick the same "best" node, and the caller gets
// an ordered list of up to three nodes to fall back on (nodes cooling down after failures last).
//
// The caller's loop: for each node of plan(): release = started(id); run; if it answers (first byte),
// succeeded(id) and stream the rest; if it fails before that and isRetryable(err), failed(id) and try
// the next; otherwise stop. Always release() when the job ends.
import type { ProjectPeer } from '../protocols/network.ts'
import { ErrorCode, isAicnError } from '../core/errors.ts'
import { NodeHealth } from './cooldown.ts'

/** CONNECTIVITY.LIMITED of src/protocols/network.ts, repeated so that this pure module does not load the networking code. */
const RELAY_ONLY = 4
/** Latency is in µs; 10 ms costs as much as one busy slot. */
const LATENCY_PER_POINT_US = 10_000
/** No ping sample yet: assume a nearby node (5 ms) rather than excluding it: a node nobody pinged yet must still get jobs. */
const UNKNOWN_LATENCY_US = 5_000
const IN_FLIGHT_WEIGHT = 2
const FAILURE_WEIGHT = 4

export interface SelectorOptions {
  now?: () => number
  random?: () => number
  baseCooldownMs?: number
  maxCooldownMs?: number
  maxAttempts?: number
}

export interface PlanOptions {
  /** the job needs a direct stream (streamed chat, b64 images, image edit): relay-only nodes cannot serve it */
  direct: boolean
  /** this node's ID: running locally costs no network round trip */
  self?: string
  /** nodes already tried for this job */
  exclude?: string[]
}

export class NodeSelector {
  private readonly health: NodeHealth
  private readonly random: () => number
  private readonly maxAttempts: number

  constructor (options: SelectorOptions = {}) {
    // performance.now() is monotonic: a wall-clock jump must not end or stretch a cooldown.
    const now = options.now ?? (() => performance.now())
    this.random = options.random ?? Math.random
    this.maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 3))
    this.health = new NodeHealth({
      now,
      baseCooldownMs: options.baseCooldownMs ?? 15_000,
      maxCooldownMs: options.maxCooldownMs ?? 5 * 60_000
    })
  }

  /** Up to maxAttempts distinct nodes to try, best first. */
  plan (candidates: ProjectPeer[], options: PlanOptions): ProjectPeer[] {
    const excluded = new Set(options.exclude ?? [])
    const seen = new Set<string>()
    const ready: ProjectPeer[] = []
    const cooling: ProjectPeer[] = []
    for (const peer of candidates) {
      // The first entry per node wins: the view already keeps each node's least busy model container.
      if (seen.has(peer.node_id)) continue
      seen.add(peer.node_id)
      if (excluded.has(peer.node_id)) continue
      if (options.direct && peer.node_id !== options.self && peer.connectivity === RELAY_ONLY) continue
      if (this.health.coolingDown(peer.node_id)) cooling.push(peer)
      else ready.push(peer)
    }
    const scores = new Map(ready.map((peer) => [peer.node_id, this.score(peer, options.self)]))
    const pool = [...ready]
    const picks: ProjectPeer[] = []
    while (picks.length < this.maxAttempts && pool.length > 0) {
      const index = this.twoChoices(pool, scores)
      picks.push(pool[index])
      pool.splice(index, 1)
    }
    // Nodes cooling down come last, the one that has had longest to recover first: a try on them beats
    // failing the request while fewer than maxAttempts nodes were tried (issue 13, part 9: with one
    // node's model server down and the other cooling after a passing failure, the request got the dead
    // server's 502).
    for (const peer of this.byLeastRecentFailure(cooling)) {
      if (picks.length >= this.maxAttempts) break
      picks.push(peer)
    }
    return picks
  }

  started (nodeId: string): () => void {
    return this.health.started(nodeId)
  }

  failed (nodeId: string): void {
    this.health.failed(nodeId)
  }

  succeeded (nodeId: string): void {
    this.health.succeeded(nodeId)
  }

  inFlight (nodeId: string): number {
    return this.health.inFlight(nodeId)
  }

  coolingDown (nodeId: string): boolean {
    return this.health.coolingDown(nodeId)
  }

  /** How many nodes the selector remembers state for (bounded; for tests and metrics). */
  get trackedNodes (): number {
    return this.health.size
  }

  /** Lower is better: announced busy slots + our own jobs there + distance + recent failures. */
  score (peer: ProjectPeer, self?: string): number {
    // Announcements come from other nodes: a negative or garbage busy count must not attract all traffic.
    const busy = Number.isFinite(peer.Idle) ? Math.max(0, peer.Idle) : 0
    const latencyUs = Number.isFinite(peer.latency) && peer.latency > 0 ? peer.latency : UNKNOWN_LATENCY_US
    const distance = peer.node_id === self ? 0 : latencyUs / LATENCY_PER_POINT_US
    return busy +
      IN_FLIGHT_WEIGHT * this.health.inFlight(peer.node_id) +
      distance +
      FAILURE_WEIGHT * this.health.recentFailures(peer.node_id)
  }

  /** Two distinct random candidates; the better score wins. Picking the global best instead would send
   * every input node's traffic to the same node between two heartbeats. */
  private twoChoices (pool: ProjectPeer[], scores: Map<string, number>): number {
    if (pool.length === 1) return 0
    const a = this.randomIndex(pool.length)
    let b = this.randomIndex(pool.length - 1)
    if (b >= a) b++
    const scoreA = scores.get(pool[a].node_id) ?? 0
    const scoreB = scores.get(pool[b].node_id) ?? 0
    return scoreB < scoreA ? b : a
  }

  private randomIndex (n: number): number {
    // Clamp: an injected random() that returns 1 (or more) must not index past the end.
    return Math.min(n - 1, Math.max(0, Math.floor(this.random() * n)))
  }

  private byLeastRecentFailure (peers: ProjectPeer[]): ProjectPeer[] {
    const at = (peer: ProjectPeer): number => this.health.lastFailedAt(peer.node_id) ?? -Infinity
    return [...peers].sort((a, b) => at(a) - at(b))
  }
}

/** Which failures before the first byte justify trying another node: the node or the path to it was
 * the problem (unreachable, stream broke, no answer in time, model overloaded or down). A bad request
 * (PARAM, BUFFER, model 4xx) would fail the same way anywhere, and anything not an AicnError (e.g. the
 * client going away) is not the node's fault. */
export function isRetryable (err: unknown): boolean {
  if (!isAicnError(err)) return false
  switch (err.code) {
    case ErrorCode.ROUTING:
    case ErrorCode.STREAM:
    case ErrorCode.TIMEOUT:
      return true
    case ErrorCode.MODEL:
      return err.status >= 500 || err.status === 429
    default:
      return false
  }
}
