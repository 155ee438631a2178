// View sync (/aicn/view/1.0.0): a node that joins gets the network's view from the node it joined through,
// as the signed heartbeats that node last heard, instead of every node of the network re-announcing
// itself to everyone. That rule cost every join N publishes and N² signature checks in the network (about
// 4 s of CPU per batch of joins at N = 50, and at N = 500 the input node never caught up: issue 18,
// docs/benchmarks.md "Swarm"). Now a join costs one publish (the joiner's own heartbeat, checked once by
// each node) plus one sync, whose entries the joiner checks itself, skipping those it already heard.
//
// Wire: the requester opens the stream and sends nothing; the server writes one length-prefixed frame per
// node, each a gossipsub `RPC.Message` (from, data, seqno, topic, signature, key) exactly as the author
// published it, then an empty frame, then closes. The requester checks each entry as gossipsub would (StrictSign signature by
// `from`) and then as the topic validator does (src/protocols/heartbeat/heartbeats.ts checkTopicMessage): nobody
// can forge an entry, not even the node that serves the sync; it can only withhold or replay old ones,
// which the heartbeat's own timestamp and the routing window (src/registry/rhythm.ts) bound.
//
// A libp2p service (./index.ts): the handler goes in at start (before the node listens, so the first
// identify our peers get lists the protocol), the syncs from the peers we dial run from afterStart to
// beforeStop. What it serves and where what it receives goes is given with serveWith() before the node
// starts (the heartbeats do it: src/protocols/heartbeat/heartbeats.ts).
import { randomBytes } from 'node:crypto'
import type { Connection, Libp2pEvents, PeerId, PrivateKey, PublicKey, Startable, Stream, TypedEventTarget } from '@libp2p/interface'
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromMultihash, peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id'
import { RPC } from '@libp2p/gossipsub/message'
import * as Digest from 'multiformats/hashes/digest'
import * as lp from 'it-length-prefixed'
import type { Logger } from '../../core/logger.ts'
import type { ProtocolRegistrar, StreamDialer } from '../../p2p/components.ts'
import type { PubSubMessage } from '../../p2p/pubsub.ts'
import { TokenBuckets } from '../../p2p/topic-rate.ts'

export const VIEW_PROTOCOL = '/aicn/view/1.0.0'
/** At most this many entries are kept, sent and accepted (a view this size is 10× the largest we measured). */
export const MAX_SYNC_ENTRIES = 10_000
/** A heartbeat is at most 1 MiB (MAX_TOPIC_MESSAGE_BYTES); the envelope adds a few hundred bytes. */
const MAX_FRAME_BYTES = 1024 * 1024 + 4096
const SYNC_TIMEOUT_MS = 30_000
/** A node that joined at the same moment as us may have announced itself before the node we sync from
 * had a pubsub stream to us, and after our first sync (under load, seconds later: measured with
 * scripts/bench/swarm.ts). Syncing again this long after the first catches it; a resync costs a transfer,
 * not signature checks (what we heard is skipped). A "since" cursor would make resyncs O(new). */
export const RESYNC_MS = [5_000, 30_000]
/** A node keeps syncing from the node it joined through about once per its heartbeat interval (the
 * `refreshMs` option): that is how it keeps the other nodes fresh, since a hub no longer forwards their
 * unchanged periodic heartbeats to peers that synced lately (src/protocols/heartbeat/refresh-forwarding.ts). Never
 * more often than this, whatever the interval (tests run 1 s heartbeats). */
export const MIN_REFRESH_MS = 30_000
/** Refreshes run from at most this many of the peers we joined through (a worker dials one input node or
 * two, not the whole network). */
const MAX_REFRESH_SOURCES = 2
/** Entries go out in writes of about this size: one noise/yamux frame per entry cost as much as a
 * gossipsub forward, a sync of 1,000 entries as much as a heartbeat forwarded to 1,000 peers. */
const WRITE_CHUNK_BYTES = 64 * 1024
const SIGN_PREFIX = new TextEncoder().encode('libp2p-pubsub:')
/** An empty frame ends the list: the stream's own end can get lost when it arrives before the reader
 * starts (seen with @libp2p/utils 7.4: the reader then waits for ever). */
const END = new Uint8Array(0)

/** A heartbeat as its author signed it, kept to be passed on to joining nodes. */
export interface SignedEntry { from: Uint8Array, seqno: Uint8Array, data: Uint8Array, signature: Uint8Array, key?: Uint8Array }

/** An entry with its frame on the wire, encoded once for every sync that sends it. */
interface KeptEntry { entry: SignedEntry, frame?: Uint8Array }

