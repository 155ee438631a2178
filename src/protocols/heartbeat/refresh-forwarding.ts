// Which peers a hub need not forward a *refresh* to. A refresh is a periodic heartbeat that says nothing
// new: same models, states, node type, version and interval as the author's last heartbeat. Forwarding
// every refresh to every peer made an input node's idle CPU grow with N² (N / 180 s heartbeats × N sends:
// 21 % of a core at 500 workers, 63 % at 1,000; docs/benchmarks.md "Swarm"). What a peer needs from a
// refresh is only that the author is still there (its routing window, src/registry/rhythm.ts); a peer
// that synced its view from us lately (/aicn/view/1.0.0, src/registry/view-sync/, which every aicn
// node repeats about once per heartbeat interval) got that freshness in bulk, in one stream.
//
// The rule, per peer P and refresh from author X (interval I, announced or the Go default): P is skipped
// when it synced from us less than I ago. Then P knows X as of at most 2·I ago (the sync's entry for X
// was at most I old), inside the 3·I routing window; the next refresh after P's sync is a full I
// later, so P is either synced again by then or forwarded that one. So:
// - changes (models, states, leaving, a node's first heartbeat) go to everyone, as before;
// - peers that never sync (the Go node, floodsub peers) get every message, as before;
// - only the gossipsub router's forwarding is narrowed; local delivery, the mesh, IHAVE gossip and
//   scoring are untouched (pubsub-go-rules.ts patches the same method the same way).
import type { PeerId } from '@libp2p/interface'
import type { Registry } from 'prom-client'
import { registerScrapedCounters } from '../../core/scraped-metrics.ts'
import { protocol } from '../../proto/index.ts'
import { decodeHeartbeat, type Heartbeat } from '../heartbeat-codec.ts'
import { isBroadcast } from '../../proto/broadcast.ts'
import { authorOf } from '../../p2p/patches/pubsub-go-rules.ts'
import { GO_DEFAULT_INTERVAL_MS, clampInterval } from '../../registry/rhythm.ts'

/** Authors and peers remembered at most (the view's own bound, src/registry/view-sync/view-sync.ts MAX_SYNC_ENTRIES). */
const MAX_TRACKED = 10_000

export interface RefreshForwardingStats { first: number, changed: number, leaving: number, refreshes: number, refreshesToAll: number, skipped: number }

type Forward = (msgIdStr: string, rawMsg: { from?: Uint8Array, data?: Uint8Array, topic?: string }, propagationSource?: string, excludePeers?: Set<string>) => void

export class RefreshForwarding {
  private readonly topic: string
  private readonly now: () => number
  /** author → what its last heartbeat said (all but the timestamp) */
  private readonly said = new Map<string, string>()
  /** peer → when it last synced its view from us */
  private readonly syncedAt = new Map<string, number>()
  /** What passed through the forwarding, by kind (metrics aicn_heartbeat_forward_*; docs/metrics.md):
   * heartbeats an author sent first (as far as this node knows), with a change, leaving, and refreshes;
   * of the refreshes, those with no recently synced peer to leave out; and the sends left out. */
  readonly stats: RefreshForwardingStats = { first: 0, changed: 0, leaving: 0, refreshes: 0, refreshesToAll: 0, skipped: 0 }

  constructor (topic: string, now: () => number = Date.now) {
    this.topic = topic
    this.now = now
  }

  /** A peer just asked us for our view. */
  synced (peer: PeerId | string): void {
    const key = peer.toString()
    this.syncedAt.delete(key)
    if (this.syncedAt.size >= MAX_TRACKED) this.syncedAt.delete(this.syncedAt.keys().next().value!)
    this.syncedAt.set(key, this.now())
  }

