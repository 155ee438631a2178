// How long a node counts for routing after its last heartbeat: three of *its own* heartbeat intervals.
// Nodes of one network do not share an interval: a Go worker heartbeats every 180 s by default, an aicn
// node may be set to 10 s. Holding everyone to the receiver's own interval dropped idle Go workers from
// routing between their heartbeats (503 while the worker was up).
//
// - An aicn node says its interval in its heartbeat (AIProjectResponse.heartbeat_interval_ms, ours).
// - A Go node does not, so its interval is learned from the spacing of its heartbeats. A gap is only a
//   lower bound of the interval: the Go node also heartbeats on every registration and twice per job, so a
//   busy worker's gaps are short whatever its schedule. The estimate is therefore the longest gap heard,
//   never less than the Go default (180 s, also what a node not measured yet is assumed to use). A gap
//   longer than the node's current window is a node coming back (it had already left routing), not a beat.
//   Learning a Go interval below 180 s would need more than gaps (a busy worker looks like a fast one), so
//   a Go node set below 180 s is kept for 3 × 180 s; one set above 540 s drops out between its heartbeats.
// A node whose direct connection closed still leaves routing at once (src/registry/liveness/index.ts).

/** go-libp2p / the Go node's `PeersCollect.HeartbeatInterval` default. */
export const GO_DEFAULT_INTERVAL_MS = 180_000
/** A node counts for routing while heard within this many of its intervals. */
export const ROUTING_INTERVALS = 3
/** Bounds for an interval a node announces or we learn: a heartbeat is signed by its node, not trusted. */
export const MIN_INTERVAL_MS = 1000
export const MAX_INTERVAL_MS = 3600_000

/** What the view remembers of a node's last heartbeat. */
export interface Heard { lastHeard: number, intervalMs?: number }

/** The interval to hold a node to after a heartbeat heard at `heardAt` that announced `announcedMs` (0 or
 * undefined: none, a Go node). `previous` is the node's last heartbeat, if any. */
export function nextInterval (previous: Heard | undefined, heardAt: number, announcedMs?: number): number {
  if (announcedMs !== undefined && announcedMs > 0) return clampInterval(announcedMs)
  let interval = Math.max(GO_DEFAULT_INTERVAL_MS, clampInterval(previous?.intervalMs ?? GO_DEFAULT_INTERVAL_MS))
  if (previous !== undefined) {
    const gap = heardAt - previous.lastHeard
    if (gap > interval && gap <= ROUTING_INTERVALS * interval) interval = gap
  }
  return clampInterval(interval)
}

/** How long after its last heartbeat a node with this interval counts for routing. */
export function routingWindowMs (intervalMs: number): number {
  return ROUTING_INTERVALS * clampInterval(intervalMs)
}

export function clampInterval (ms: number): number {
  if (!Number.isFinite(ms)) return GO_DEFAULT_INTERVAL_MS
  return Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, Math.round(ms)))
}
