// Rendezvous through the DHT, as go-libp2p's RoutingDiscovery (docs/protocols.md): the namespace (the topic
// name) becomes CIDv1(raw, sha2-256(namespace)); each node provides it, and `rendezvous/peers` lists the
// providers, so Go and TypeScript nodes find each other under the same key.
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { Connection, ContentRouting, Libp2pEvents, PeerId, PeerStore, Startable, TypedEventTarget } from '@libp2p/interface'
import type { Logger } from '../../core/logger.ts'
import { connectedPeers } from '../components.ts'

/** What kad-dht 16's KadDHT class has beyond its published interface (see localProviders). */
interface DhtInternals {
  routingTable?: { size: number }
  providers?: { getProviders?: (cid: CID, options: { signal: AbortSignal }) => Promise<PeerId[]> }
}

const TTL_MS = 3 * 3600_000
const READVERTISE_MS = TTL_MS * 7 / 8
const RETRY_MS = 120_000
/** After meeting a new DHT server, advertise again, at most this often. */
const ON_CONNECT_MIN_GAP_MS = 30_000
const ON_CONNECT_DELAY_MS = 1000
const FIND_LIMIT = 100

export async function namespaceCid (namespace: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(namespace)))
}

/** What rendezvous takes from libp2p: identify events, content routing (the DHT's provide and
 * findProviders), the peer store, the connections, and the DHT service itself (named `dht`,
 * src/p2p/host.ts) for its own provider records. */
export interface RendezvousComponents {
  events: TypedEventTarget<Libp2pEvents>
  contentRouting: Pick<ContentRouting, 'provide' | 'findProviders'>
  peerStore: Pick<PeerStore, 'get'>
  connectionManager: { getConnections: () => Connection[] }
  dht: unknown
}

export interface RendezvousInit {
  /** the topic name */
  namespace: string
  /** the DHT's protocol (src/p2p/host.ts dhtProtocol) */
  dhtProtocol: string
  log: Logger
}

export class Rendezvous implements Startable {
  private readonly components: RendezvousComponents
  private readonly namespace: string
  private readonly log: Logger
  private timer?: NodeJS.Timeout
  private lastAdvertised = 0
  /** how many DHT servers we were connected to at the last advertisement */
  private serversAtLastAdvertise = 0
  private running = false
  private stopped = false
  private readonly dhtProtocol: string
  private readonly onIdentify = (event: CustomEvent<{ protocols: string[] }>): void => {
    if (!event.detail.protocols.includes(this.dhtProtocol)) return
    // A provide made while we knew no DHT server reached nobody: repeat it as soon as we know one.
    if (this.serversAtLastAdvertise === 0 || Date.now() - this.lastAdvertised >= ON_CONNECT_MIN_GAP_MS) {
      this.schedule(ON_CONNECT_DELAY_MS)
    }
  }

  constructor (components: RendezvousComponents, init: RendezvousInit) {
    this.components = components
    this.namespace = init.namespace
    this.dhtProtocol = init.dhtProtocol
    this.log = init.log
  }

  readonly [Symbol.toStringTag] = '@aicn/rendezvous'

  start (): void {}

  /** Advertises once the node (its DHT included) has started, and again as DHT servers are met. */
  afterStart (): void {
    this.components.events.addEventListener('peer:identify', this.onIdentify)
    this.schedule(0)
  }

  beforeStop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.components.events.removeEventListener('peer:identify', this.onIdentify)
  }

  stop (): void {}

  /** Node ids that provide the namespace (at most 100). */
  async findPeers (signal: AbortSignal): Promise<string[]> {
    const cid = await namespaceCid(this.namespace)
    // kad-dht 16 waits for a DHT server to join its routing table before it runs a query (its
    // query/manager.js), so a node that knows no other DHT server (the only input node of a network: its
    // workers are DHT clients) never answered. It already holds every record there is: the providers
    // that advertised to it. go-libp2p-kad-dht answers the same from its provider store.
    const local = await this.localProviders(cid, signal)
    if (local !== undefined) return local
    const found = new Set<string>()
    for await (const provider of this.components.contentRouting.findProviders(cid, { signal })) {
      found.add(provider.id.toString())
      if (found.size >= FIND_LIMIT) break
    }
    return [...found]
  }

  /** The provider records this node holds, when there is no other DHT server to ask; else undefined. */
  private async localProviders (cid: CID, signal: AbortSignal): Promise<string[] | undefined> {
    const dht = this.components.dht as DhtInternals | undefined
    if (dht?.routingTable === undefined || dht.routingTable.size > 0) return undefined
    // `providers` is public on kad-dht 16's KadDHT class but not in its interface: check before use.
    if (typeof dht.providers?.getProviders !== 'function') return undefined
    const providers = await dht.providers.getProviders(cid, { signal })
    return [...new Set(providers.map((p) => p.toString()))].slice(0, FIND_LIMIT)
  }

  private schedule (delayMs: number): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { void this.advertise() }, delayMs)
    this.timer.unref()
  }

  private async advertise (): Promise<void> {
    if (this.running || this.stopped) return
    this.running = true
    this.lastAdvertised = Date.now()
    this.serversAtLastAdvertise = await this.connectedDhtServers()
    let next = READVERTISE_MS
    try {
      await this.components.contentRouting.provide(await namespaceCid(this.namespace), { signal: AbortSignal.timeout(60_000) })
      this.log.debug({ namespace: this.namespace }, 'advertised rendezvous namespace')
    } catch (err) {
      next = RETRY_MS
      this.log.debug({ err: (err as Error).message }, 'rendezvous advertise failed, will retry')
    } finally {
      this.running = false
    }
    this.schedule(next)
  }

  private async connectedDhtServers (): Promise<number> {
    let count = 0
    for (const peer of connectedPeers(this.components.connectionManager.getConnections())) {
      const protocols = await this.components.peerStore.get(peer).then((p) => p.protocols, () => [] as string[])
      if (protocols.includes(this.dhtProtocol)) count++
    }
    return count
  }
}