/** Signs `data` for `topic` as gossipsub's StrictSign does (from = our peer id, a random seqno). */
export async function signEntry (privateKey: PrivateKey, topic: string, data: Uint8Array): Promise<SignedEntry> {
  const from = peerIdFromPrivateKey(privateKey).toMultihash().bytes
  const seqno = randomBytes(8)
  const signed = RPC.Message.encode({ from, data, seqno, topic })
  const toSign = new Uint8Array(SIGN_PREFIX.byteLength + signed.byteLength)
  toSign.set(SIGN_PREFIX)
  toSign.set(signed, SIGN_PREFIX.byteLength)
  return { from, seqno, data, signature: await privateKey.sign(toSign) }
}

/** What a pubsub router hands to 'message' listeners for a signed message (gossipsub and floodsub). */
export interface SignedPubSubMessage extends PubSubMessage { signature?: Uint8Array, key?: PublicKey }

/** The last signed heartbeat of each node, bounded; an entry goes when its node leaves or is pruned. */
export class SignedHeartbeats {
  private readonly entries = new Map<string, KeptEntry>()

  /** Keeps `message` as `nodeId`'s latest; ignored when it is not a complete signed message. */
  keep (nodeId: string, message: SignedPubSubMessage): void {
    if (message.type !== 'signed' || message.from === undefined || message.sequenceNumber === undefined || message.signature === undefined) return
    if (!this.entries.has(nodeId) && this.entries.size >= MAX_SYNC_ENTRIES) return
    const seqno = new Uint8Array(8)
    new DataView(seqno.buffer).setBigUint64(0, BigInt.asUintN(64, message.sequenceNumber))
    this.entries.delete(nodeId) // re-inserted last: the map stays in order of hearing
    this.entries.set(nodeId, {
      entry: {
        from: message.from.toMultihash().bytes,
        seqno,
        data: message.data,
        signature: message.signature,
        key: message.key === undefined ? undefined : publicKeyToProtobuf(message.key)
      }
    })
  }

  forget (nodeId: string): void {
    this.entries.delete(nodeId)
  }

  /** Keeps only the nodes for which `keep` is true (called with the view's pruning). */
  retain (keep: (nodeId: string) => boolean): void {
    for (const nodeId of this.entries.keys()) if (!keep(nodeId)) this.entries.delete(nodeId)
  }

  get size (): number {
    return this.entries.size
  }

  * values (): IterableIterator<SignedEntry> {
    for (const kept of this.entries.values()) yield kept.entry
  }

  /** Each entry as a length-prefixed frame for `topic`, encoded on first use. */
  * frames (topic: string): IterableIterator<Uint8Array> {
    for (const kept of this.entries.values()) {
      kept.frame ??= frameOf(kept.entry, topic)
      yield kept.frame
    }
  }
}

/** What view sync takes from libp2p: the registrar for its handler, streams and connections to peers, and
 * the `peer:identify` events that tell it which peers it joined through. */
export interface ViewSyncComponents {
  registrar: ProtocolRegistrar
  connectionManager: Pick<StreamDialer, 'openStream'> & { getConnections: (peer?: PeerId) => Connection[] }
  events: TypedEventTarget<Libp2pEvents>
}

export interface ViewSyncInit {
  topic: string
  /** syncs one peer may ask us for a minute (`Pubsub.PeerViewSyncs`); default 10. A joiner asks up to
   * three times (at once and RESYNC_MS later); each answer is the whole view, up to 10,000 entries. */
  requestsPerMinute?: number
  /** sync again from the peers we joined through this often (ms; at least MIN_REFRESH_MS); 0: never */
  refreshMs?: number
  log: Logger
  /** for tests */
  now?: () => number
}

/** What the sync serves and where what it receives goes: given with serveWith() before the node starts. */
export interface ViewSource {
  store: SignedHeartbeats
  /** true when the entry need not be checked: the view already has `nodeId` heard at or after `timestampMs` */
  fresh: (nodeId: string, data: Uint8Array) => boolean
  /** a checked entry, as if it had arrived on the topic */
  accept: (message: SignedPubSubMessage) => void
  /** this node's own heartbeat, signed now; sent first. A joiner may miss our topic heartbeat: it is
   * published when the joiner subscribes, which can be before we have a pubsub stream to it. */
  own?: () => Promise<SignedEntry | undefined>
  /** a peer asked us for our view (src/protocols/heartbeat/refresh-forwarding.ts) */
  served?: (peer: PeerId) => void
}

export interface SyncResult { received: number, checked: number, accepted: number, skipped: number, rejected: number }

