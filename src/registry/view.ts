// The network's view: which node serves which project and model, built from heartbeats (docs/protocols.md,
// "Heartbeats"). The Go node answers every query by scanning its whole peers_collect.db; here
// every query goes through secondary indexes kept up to date on each update, so a request costs the
// nodes that serve the asked model, not the size of the network.
//
//   records:  node id → its last heartbeat (cleaned) + what it contributes to the indexes
//   index:    project → { nodes serving it, model → { node → its least busy available copy } }
//
// Each node set also tracks the newest lastHeard among its members (NodeSet), so "is this project or
// model still announced by anyone recent?" is O(1) amortised instead of a walk over its nodes.
import { silentLogger, type Logger } from '../core/logger.ts'
import { ViewStore } from './view-store.ts'
import { sanitizeEntry, type Candidate, type NodeEntry, type SanitizeResult } from './view-types.ts'
import { MAX_INTERVAL_MS, routingWindowMs } from './rhythm.ts'

export interface NetworkViewOptions {
  /** LevelDB folder; absent → memory only */
  path?: string
  /** how long an entry without `intervalMs` counts for routing after it was heard; an entry with one
   * counts for three of its intervals (src/registry/rhythm.ts) */
  routingFreshMs: number
  /** shown in lists while heard within this; default 12 h (the Go node's window) */
  listFreshMs?: number
  /** deleted after this; default 24 h */
  expireMs?: number
  /** injectable clock for tests; default Date.now */
  now?: () => number
  log?: Logger
}

const HOUR = 3600_000
/** How many malformed database keys a warning names, so a corrupt database cannot flood the log. */
const LOGGED_EXAMPLES = 5
/** Nodes the view holds at most (issue 18's input node serves 1,000 workers; ten times that is room
 * for a large network, and the bound a swarm of fake identities meets). */
export const MAX_VIEW_NODES = 10_000

/** A node's least busy available copy of a model. */
interface Offer { cid: string, type: number, busy: number }
interface Heard { lastHeard: number }
/** `offer` is undefined when the node lists the model but no copy of it is available; the node counts for
 * routing until `routableUntil` (its last heartbeat + three of its own intervals). */
interface ModelMember extends Heard { offer?: Offer, routableUntil: number }

/** What one node contributes to the indexes: project → model → its best available copy. */
type Digest = Map<string, Map<string, Offer | undefined>>
interface NodeRecord { entry: NodeEntry, digest: Digest }

interface ProjectIndex {
  nodes: NodeSet<Heard>
  models: Map<string, NodeSet<ModelMember>>
  /** model names in order; rebuilt only after a model name appears or disappears */
  sortedModels?: string[]
}

/**
 * Nodes under one index key, with the newest lastHeard among them. The maximum is kept exact on the
 * common path (a heartbeat never makes a node older); only when the node holding it leaves or gets
 * older is it marked stale and recomputed — lazily, at the next query, in O(members).
 * Invariant: `newest` ≥ every member's lastHeard, and equals the maximum when not stale.
 */
class NodeSet<M extends Heard> {
  readonly members = new Map<string, M>()
  private newest = -Infinity
  private stale = false

  set (nodeId: string, member: M): void {
    const previous = this.members.get(nodeId)
    if (previous !== undefined && previous.lastHeard >= this.newest) this.stale = true
    this.members.set(nodeId, member)
    // Reaching the upper bound means this member is the maximum, whatever left before.
    if (member.lastHeard >= this.newest) {
      this.newest = member.lastHeard
      this.stale = false
    }
  }

  delete (nodeId: string): void {
    const previous = this.members.get(nodeId)
    if (previous === undefined) return
    this.members.delete(nodeId)
    if (this.members.size === 0) {
      this.newest = -Infinity
      this.stale = false
    } else if (previous.lastHeard >= this.newest) {
      this.stale = true
    }
  }

  newestHeard (): number {
    if (this.stale) {
      this.newest = -Infinity
      for (const member of this.members.values()) this.newest = Math.max(this.newest, member.lastHeard)
      this.stale = false
    }
    return this.newest
  }
}

