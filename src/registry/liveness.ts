// Takes a node that died out of routing before its heartbeats go stale. Routing trusts a node for
// 3 × HeartbeatInterval after its last heartbeat (9 minutes by default), so a worker killed with
// SIGKILL, a crashed machine or a pulled cable would keep attracting jobs that the requester's failover
// must absorb. A node we were directly connected to is a better witness: when our last connection to it
// closes and one redial fails, it is marked unreachable in the view, and routing skips it until it is
// heard again (its next heartbeat) or connects to us. A node that left with a leaving heartbeat is
// already gone from the view and is not redialled.
import type { PeerId } from '@libp2p/interface'
import type { Logger } from '../logger.ts'
import type { Host } from '../p2p/host.ts'
import type { NetworkView } from './view.ts'

const REDIAL_TIMEOUT_MS = 10_000

export class DirectPeerLiveness {
  private readonly host: Host
  private readonly view: NetworkView
  private readonly log: Logger
  private readonly redialTimeoutMs: number
  private stopped = false
  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => { void this.check(event.detail) }
  private readonly onConnect = (event: CustomEvent<PeerId>): void => { this.view.markReachable(event.detail.toString()) }

  constructor (host: Host, view: NetworkView, log: Logger, redialTimeoutMs = REDIAL_TIMEOUT_MS) {
    this.host = host
    this.view = view
    this.log = log
    this.redialTimeoutMs = redialTimeoutMs
  }

  start (): void {
    this.host.addEventListener('peer:disconnect', this.onDisconnect)
    this.host.addEventListener('peer:connect', this.onConnect)
  }

  stop (): void {
    this.stopped = true
    this.host.removeEventListener('peer:disconnect', this.onDisconnect)
    this.host.removeEventListener('peer:connect', this.onConnect)
  }

  private async check (peer: PeerId): Promise<void> {
    const nodeId = peer.toString()
    if (this.stopped || !this.view.has(nodeId)) return
    try {
      await this.host.dial(peer, { signal: AbortSignal.timeout(this.redialTimeoutMs) })
    } catch (err) {
      // Our own shutdown closes every connection; that says nothing about the peers.
      if (this.stopped || this.host.status !== 'started') return
      if (this.host.getConnections(peer).length > 0) return
      this.view.markUnreachable(nodeId)
      this.log.info({ peer: nodeId, err: (err as Error).message }, 'lost the connection to a node and could not redial it; not routing to it until it is heard again')
    }
  }
}
