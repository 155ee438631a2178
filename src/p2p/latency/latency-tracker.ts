// Round-trip times to connected peers: an exponentially weighted moving average of libp2p pings,
// sampled when a peer connects and then periodically, so every node (not only relays, unlike the Go
// node) knows how far its peers are.
import type { PeerId } from '@libp2p/interface'
import type { Logger } from '../core/logger.ts'
import type { Host } from './host.ts'

/** The weight of a new sample, as go-libp2p's peerstore latency EWMA. */
const ALPHA = 0.1
const PING_TIMEOUT_MS = 10_000
const FIRST_SAMPLE_DELAY_MS = 500

export class LatencyTracker {
  private readonly host: Host
  private readonly log: Logger
  private readonly intervalMs: number
  private readonly rtts = new Map<string, number>()
  private timer?: NodeJS.Timeout
  // Sample a new peer once identify and the DHT's own checks have settled.
  private readonly onOpen = (event: CustomEvent<PeerId>): void => {
    setTimeout(() => { void this.sample(event.detail) }, FIRST_SAMPLE_DELAY_MS).unref()
  }
  private readonly onClose = (event: CustomEvent<PeerId>): void => { this.rtts.delete(event.detail.toString()) }

  constructor (host: Host, log: Logger, intervalMs = 60_000) {
    this.host = host
    this.log = log
    this.intervalMs = intervalMs
  }

  start (): void {
    this.host.addEventListener('peer:connect', this.onOpen)
    this.host.addEventListener('peer:disconnect', this.onClose)
    this.timer = setInterval(() => { void this.sampleAll() }, this.intervalMs)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.host.removeEventListener('peer:connect', this.onOpen)
    this.host.removeEventListener('peer:disconnect', this.onClose)
  }

  /** The smoothed round-trip time in milliseconds, or undefined when never measured. */
  latencyMs (peerId: string): number | undefined {
    return this.rtts.get(peerId)
  }

  async sample (peerId: PeerId): Promise<void> {
    try {
      const rtt = await this.host.services.ping.ping(peerId, { signal: AbortSignal.timeout(PING_TIMEOUT_MS) })
      const key = peerId.toString()
      const previous = this.rtts.get(key)
      this.rtts.set(key, previous === undefined ? rtt : previous + ALPHA * (rtt - previous))
    } catch (err) {
      this.log.debug({ peer: peerId.toString(), err: (err as Error).message }, 'ping failed')
    }
  }

  private async sampleAll (): Promise<void> {
    // One at a time: a round of pings must not become a burst of streams on a big node.
    for (const peer of this.host.getPeers()) await this.sample(peer)
  }
}