export class ViewSync implements Startable {
  private readonly components: ViewSyncComponents
  private readonly init: ViewSyncInit
  private source?: ViewSource
  /** between afterStart and beforeStop */
  private syncing = false
  /** peers a sync is running from: one at a time per peer */
  private readonly running = new Set<string>()
  private readonly onIdentify = (event: CustomEvent<{ peerId: PeerId, protocols: string[], connection: { direction: string } }>): void => {
    const { peerId, protocols, connection } = event.detail
    // The node we joined through is one we dialled; nodes that dialled us (workers, for an input node)
    // get the view from us, not the other way round.
    if (connection.direction !== 'outbound' || !protocols.includes(VIEW_PROTOCOL)) return
    this.syncLogged(peerId)
    this.sources.delete(peerId.toString())
    this.sources.set(peerId.toString(), peerId)
    while (this.sources.size > MAX_REFRESH_SOURCES) this.sources.delete(this.sources.keys().next().value!)
    for (const ms of RESYNC_MS) {
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        if (this.components.connectionManager.getConnections(peerId).length > 0) this.syncLogged(peerId)
      }, ms)
      timer.unref()
      this.timers.add(timer)
    }
  }

  private readonly timers = new Set<NodeJS.Timeout>()
  /** view syncs each peer may still ask for */
  private readonly requests: TokenBuckets
  /** syncs refused because the peer asked too often */
  refused = 0
  /** the peers we joined through (latest last), refreshed from every refreshMs */
  private readonly sources = new Map<string, PeerId>()
  private refreshTimer?: NodeJS.Timeout

  /** Syncs again from the sources still connected; forgets those that are not. The timer is re-armed
   * with a little jitter, so that workers that joined together do not all sync at one moment. */
  private refresh (): void {
    for (const [key, peerId] of this.sources) {
      if (this.components.connectionManager.getConnections(peerId).length > 0) this.syncLogged(peerId)
      else this.sources.delete(key)
    }
    this.armRefresh()
  }

  private armRefresh (): void {
    const every = this.init.refreshMs ?? 0
    if (every <= 0 || !this.syncing) return
    const base = Math.max(MIN_REFRESH_MS, every)
    this.refreshTimer = setTimeout(() => { this.refresh() }, base * (0.8 + Math.random() * 0.1))
    this.refreshTimer.unref()
  }

  private syncLogged (peerId: PeerId): void {
    void this.sync(peerId)
      .then((r) => { this.init.log.debug({ peer: peerId.toString(), ...r }, 'view synced') })
      .catch((err: Error) => { this.init.log.debug({ peer: peerId.toString(), err: err.message }, 'view sync failed') })
  }

  constructor (components: ViewSyncComponents, init: ViewSyncInit) {
    this.components = components
    this.init = init
    const perMinute = init.requestsPerMinute ?? 10
    this.requests = new TokenBuckets(perMinute / 60, perMinute, MAX_SYNC_ENTRIES, init.now)
  }

  readonly [Symbol.toStringTag] = '@aicn/view-sync'

  /** What to serve and where received entries go (the heartbeats). Set it before the node starts; without
   * it the service does nothing. */
  serveWith (source: ViewSource): void {
    this.source = source
  }

  /** The handler, in place before the node listens. */
  async start (): Promise<void> {
    if (this.source === undefined) return
    await this.components.registrar.handle(VIEW_PROTOCOL, (stream, connection) => { this.admit(stream, connection.remotePeer) }, { maxInboundStreams: 2, maxOutboundStreams: 2 })
  }

  /** Syncs from the peers we dial, once they identify, and again every refreshMs. */
  afterStart (): void {
    if (this.source === undefined || this.syncing) return
    this.syncing = true
    this.components.events.addEventListener('peer:identify', this.onIdentify)
    this.armRefresh()
  }

  /** No new syncs once the node stops. */
  beforeStop (): void {
    this.syncing = false
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    clearTimeout(this.refreshTimer)
    this.sources.clear()
    this.components.events.removeEventListener('peer:identify', this.onIdentify)
  }

  async stop (): Promise<void> {
    this.beforeStop()
    if (this.source === undefined) return
    await this.components.registrar.unhandle(VIEW_PROTOCOL).catch(() => {})
  }

  /** Serves the sync unless `peer` asked for too many lately: each answer is the whole view (up to
   * 10,000 signed heartbeats), so a peer asking over and over would cost us a transfer each time. */
  admit (stream: Stream, peerId: PeerId): void {
    const peer = peerId.toString()
    if (!this.requests.take(peer, 1)) {
      this.refused++
      this.init.log.debug({ peer }, 'view sync refused: the peer asked too often')
      stream.abort(new Error('too many view syncs'))
      return
    }
    this.source?.served?.(peerId)
    void this.serve(stream)
  }

  private async serve (stream: Stream): Promise<void> {
    try {
      const topic = this.init.topic
      let sent = 0
      const own = await this.source?.own?.().catch(() => undefined)
      const frames = this.source?.store.frames(topic) ?? []
      let chunk: Uint8Array[] = own === undefined ? [] : [frameOf(own, topic)]
      let chunkBytes = chunk[0]?.byteLength ?? 0
      const flush = async (): Promise<void> => {
        const bytes = concat(chunk, chunkBytes)
        chunk = []
        chunkBytes = 0
        if (!stream.send(bytes)) await drained(stream)
      }
      for (const frame of frames) {
        if (++sent > MAX_SYNC_ENTRIES) break
        chunk.push(frame)
        chunkBytes += frame.byteLength
        if (chunkBytes >= WRITE_CHUNK_BYTES) await flush()
      }
      chunk.push(lp.encode.single(END).subarray())
      chunkBytes += chunk[chunk.length - 1]!.byteLength
      await flush()
      await stream.close({ signal: AbortSignal.timeout(SYNC_TIMEOUT_MS) })
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  /** Asks `peer` for its view; checks and accepts what this node has not heard yet. */
  async sync (peer: PeerId): Promise<SyncResult> {
    const key = peer.toString()
    const result: SyncResult = { received: 0, checked: 0, accepted: 0, skipped: 0, rejected: 0 }
    if (this.running.has(key)) return result
    this.running.add(key)
    const signal = AbortSignal.timeout(SYNC_TIMEOUT_MS)
    let stream: Stream | undefined
    try {
      // The requester sends nothing: without full negotiation the protocol would wait for a first write.
      stream = await this.components.connectionManager.openStream(peer, VIEW_PROTOCOL, { signal, negotiateFully: true })
      for await (const frame of lp.decode(stream, { maxDataLength: MAX_FRAME_BYTES })) {
        signal.throwIfAborted()
        if (frame.byteLength === 0) break
        if (++result.received > MAX_SYNC_ENTRIES) break
        const message = await this.check(frame.subarray(), result)
        if (message !== undefined) { this.source?.accept(message); result.accepted++ }
      }
      await stream.close({ signal }).catch(() => {})
      return result
    } catch (err) {
      stream?.abort(err as Error)
      throw err
    } finally {
      this.running.delete(key)
    }
  }

  /** The entry as a pubsub message when it is on our topic, signed by its author and news to us. */
  private async check (bytes: Uint8Array, result: SyncResult): Promise<SignedPubSubMessage | undefined> {
    let entry: RPC.Message
    let from: PeerId
    try {
      entry = RPC.Message.decode(bytes)
      if (entry.topic !== this.init.topic || entry.from === undefined || entry.data === undefined || entry.seqno?.byteLength !== 8 || entry.signature === undefined) throw new Error('incomplete entry')
      from = peerIdFromMultihash(Digest.decode(entry.from))
    } catch {
      result.rejected++
      return undefined
    }
    // Checked only when it would change the view: a node that re-syncs pays nothing for what it heard.
    if (this.source?.fresh(from.toString(), entry.data) === true) { result.skipped++; return undefined }
    result.checked++
    try {
      const publicKey = entry.key !== undefined ? publicKeyFromProtobuf(entry.key) : from.publicKey
      if (publicKey === undefined || !peerIdFromPublicKey(publicKey).equals(from)) throw new Error('key does not match from')
      const signed = RPC.Message.encode({ from: entry.from, data: entry.data, seqno: entry.seqno, topic: entry.topic })
      const toVerify = new Uint8Array(SIGN_PREFIX.byteLength + signed.byteLength)
      toVerify.set(SIGN_PREFIX)
      toVerify.set(signed, SIGN_PREFIX.byteLength)
      if (!await publicKey.verify(toVerify, entry.signature)) throw new Error('bad signature')
      const sequenceNumber = new DataView(entry.seqno.buffer, entry.seqno.byteOffset, 8).getBigUint64(0)
      return { type: 'signed', from, topic: entry.topic, data: entry.data, sequenceNumber, signature: entry.signature, key: publicKey }
    } catch {
      result.rejected++
      return undefined
    }
  }
}

function frameOf (entry: SignedEntry, topic: string): Uint8Array {
  return lp.encode.single(RPC.Message.encode({ ...entry, topic })).subarray()
}

function concat (parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0]!
  const out = new Uint8Array(length)
  let at = 0
  for (const part of parts) { out.set(part, at); at += part.byteLength }
  return out
}

/** Waits for the stream's next 'drain' event, bounded by the sync timeout: with @libp2p/utils 7.4.1 a
 * stream's onDrain() stays resolved after its first drain, so it would not wait at all. */
async function drained (stream: Stream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const signal = AbortSignal.timeout(SYNC_TIMEOUT_MS)
    const done = (): void => { signal.removeEventListener('abort', fail); stream.removeEventListener('drain', done); stream.removeEventListener('close', done); resolve() }
    const fail = (): void => { stream.removeEventListener('drain', done); stream.removeEventListener('close', done); reject(new Error('view sync: the peer stopped reading')) }
    signal.addEventListener('abort', fail, { once: true })
    stream.addEventListener('drain', done, { once: true })
    stream.addEventListener('close', done, { once: true })
  })
}