export class NetworkView {
  private readonly routingFreshMs: number
  /** the longest any entry can count for routing: a bound for the early exit in candidates() */
  private readonly longestRoutingMs: number
  private readonly listFreshMs: number
  private readonly expireMs: number
  private readonly now: () => number
  private readonly log: Logger
  private readonly store?: ViewStore
  private readonly records = new Map<string, NodeRecord>()
  private readonly index = new Map<string, ProjectIndex>()
  /** project names in order; rebuilt only after a project name appears or disappears */
  private sortedProjects?: string[]
  /** node ids in order; rebuilt only after a node appears or disappears, not on every heartbeat */
  private sortedNodes?: string[]
  /** nodes a direct witness saw go away (see liveness.ts): left out of routing until heard again */
  private readonly unreachable = new Set<string>()

  constructor (options: NetworkViewOptions) {
    this.routingFreshMs = positive(options.routingFreshMs, 'routingFreshMs')
    this.longestRoutingMs = Math.max(this.routingFreshMs, routingWindowMs(MAX_INTERVAL_MS))
    this.listFreshMs = positive(options.listFreshMs ?? 12 * HOUR, 'listFreshMs')
    this.expireMs = positive(options.expireMs ?? 24 * HOUR, 'expireMs')
    this.now = options.now ?? Date.now
    this.log = options.log ?? silentLogger
    if (options.path !== undefined) this.store = new ViewStore(options.path, this.log)
  }

  /**
   * Loads the persisted entries (a warm view after a restart). Expired and malformed records are
   * skipped and deleted from the disk. Heartbeats received before this finished win over the disk.
   */
  async open (): Promise<void> {
    if (this.store === undefined) return
    const records = await this.store.open()
    // Synchronous from here on: the store writes nothing before a later macrotask, so anything
    // updated or removed while the database was opening is still pending and must not be overwritten.
    const cutoff = this.now() - this.expireMs
    let loaded = 0
    let expired = 0
    const malformed: Array<{ key: string, reason: string }> = []
    for (const { key, value } of records) {
      if (this.store.isPending(key)) continue
      const { entry, reason } = sanitizeEntry(value)
      if (entry === undefined || entry.nodeId !== key) {
        malformed.push({ key: key.slice(0, 64), reason: reason ?? 'key is not the node id' })
        this.store.del(key)
      } else if (entry.lastHeard < cutoff) {
        expired++
        this.store.del(key)
      } else {
        this.apply(entry)
        loaded++
      }
    }
    if (malformed.length > 0) {
      this.log.warn({ count: malformed.length, examples: malformed.slice(0, LOGGED_EXAMPLES) }, 'skipped malformed network view records')
    }
    this.log.debug({ loaded, expired }, 'network view loaded')
  }

  /** Writes what is pending and closes the database; the view itself stays usable in memory. */
  async close (): Promise<void> {
    await this.store?.close()
  }

  /** Replaces the node's entry (a heartbeat). Malformed input is cleaned or ignored, never thrown. */
  update (entry: NodeEntry): void {
    let result: SanitizeResult
    try {
      result = sanitizeEntry(entry)
    } catch (err) {
      result = { reason: (err as Error).message, dropped: 0 }
    }
    const clean = result.entry
    if (clean === undefined) {
      this.log.warn({ reason: result.reason }, 'ignored a malformed network view entry')
      return
    }
    if (result.dropped > 0) this.log.debug({ nodeId: clean.nodeId, dropped: result.dropped }, 'dropped malformed or excess parts of a heartbeat')
    if (!this.records.has(clean.nodeId) && this.records.size >= MAX_VIEW_NODES) this.evictLeastRecent()
    this.apply(clean)
    this.unreachable.delete(clean.nodeId)
    this.store?.put(clean)
  }

  /** A full view makes room by forgetting the node heard longest ago: many identities can fill the view,
   * but not grow it, and nodes that keep heartbeating are never the ones forgotten. */
  private evictLeastRecent (): void {
    let oldest: string | undefined
    let oldestHeard = Infinity
    for (const [nodeId, record] of this.records) {
      if (record.entry.lastHeard < oldestHeard) {
        oldest = nodeId
        oldestHeard = record.entry.lastHeard
      }
    }
    if (oldest !== undefined) this.remove(oldest)
  }

