// Round-trip times to connected peers: an exponentially weighted moving average of libp2p pings,
// sampled when a peer connects and then periodically, so every node (not only relays, unlike the Go
// node) knows how far its peers are.
import type { Connection, Libp2pEvents, PeerId, Startable, TypedEventTarget } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'
import type { Logger } from '../../core/logger.ts'
import { connectedPeers } from '../components.ts'

/** The weight of a new sample, as go-libp2p's peerstore latency EWMA. */
const ALPHA = 0.1
const PING_TIMEOUT_MS = 10_000
const FIRST_SAMPLE_DELAY_MS = 500

/** What the tracker takes from libp2p: connect events, the connections, and the ping service. */
export interface LatencyComponents {
  events: TypedEventTarget<Libp2pEvents>
  connectionManager: { getConnections: () => Connection[] }
  ping: Pick<Ping, 'ping'>
}

export interface LatencyInit {
  log: Logger
  /** how often every connected peer is pinged again (default 60 s) */
  intervalMs?: number
}

export class LatencyTracker implements Startable {
  private readonly components: LatencyComponents
  private readonly log: Logger
  private readonly intervalMs: number
  private readonly rtts = new Map<string, number>()
  private timer?: NodeJS.Timeout
  // Sample a new peer once identify and the DHT's own checks have settled.
  private readonly onOpen = (event: CustomEvent<PeerId>): void => {
    setTimeout(() => { void this.sample(event.detail) }, FIRST_SAMPLE_DELAY_MS).unref()
  }
  private readonly onClose = (event: CustomEvent<PeerId>): void => { this.rtts.delete(event.detail.toString()) }

  constructor (components: LatencyComponents, init: LatencyInit) {
    this.components = components
    this.log = init.log
    this.intervalMs = init.intervalMs ?? 60_000
  }

  readonly [Symbol.toStringTag] = '@aicn/latency'

  start (): void {}

  /** Sampling begins once the node has started (its ping service included). */
  afterStart (): void {
    this.components.events.addEventListener('peer:connect', this.onOpen)
    this.components.events.addEventListener('peer:disconnect', this.onClose)
    this.timer = setInterval(() => { void this.sampleAll() }, this.intervalMs)
    this.timer.unref()
  }

  /** Stops before libp2p closes its connections, as the node did before it stopped libp2p. */
  beforeStop (): void {
    clearInterval(this.timer)
    this.components.events.removeEventListener('peer:connect', this.onOpen)
    this.components.events.removeEventListener('peer:disconnect', this.onClose)
  }

  stop (): void {}

  /** The smoothed round-trip time in milliseconds, or undefined when never measured. */
  latencyMs (peerId: string): number | undefined {
    return this.rtts.get(peerId)
  }

  async sample (peerId: PeerId): Promise<void> {
    try {
      const rtt = await this.components.ping.ping(peerId, { signal: AbortSignal.timeout(PING_TIMEOUT_MS) })
      const key = peerId.toString()
      const previous = this.rtts.get(key)
      this.rtts.set(key, previous === undefined ? rtt : previous + ALPHA * (rtt - previous))
    } catch (err) {
      this.log.debug({ peer: peerId.toString(), err: (err as Error).message }, 'ping failed')
    }
  }

  private async sampleAll (): Promise<void> {
    // One at a time: a round of pings must not become a burst of streams on a big node.
    for (const peer of connectedPeers(this.components.connectionManager.getConnections())) await this.sample(peer)
  }
}
