// One info line for the operator when a peer connects (its first connection opened, with its address) or
// disconnects (its last one closed), from the node's start until just before it stops: our own shutdown
// closes every connection, which says nothing about the peers (issue 15; the other operator lines are in
// src/metrics/operator-log.ts).
import type { Connection, Libp2pEvents, PeerId, Startable, TypedEventTarget } from '@libp2p/interface'
import type { Logger } from '../../core/logger.ts'

/** What peer logging takes from libp2p: connect and disconnect events, and a peer's connections. */
export interface PeerLogComponents {
  events: TypedEventTarget<Libp2pEvents>
  connectionManager: { getConnections: (peer?: PeerId) => Connection[] }
}

export interface PeerLogInit {
  log: Logger
}

export class PeerLog implements Startable {
  private readonly components: PeerLogComponents
  private readonly log: Logger
  private readonly onConnect = (event: CustomEvent<PeerId>): void => {
    const addr = this.components.connectionManager.getConnections(event.detail)[0]?.remoteAddr.toString()
    this.log.info({ peer: event.detail.toString(), ...(addr === undefined ? {} : { addr }) }, 'peer connected')
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    this.log.info({ peer: event.detail.toString() }, 'peer disconnected')
  }

  constructor (components: PeerLogComponents, init: PeerLogInit) {
    this.components = components
    this.log = init.log
  }

  readonly [Symbol.toStringTag] = '@aicn/peer-log'

  start (): void {}

  afterStart (): void {
    this.beforeStop()
    this.components.events.addEventListener('peer:connect', this.onConnect)
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
  }

  beforeStop (): void {
    this.components.events.removeEventListener('peer:connect', this.onConnect)
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
  }

  stop (): void {}
}