  /** Leaves the node out of routing until its next heartbeat or markReachable (it is still listed). */
  markUnreachable (nodeId: string): void {
    if (this.records.has(nodeId)) this.unreachable.add(nodeId)
  }

  markReachable (nodeId: string): void {
    this.unreachable.delete(nodeId)
  }

  has (nodeId: string): boolean {
    return this.records.has(nodeId)
  }

  /** A node that left gracefully: gone from every list at once, and from the disk. */
  remove (nodeId: string): void {
    if (typeof nodeId !== 'string' || nodeId === '') return
    this.drop(nodeId)
    this.store?.del(nodeId)
  }

  /** A copy of the node's entry, whatever its age (callers cannot disturb the indexes through it). */
  get (nodeId: string): NodeEntry | undefined {
    const record = this.records.get(nodeId)
    return record === undefined ? undefined : structuredClone(record.entry)
  }

  /** Node ids heard within listFreshMs, sorted. O(N): this is the full list (sorting is cached). */
  nodes (): string[] {
    const cutoff = this.now() - this.listFreshMs
    this.sortedNodes ??= [...this.records.keys()].sort()
    return this.sortedNodes.filter((nodeId) => this.records.get(nodeId)!.entry.lastHeard >= cutoff)
  }

  /**
   * Distinct project names announced within listFreshMs, sorted, at most `limit` (≤ 0 → none).
   * O(P) over the distinct project names (the sorted list is cached until a name appears or
   * disappears); each freshness check is O(1) amortised, never a walk over the network's nodes.
   */
  projects (limit: number): string[] {
    if (!(limit > 0)) return []
    const cutoff = this.now() - this.listFreshMs
    this.sortedProjects ??= [...this.index.keys()].sort()
    const out: string[] = []
    for (const project of this.sortedProjects) {
      if (out.length >= limit) break
      if (this.index.get(project)!.nodes.newestHeard() >= cutoff) out.push(project)
    }
    return out
  }

  /**
   * Distinct model names of the project announced within listFreshMs — unavailable ones too, they are
   * still registered — sorted, at most `limit`. O(M) over the project's model names, as projects().
   */
  models (project: string, limit: number): string[] {
    const index = this.index.get(project)
    if (index === undefined || !(limit > 0)) return []
    const cutoff = this.now() - this.listFreshMs
    index.sortedModels ??= [...index.models.keys()].sort()
    const out: string[] = []
    for (const model of index.sortedModels) {
      if (out.length >= limit) break
      if (index.models.get(model)!.newestHeard() >= cutoff) out.push(model)
    }
    return out
  }

  /**
   * Nodes heard within three of their own heartbeat intervals with an available copy of the model, one
   * per node: its least busy copy (ties: smallest cid), chosen when the heartbeat arrived. O(nodes
   * listing that model). Unordered: ranking (connectivity, latency) is the caller's business.
   */
  /** Nodes that count for routing and list the model but announce no available copy of it (their model
   * server was marked down): a job that finds nobody else tries one of them once (issue 15). Type and cid
   * are unknown for such a copy (0 and ''). */
  downCandidates (project: string, model: string): Candidate[] {
    const set = this.index.get(project)?.models.get(model)
    if (set === undefined) return []
    const now = this.now()
    const out: Candidate[] = []
    for (const [nodeId, { lastHeard, offer, routableUntil }] of set.members) {
      if (offer === undefined && routableUntil >= now && !this.unreachable.has(nodeId)) out.push({ nodeId, cid: '', type: 0, busy: 0, lastHeard })
    }
    return out
  }

  candidates (project: string, model: string): Candidate[] {
    const set = this.index.get(project)?.models.get(model)
    if (set === undefined) return []
    const now = this.now()
    if (set.newestHeard() < now - this.longestRoutingMs) return []
    const out: Candidate[] = []
    for (const [nodeId, { lastHeard, offer, routableUntil }] of set.members) {
      if (offer !== undefined && routableUntil >= now && !this.unreachable.has(nodeId)) out.push({ nodeId, cid: offer.cid, type: offer.type, busy: offer.busy, lastHeard })
    }
    return out
  }

