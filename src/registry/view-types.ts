// The shapes of the network view (who serves which project and model), and the defensive cleaning every
// entry goes through before it reaches the view: entries come from other nodes' heartbeats and from a
// database on disk, so nothing about their shape is trusted.
import { clampInterval } from './rhythm.ts'

/** One model a node announces under a project. `busy` is the in-flight counter (the Go node's `Idle`). */
export interface ViewModel { model: string, cid: string, type: number, busy: number, available: boolean }

export interface ViewProject { project: string, models: ViewModel[] }

/** What the view knows about one node: its last heartbeat. */
export interface NodeEntry {
  nodeId: string
  projects: ViewProject[]
  /** bit flags: 0x01 public IP, 0x02 peers collect, 0x04 has models */
  nodeType: number
  /** e.g. 'aicn/0.1.0' or a Go node's 'v0.1.5'; '' if unknown */
  version: string
  /** ms since epoch, on the receiver's clock */
  lastHeard: number
  /** the node's heartbeat interval, announced or learned (src/registry/rhythm.ts); absent: the view's
   * default window applies (entries saved before this field existed) */
  intervalMs?: number
}

/** A node that can run a model right now, with its least busy copy of it. */
export interface Candidate { nodeId: string, cid: string, type: number, busy: number, lastHeard: number }

/** Limits that keep one node's heartbeat from costing the view unbounded memory or time. */
export const MAX_PROJECTS_PER_NODE = 1000
export const MAX_MODELS_PER_PROJECT = 1000
/** Models one node may announce in all (issue 19: a Sybil announcing 60,000 models each took an input
 * node to 1 GB). Real nodes serve a handful; the Go node's heartbeats are far below this. */
export const MAX_MODELS_PER_NODE = 1024
export const MAX_STRING_LENGTH = 256

/** What cleaning an entry kept and dropped; `entry` is undefined when the whole entry was unusable. */
export interface SanitizeResult { entry?: NodeEntry, reason?: string, dropped: number }

/**
 * Returns a fresh, well-formed copy of `value`, or the reason it cannot be used at all.
 *
 * Rejected outright: not an object, a node id that is not a non-empty string of at most 256 chars,
 * `projects` not an array, `lastHeard` not a finite number — these are the fields the view is keyed and
 * timed by. A bad `intervalMs` is dropped and a wild one bounded (src/registry/rhythm.ts). Dropped one by one (counted in `dropped`): projects and models whose names or cids are not
 * strings of at most 256 chars (an identifier is dropped, not truncated: a cut name would name something
 * that does not exist), models with a non-numeric type or busy count or a non-boolean `available`, and
 * whatever exceeds the per-node limits. Duplicate project names are merged. A negative busy count
 * becomes 0 (a node cannot jump the queue by announcing one). Informational fields are forgiven:
 * a bad `nodeType` becomes 0, a bad `version` '' and a long one is truncated.
 */
export function sanitizeEntry (value: unknown): SanitizeResult {
  if (!isObject(value)) return { reason: 'not an object', dropped: 0 }
  if (!isName(value.nodeId)) return { reason: 'bad node id', dropped: 0 }
  if (!Array.isArray(value.projects)) return { reason: 'projects is not an array', dropped: 0 }
  if (typeof value.lastHeard !== 'number' || !Number.isFinite(value.lastHeard)) return { reason: 'bad lastHeard', dropped: 0 }

  let dropped = 0
  let kept = 0
  const byName = new Map<string, ViewModel[]>()
  for (const project of value.projects as unknown[]) {
    if (!isObject(project) || !isName(project.project) || !Array.isArray(project.models)) { dropped++; continue }
    let models = byName.get(project.project)
    if (models === undefined) {
      if (byName.size >= MAX_PROJECTS_PER_NODE) { dropped++; continue }
      models = []
      byName.set(project.project, models)
    }
    for (const model of project.models as unknown[]) {
      const clean = sanitizeModel(model)
      if (clean === undefined || models.length >= MAX_MODELS_PER_PROJECT || kept >= MAX_MODELS_PER_NODE) { dropped++; continue }
      models.push(clean)
      kept++
    }
  }

  const nodeType = Number.isInteger(value.nodeType) && (value.nodeType as number) >= 0 ? value.nodeType as number : 0
  const version = typeof value.version === 'string' ? value.version.slice(0, MAX_STRING_LENGTH) : ''
  const entry: NodeEntry = {
    nodeId: value.nodeId,
    projects: [...byName].map(([project, models]) => ({ project, models })),
    nodeType,
    version,
    lastHeard: value.lastHeard
  }
  // Forgiven like nodeType: a bad interval is dropped (the default window applies), a wild one bounded.
  if (typeof value.intervalMs === 'number' && value.intervalMs > 0 && Number.isFinite(value.intervalMs)) entry.intervalMs = clampInterval(value.intervalMs)
  return { entry, dropped }
}

function sanitizeModel (value: unknown): ViewModel | undefined {
  if (!isObject(value) || !isName(value.model)) return undefined
  // A cid may be empty (a model registered without one), but it must be a short string.
  if (typeof value.cid !== 'string' || value.cid.length > MAX_STRING_LENGTH) return undefined
  if (typeof value.type !== 'number' || !Number.isFinite(value.type)) return undefined
  if (typeof value.busy !== 'number' || !Number.isFinite(value.busy)) return undefined
  if (typeof value.available !== 'boolean') return undefined
  return { model: value.model, cid: value.cid, type: value.type, busy: Math.max(0, value.busy), available: value.available }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A non-empty identifier that fits the length limit. */
function isName (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_STRING_LENGTH
}
