// Takes a node that died out of routing before its heartbeats go stale. Routing trusts a node for three
// of its own heartbeat intervals after its last heartbeat (9 minutes by default, src/registry/rhythm.ts), so a worker killed with
// SIGKILL, a crashed process or a machine that went away would keep attracting jobs that the requester's
// failover must absorb. A node we were directly connected to is a better witness: when our last
// connection to it closes, it is left out of routing until it is heard again (its next heartbeat) or
// connects again. A node that left with a leaving heartbeat is already gone from the view.
//
// There is deliberately no redial to check: it would undo `swarm/disconnect` and fight the connection
// manager's trimming. A node that is alive comes back on its own: its next heartbeat, its bootstrap
// redials (src/p2p/reconnect.ts, every 30 s) or any new connection between the two.
import type { Libp2pEvents, PeerId, Startable, TypedEventTarget } from '@libp2p/interface'
import type { Logger } from '../../core/logger.ts'
import type { NetworkView } from '../view.ts'

/** What liveness takes from libp2p: connect and disconnect events. */
export interface LivenessComponents {
  events: TypedEventTarget<Libp2pEvents>
}

export interface LivenessInit {
  view: NetworkView
  log: Logger
}

export class DirectPeerLiveness implements Startable {
  private readonly components: LivenessComponents
  private watching = false
  private readonly view: NetworkView
  private readonly log: Logger
  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => { this.lost(event.detail.toString()) }
  private readonly onConnect = (event: CustomEvent<PeerId>): void => { this.view.markReachable(event.detail.toString()) }

  constructor (components: LivenessComponents, init: LivenessInit) {
    this.components = components
    this.view = init.view
    this.log = init.log
  }

  readonly [Symbol.toStringTag] = '@aicn/liveness'

  start (): void {}

  /** Watches once the node has started. */
  afterStart (): void {
    this.watching = true
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.addEventListener('peer:connect', this.onConnect)
  }

  /** Stops watching before libp2p closes its connections. */
  beforeStop (): void {
    this.watching = false
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
    this.components.events.removeEventListener('peer:connect', this.onConnect)
  }

  stop (): void {}

  private lost (nodeId: string): void {
    // Our own shutdown closes every connection; that says nothing about the peers.
    if (!this.watching || !this.view.has(nodeId)) return
    this.view.markUnreachable(nodeId)
    this.log.debug({ peer: nodeId }, 'lost the last connection to a node; not routing to it until it is heard again')
  }
}