  /** When the node was last heard and the interval it is held to, for learning its rhythm (rhythm.ts). */
  heard (nodeId: string): { lastHeard: number, intervalMs?: number } | undefined {
    const entry = this.records.get(nodeId)?.entry
    return entry === undefined ? undefined : { lastHeard: entry.lastHeard, intervalMs: entry.intervalMs }
  }

  /** Deletes entries older than expireMs from memory and disk; returns how many. O(N). */
  prune (): number {
    const cutoff = this.now() - this.expireMs
    let pruned = 0
    for (const [nodeId, record] of this.records) {
      if (record.entry.lastHeard >= cutoff) continue
      this.drop(nodeId)
      this.store?.del(nodeId)
      pruned++
    }
    return pruned
  }

  /** Every entry held, fresh or not (until pruned). */
  size (): number {
    return this.records.size
  }

  /** Puts a clean entry in place of the node's previous one, touching only the index keys that changed. */
  private apply (entry: NodeEntry): void {
    const nodeId = entry.nodeId
    const previous = this.records.get(nodeId)?.digest
    const digest = digestOf(entry)
    const heard: Heard = { lastHeard: entry.lastHeard }
    const routableUntil = entry.lastHeard + (entry.intervalMs === undefined ? this.routingFreshMs : routingWindowMs(entry.intervalMs))
    for (const [project, models] of digest) {
      const index = this.projectIndex(project)
      index.nodes.set(nodeId, heard)
      for (const [model, offer] of models) this.modelSet(index, model).set(nodeId, { lastHeard: entry.lastHeard, offer, routableUntil })
      const before = previous?.get(project)
      if (before !== undefined) for (const model of before.keys()) if (!models.has(model)) this.leaveModel(index, model, nodeId)
    }
    if (previous === undefined) {
      this.sortedNodes = undefined // a new node
    } else {
      for (const [project, models] of previous) if (!digest.has(project)) this.leaveProject(project, models.keys(), nodeId)
    }
    this.records.set(nodeId, { entry, digest })
  }

  /** Removes the node from memory and every index. */
  private drop (nodeId: string): void {
    const record = this.records.get(nodeId)
    if (record === undefined) return
    for (const [project, models] of record.digest) this.leaveProject(project, models.keys(), nodeId)
    this.records.delete(nodeId)
    this.unreachable.delete(nodeId)
    this.sortedNodes = undefined
  }

  private projectIndex (project: string): ProjectIndex {
    let index = this.index.get(project)
    if (index === undefined) {
      index = { nodes: new NodeSet(), models: new Map() }
      this.index.set(project, index)
      this.sortedProjects = undefined
    }
    return index
  }

  private modelSet (index: ProjectIndex, model: string): NodeSet<ModelMember> {
    let set = index.models.get(model)
    if (set === undefined) {
      set = new NodeSet()
      index.models.set(model, set)
      index.sortedModels = undefined
    }
    return set
  }

  private leaveModel (index: ProjectIndex, model: string, nodeId: string): void {
    const set = index.models.get(model)
    if (set === undefined) return
    set.delete(nodeId)
    if (set.members.size === 0) {
      index.models.delete(model)
      index.sortedModels = undefined
    }
  }

  private leaveProject (project: string, models: Iterable<string>, nodeId: string): void {
    const index = this.index.get(project)
    if (index === undefined) return
    for (const model of models) this.leaveModel(index, model, nodeId)
    index.nodes.delete(nodeId)
    if (index.nodes.members.size === 0) {
      this.index.delete(project)
      this.sortedProjects = undefined
    }
  }
}

/** Per project and model name, the node's least busy available copy (ties: smallest cid). */
function digestOf (entry: NodeEntry): Digest {
  const digest: Digest = new Map()
  for (const { project, models } of entry.projects) {
    const best = new Map<string, Offer | undefined>()
    for (const { model, cid, type, busy, available } of models) {
      const current = best.get(model)
      if (!available) {
        if (!best.has(model)) best.set(model, undefined)
      } else if (current === undefined || busy < current.busy || (busy === current.busy && cid < current.cid)) {
        best.set(model, { cid, type, busy })
      }
    }
    digest.set(project, best)
  }
  return digest
}

function positive (value: number, name: string): number {
  if (typeof value !== 'number' || !(value > 0)) throw new TypeError(`NetworkView: ${name} must be a positive number of milliseconds`)
  return value
}