  /** The peers not to forward `rawMsg` to: none unless it is a refresh. Remembers what the author said. */
  skip (rawMsg: { from?: Uint8Array, data?: Uint8Array, topic?: string }): Set<string> | undefined {
    if (rawMsg.topic !== this.topic || rawMsg.data === undefined) return undefined
    const author = authorOf(rawMsg.from)
    if (author === undefined) return undefined
    const heartbeat = heartbeatOf(rawMsg.data)
    if (heartbeat === undefined || heartbeat.nodeId !== author) return undefined
    const said = heartbeat.leaving ? undefined : contentKey(heartbeat)
    const before = this.said.get(author)
    this.said.delete(author)
    if (said !== undefined) {
      if (this.said.size >= MAX_TRACKED) this.said.delete(this.said.keys().next().value!)
      this.said.set(author, said)
    }
    if (said === undefined) { this.stats.leaving++; return undefined }
    if (before === undefined) { this.stats.first++; return undefined }
    if (said !== before) { this.stats.changed++; return undefined }
    this.stats.refreshes++
    const intervalMs = heartbeat.intervalMs !== undefined && heartbeat.intervalMs > 0 ? clampInterval(heartbeat.intervalMs) : GO_DEFAULT_INTERVAL_MS
    const since = this.now() - intervalMs
    const skipped = new Set<string>()
    for (const [peer, at] of this.syncedAt) if (at > since) skipped.add(peer)
    if (skipped.size === 0) this.stats.refreshesToAll++
    return skipped
  }

  /** Narrows a gossipsub instance's forwarding by `skip` (a no-op for a router without forwardMessage). */
  install (router: unknown): boolean {
    const target = router as { forwardMessage?: Forward }
    const forward = target.forwardMessage
    if (typeof forward !== 'function' || forward.length !== 4) return false
    const skip = (rawMsg: Parameters<Forward>[1]): Set<string> | undefined => this.skip(rawMsg)
    const stats = this.stats
    target.forwardMessage = function (msgIdStr, rawMsg, propagationSource, excludePeers) {
      const skipped = skip(rawMsg)
      if (skipped !== undefined && skipped.size > 0) {
        stats.skipped += skipped.size
        for (const peer of excludePeers ?? []) skipped.add(peer)
        excludePeers = skipped
      }
      forward.call(this, msgIdStr, rawMsg, propagationSource, excludePeers)
    }
    return true
  }
}

function heartbeatOf (data: Uint8Array): Heartbeat | undefined {
  try {
    const decoded = protocol.Message.decode(data)
    return isBroadcast(decoded) ? decodeHeartbeat(decoded) : undefined
  } catch {
    return undefined
  }
}

/** Everything a heartbeat says except when it was sent. */
function contentKey (heartbeat: Heartbeat): string {
  return JSON.stringify([heartbeat.version, heartbeat.nodeType, heartbeat.intervalMs ?? 0, heartbeat.projects])
}

/** The forwarding's counts as Prometheus counters (docs/metrics.md), read from `forwarding.stats` at scrape time. */
export function registerRefreshForwardingMetrics (forwarding: RefreshForwarding, registry: Registry): void {
  const stat = (key: keyof RefreshForwardingStats) => () => forwarding.stats[key]
  registerScrapedCounters(registry, [
    ['aicn_heartbeat_forward_first_total', 'heartbeats forwarded to every peer because this node had not heard their author before (or forgot it)', stat('first')],
    ['aicn_heartbeat_forward_changed_total', 'heartbeats forwarded to every peer because they say something new (models, states, version, interval)', stat('changed')],
    ['aicn_heartbeat_forward_leaving_total', 'leaving heartbeats forwarded to every peer', stat('leaving')],
    ['aicn_heartbeat_forward_refreshes_total', 'heartbeats that say nothing new (refreshes)', stat('refreshes')],
    ['aicn_heartbeat_forward_refreshes_to_all_total', 'refreshes forwarded to every peer because no peer had synced its view from this node within the author\'s interval', stat('refreshesToAll')],
    ['aicn_heartbeat_forward_sends_skipped_total', 'refresh sends left out: peers that synced their view from this node lately (an upper bound: those outside the mesh count too)', stat('skipped')]
  ])
}
