// Rendezvous through the DHT, as go-libp2p's RoutingDiscovery (reference §5.4): the namespace (the topic
// name) becomes CIDv1(raw, sha2-256(namespace)); each node provides it, and `rendezvous/peers` lists the
// providers, so Go and TypeScript nodes find each other under the same key.
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { Logger } from '../logger.ts'
import type { Host } from './host.ts'

const TTL_MS = 3 * 3600_000
const READVERTISE_MS = TTL_MS * 7 / 8
const MAX_RETRY_MS = 120_000
const FIND_LIMIT = 100

export async function namespaceCid (namespace: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(namespace)))
}

export class Rendezvous {
  private readonly host: Host
  private readonly namespace: string
  private readonly log: Logger
  private timer?: NodeJS.Timeout
  private stopped = false

  constructor (host: Host, namespace: string, log: Logger) {
    this.host = host
    this.namespace = namespace
    this.log = log
  }

  /** Provides the namespace now and keeps it provided; retries quickly while the node has no peers. */
  start (): void {
    let retryMs = 1000
    const advertise = async (): Promise<void> => {
      if (this.stopped) return
      let next = READVERTISE_MS
      try {
        await this.host.contentRouting.provide(await namespaceCid(this.namespace), { signal: AbortSignal.timeout(60_000) })
        retryMs = 1000
        this.log.debug({ namespace: this.namespace }, 'advertised rendezvous namespace')
      } catch (err) {
        next = retryMs
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS)
        this.log.debug({ err: (err as Error).message }, 'rendezvous advertise failed, will retry')
      }
      if (!this.stopped) {
        this.timer = setTimeout(() => { void advertise() }, next)
        this.timer.unref()
      }
    }
    void advertise()
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  /** Node ids that provide the namespace (at most 100). */
  async findPeers (signal: AbortSignal): Promise<string[]> {
    const found = new Set<string>()
    for await (const provider of this.host.contentRouting.findProviders(await namespaceCid(this.namespace), { signal })) {
      found.add(provider.id.toString())
      if (found.size >= FIND_LIMIT) break
    }
    return [...found]
  }
}
