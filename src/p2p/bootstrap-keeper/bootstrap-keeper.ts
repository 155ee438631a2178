// Keeps the bootstrap peers connected (keepBootstrapPeers in src/p2p/reconnect.ts: every 30 s, dial the
// ones this node is not connected to) from the node's start until just before it stops.
import type { Libp2pStatus, PeerId, Startable } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../../core/logger.ts'
import { USER_DIAL_PRIORITY, type PeerDialer } from '../components.ts'
import { keepBootstrapPeers } from '../reconnect.ts'
import type { NodeAddress } from '../swarm.ts'

/** What the keeper takes from libp2p: the connections to a peer, and dialling. */
export interface BootstrapKeeperComponents {
  connectionManager: PeerDialer
}

export interface BootstrapKeeperInit {
  peers: NodeAddress[]
  log: Logger
  /** default 30 s */
  intervalMs?: number
}

export class BootstrapKeeper implements Startable {
  private readonly components: BootstrapKeeperComponents
  private readonly init: BootstrapKeeperInit
  private running = false
  private stopKeeping?: () => void

  constructor (components: BootstrapKeeperComponents, init: BootstrapKeeperInit) {
    this.components = components
    this.init = init
  }

  readonly [Symbol.toStringTag] = '@aicn/bootstrap-keeper'

  start (): void {}

  afterStart (): void {
    this.running = true
    const { connectionManager } = this.components
    const running = (): boolean => this.running
    this.stopKeeping = keepBootstrapPeers({
      // It dials only while the node runs.
      get status (): Libp2pStatus { return running() ? 'started' : 'stopping' },
      getConnections: (peer?: PeerId) => connectionManager.getConnections(peer),
      dial: async (addr, options) => await connectionManager.openConnection(addr as Multiaddr, { priority: USER_DIAL_PRIORITY, ...options })
    }, this.init.peers, this.init.log, this.init.intervalMs)
  }

  beforeStop (): void {
    this.running = false
    this.stopKeeping?.()
    this.stopKeeping = undefined
  }

  stop (): void {}
}
