// What this node remembers about other nodes when it sends them jobs: how many of our jobs run there
// now, and how they failed before answering (a cooldown that doubles per consecutive failure, plus a
// fading penalty so that a node that just came out of cooldown is not everyone's first choice again).
// Only nodes with something to remember are kept, so the map stays small however many nodes we meet.

export interface HealthOptions {
  now: () => number
  baseCooldownMs: number
  maxCooldownMs: number
}

/** A failure's weight halves every minute: long enough to outlast a short cooldown, short enough to forgive. */
export const FAILURE_HALF_LIFE_MS = 60_000
/** Below this a node's decayed failures count as none (4 × 0.05 is a fifth of a busy slot). */
const FORGET_PENALTY = 0.05
/** A hard ceiling on remembered nodes, whatever the clock does. */
export const MAX_TRACKED_NODES = 10_000
/** Full sweeps are O(nodes); doing one at most this often keeps each call cheap. */
const SWEEP_INTERVAL_MS = 10_000

interface NodeState {
  inFlight: number
  /** failures since the last success (or since the streak was forgotten) */
  streak: number
  cooldownUntil: number
  lastFailedAt: number
  /** decayed failure count as of penaltyAt */
  penalty: number
  penaltyAt: number
}

export class NodeHealth {
  private readonly options: HealthOptions
  private readonly nodes = new Map<string, NodeState>()
  private lastSweep: number

  constructor (options: HealthOptions) {
    this.options = options
    this.lastSweep = options.now()
  }

  /** How many nodes have state right now (for tests and metrics). */
  get size (): number {
    this.maybeSweep()
    return this.nodes.size
  }

  inFlight (nodeId: string): number {
    return this.nodes.get(nodeId)?.inFlight ?? 0
  }

  coolingDown (nodeId: string): boolean {
    const state = this.nodes.get(nodeId)
    return state !== undefined && this.options.now() < state.cooldownUntil
  }

  /** When the node last failed; undefined if we remember no failure. */
  lastFailedAt (nodeId: string): number | undefined {
    const state = this.nodes.get(nodeId)
    return state === undefined || state.lastFailedAt === 0 ? undefined : state.lastFailedAt
  }

  /** Failures so far, each fading with FAILURE_HALF_LIFE_MS. */
  recentFailures (nodeId: string): number {
    const state = this.nodes.get(nodeId)
    return state === undefined ? 0 : this.decayed(state, this.options.now())
  }

  started (nodeId: string): () => void {
    const state = this.touch(nodeId)
    state.inFlight++
    let released = false
    return () => {
      if (released) return
      released = true
      state.inFlight--
      this.forgetIfQuiet(nodeId, state)
    }
  }

  failed (nodeId: string): void {
    const now = this.options.now()
    const state = this.touch(nodeId)
    // A streak is "consecutive" only while the last cooldown is recent; long after it, start over at the base.
    if (now >= state.cooldownUntil + this.options.maxCooldownMs) state.streak = 0
    state.streak++
    state.cooldownUntil = now + this.cooldownFor(state.streak)
    state.lastFailedAt = now
    state.penalty = this.decayed(state, now) + 1
    state.penaltyAt = now
  }

  succeeded (nodeId: string): void {
    const state = this.nodes.get(nodeId)
    if (state === undefined) return
    // The penalty stays and fades: one good answer should not erase a run of bad ones at once.
    state.streak = 0
    state.cooldownUntil = 0
    this.forgetIfQuiet(nodeId, state)
  }

  private cooldownFor (streak: number): number {
    // Capping the exponent first keeps 2 ** streak finite however long a node keeps failing.
    const doubled = this.options.baseCooldownMs * 2 ** Math.min(streak - 1, 30)
    return Math.min(doubled, this.options.maxCooldownMs)
  }

  private decayed (state: NodeState, now: number): number {
    if (state.penalty === 0) return 0
    const elapsed = Math.max(0, now - state.penaltyAt)
    return state.penalty * 2 ** (-elapsed / FAILURE_HALF_LIFE_MS)
  }

  private touch (nodeId: string): NodeState {
    this.maybeSweep()
    let state = this.nodes.get(nodeId)
    if (state === undefined) {
      state = { inFlight: 0, streak: 0, cooldownUntil: 0, lastFailedAt: 0, penalty: 0, penaltyAt: 0 }
      this.nodes.set(nodeId, state)
      if (this.nodes.size > MAX_TRACKED_NODES) this.enforceCap(nodeId)
    }
    return state
  }

  /** Nothing left to remember: no jobs there, no cooldown, no streak that could still double, no penalty worth a score. */
  private quiet (state: NodeState, now: number): boolean {
    return state.inFlight === 0 &&
      (state.streak === 0 ? now >= state.cooldownUntil : now >= state.cooldownUntil + this.options.maxCooldownMs) &&
      this.decayed(state, now) < FORGET_PENALTY
  }

  private forgetIfQuiet (nodeId: string, state: NodeState): void {
    if (this.nodes.get(nodeId) === state && this.quiet(state, this.options.now())) this.nodes.delete(nodeId)
  }

  private maybeSweep (): void {
    const now = this.options.now()
    if (now - this.lastSweep < SWEEP_INTERVAL_MS && now >= this.lastSweep) return
    this.sweep(now)
  }

  private sweep (now: number): void {
    this.lastSweep = now
    for (const [nodeId, state] of this.nodes) {
      if (this.quiet(state, now)) this.nodes.delete(nodeId)
    }
  }

  /** Over the ceiling: drop the oldest entries with no job running (a job's entry must stay so its release finds it).
   * No sweep here: touch() has just had its chance, and sweeping on every insert at the ceiling would be O(nodes) each. */
  private enforceCap (keep: string): void {
    for (const [nodeId, state] of this.nodes) {
      if (this.nodes.size <= MAX_TRACKED_NODES) break
      if (nodeId !== keep && state.inFlight === 0) this.nodes.delete(nodeId)
    }
  }
}
