// The connection history as a libp2p service: records the dialable addresses of every peer we connect
// to (src/p2p/history.ts keeps them on disk), and redials the peers we knew once the node listens, as the
// Go node does at start.
//
// Why the redial is not in afterStart: libp2p's start (node_modules/libp2p/dist/src/libp2p.js, start())
// runs beforeStart, start and afterStart of every component, each phase as one Promise.all over them all
// (node_modules/libp2p/dist/src/components.js, _invokeStartableMethod), and the transport manager opens
// its listeners in its own afterStart (node_modules/libp2p/dist/src/transport-manager.js). So a service's
// afterStart runs beside the listening, not after it: nothing says the node listens yet. The 'start'
// event that follows goes to the node's own listeners only (the components' `events` forward to the node,
// not back). So src/node/node.ts calls redial() once `host.start()` has resolved; the service records
// from start() (before any connection) and stops its redial in beforeStop (before connections close, so
// our own shutdown is not counted as the peers' failure).
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2pEvents, PeerId, Startable, TypedEventTarget } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../../core/logger.ts'
import { connectedPeers, USER_DIAL_PRIORITY, type PeerDialer } from '../components.ts'
import type { ConnectionHistory } from '../history.ts'
import { dialableAddress, REDIAL_TIMEOUT_MS } from '../reconnect.ts'

const REDIAL_CONCURRENCY = 16

/** What the history takes from libp2p: our peer id, identify and connection events, dialling. */
export interface PeerHistoryComponents {
  peerId: PeerId
  events: TypedEventTarget<Libp2pEvents>
  connectionManager: PeerDialer
}

export interface PeerHistoryInit {
  history: Pick<ConnectionHistory, 'connected' | 'failed' | 'entries'>
  /** peers the redial leaves alone (the bootstrap peers: src/p2p/bootstrap-keeper/ keeps them) */
  skip?: Set<string>
  log: Logger
}

export interface RedialResult { connected: number, failed: number, forgotten: number }

export class PeerHistory implements Startable {
  private readonly components: PeerHistoryComponents
  private readonly init: PeerHistoryInit
  private recording = false
  /** aborts the running redial when the node stops */
  private stopping = new AbortController()
  private readonly onIdentify = (event: CustomEvent<{ peerId: PeerId, listenAddrs: Multiaddr[] }>): void => {
    this.record(event.detail.peerId.toString(), event.detail.listenAddrs)
  }

  private readonly onOpen = (event: CustomEvent<{ remotePeer: PeerId, remoteAddr: Multiaddr, direction: string }>): void => {
    const connection = event.detail
    // An inbound connection's remote port is ephemeral; only outbound ones name a dialable address.
    this.record(connection.remotePeer.toString(), connection.direction === 'outbound' ? [connection.remoteAddr] : [])
  }

  constructor (components: PeerHistoryComponents, init: PeerHistoryInit) {
    this.components = components
    this.init = init
  }

  readonly [Symbol.toStringTag] = '@aicn/peer-history'

  /** Records from before the first connection. */
  start (): void {
    if (this.recording) return
    this.recording = true
    this.stopping = new AbortController()
    this.components.events.addEventListener('peer:identify', this.onIdentify)
    this.components.events.addEventListener('connection:open', this.onOpen)
  }

  /** Ends a running redial before libp2p closes the connections. */
  beforeStop (): void {
    this.stopping.abort()
  }

  stop (): void {
    this.stopping.abort()
    this.recording = false
    this.components.events.removeEventListener('peer:identify', this.onIdentify)
    this.components.events.removeEventListener('connection:open', this.onOpen)
  }

  /** Dials every peer in the history that is not connected yet, except ourselves and `skip`; a peer that
   * fails too often is forgotten (src/p2p/history.ts). Call it once the node listens (see above). */
  async redial (): Promise<RedialResult> {
    const result: RedialResult = { connected: 0, failed: 0, forgotten: 0 }
    if (!this.recording) return result
    const stopping = this.stopping.signal
    const self = this.components.peerId.toString()
    const skip = this.init.skip ?? new Set()
    const connected = new Set(connectedPeers(this.components.connectionManager.getConnections()).map((p) => p.toString()))
    const queue = (await this.init.history.entries()).filter(([id]) => id !== self && !skip.has(id) && !connected.has(id))
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next !== undefined && !stopping.aborted; next = queue.shift()) {
        const [peerId, record] = next
        try {
          const addrs = record.Addresses.map((a) => multiaddr(`${a}/p2p/${peerId}`))
          await this.components.connectionManager.openConnection(addrs, { priority: USER_DIAL_PRIORITY, signal: AbortSignal.any([stopping, AbortSignal.timeout(REDIAL_TIMEOUT_MS)]) })
          result.connected++
        } catch (err) {
          // Our own stop is not the peer's failure.
          if (stopping.aborted) return
          result.failed++
          this.init.log.debug({ peer: peerId, err: (err as Error).message }, 'redial from history failed')
          if (await this.init.history.failed(peerId) === 'forgotten') result.forgotten++
        }
      }
    }
    await Promise.all(Array.from({ length: REDIAL_CONCURRENCY }, worker))
    return result
  }

  private record (peerId: string, addrs: Multiaddr[]): void {
    const addresses = addrs.map(dialableAddress).filter((a): a is string => a !== undefined)
    this.init.history.connected(peerId, addresses).catch((err: Error) => { this.init.log.warn({ err: err.message, peer: peerId }, 'could not record connection') })
  }
}
