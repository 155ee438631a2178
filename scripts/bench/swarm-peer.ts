// One simulated worker for scripts/bench/swarm.ts: a real libp2p node (TCP, PSK, noise, yamux, identify,
// ping) that speaks the real topic and job protocols, made light enough that hundreds fit in one process.
//
// What is real: the connection stack, identify (the input node learns /meshsub/1.1.0 and /aicn/job/1.1.0
// from it), signed StrictSign heartbeats in the Go node's format (src/protocols/heartbeat-codec.ts), the
// join rule of src/protocols/heartbeat/heartbeats.ts (a node we have not heard of gets our heartbeat within about a
// second, coalesced; so does a peer that subscribes to the topic), the periodic heartbeat, and the job
// protocol (src/protocols/job/job-protocol.ts) with a fake model that answers at once.
// What is simulated: pubsub. Instead of a gossipsub instance (1 s heartbeat timer, mesh upkeep and a
// secp256k1 check of every received message: N² checks at a join storm would not fit on 2 cores) the peer
// speaks /meshsub/1.1.0 by hand: it subscribes and GRAFTs to the input node, publishes signed messages
// exactly as @libp2p/gossipsub's buildRawMessage does, and decodes what it receives without checking
// signatures (the input node it trusts has checked them). A process decodes each message once
// (decodeOnce), however many of its peers receive it.
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { generateKeyPair, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RPC } from '@libp2p/gossipsub/message'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { swarmKeyFromHex } from '../../src/p2p/psk.ts'
import { protocol } from '../../src/proto/index.ts'
import { decodeHeartbeat, encodeHeartbeat, NODE_TYPE, type Heartbeat } from '../../src/protocols/heartbeat-codec.ts'
import { isBroadcast } from '../../src/proto/broadcast.ts'
import { JobProtocol } from '../../src/protocols/job/index.ts'
import type { JobRunner } from '../../src/core/job-types.ts'
import type { ViewProject } from '../../src/registry/view-types.ts'
import { silentLogger } from '../../src/core/logger.ts'
import type { Host } from '../../src/p2p/host.ts'
import { componentsOf } from '../../src/p2p/components.ts'
import { CONNECTION_PING_MS } from '../../src/p2p/idle-tuning.ts'
import { MIN_REFRESH_MS, RESYNC_MS, VIEW_PROTOCOL } from '../../src/registry/view-sync/view-sync.ts'

export const MESHSUB = '/meshsub/1.1.0'
const SIGN_PREFIX = new TextEncoder().encode('libp2p-pubsub:')
const JOIN_COALESCE_MS = 1000
const JITTER_MS = 200
const MAX_RPC_BYTES = 1024 * 1024
const REDIAL_MS = 30_000

export interface SwarmSettings {
  psk: string
  topic: string
  /** the input node's multiaddr with /p2p/ */
  inputAddr: string
  intervalMs: number
  /** 'auto': as the daemon of this commit (src/protocols/heartbeat/heartbeats.ts): speak view sync, sync from the
   * input node on joining, and answer joins only when the input node does not speak it (an older
   * daemon: then every peer answers every node it has not heard of). true / false: always / never
   * answer, without view sync. */
  answerJoins: boolean | 'auto'
  /** the fake model's whole answer (JSON of a chat completion) */
  answer: string
  version: string
}

/** Per-process state shared by its peers: message decoding once, the node ids seen, arrival watches. */
export class SwarmProcess {
  readonly settings: SwarmSettings
  private readonly decoded = new Map<string, Heartbeat | null>()
  /** node id → small integer, so each peer's "known" set is a bitmap */
  private readonly ids = new Map<string, number>()
  /** spread rounds: model name → (peer index → arrival time in ms, epoch-based with sub-ms resolution) */
  readonly watches = new Map<string, Map<number, number>>()
  /** counters for the report */
  received = 0
  published = 0
  prunes = 0
  /** view sync: entries received from the input node */
  synced = 0
  /** the input node turned out not to speak view sync: answer joins as older daemons did */
  inputWithoutSync = false
  syncErrors = 0

  constructor (settings: SwarmSettings) {
    this.settings = settings
  }

  idOf (nodeId: string): number {
    let n = this.ids.get(nodeId)
    if (n === undefined) {
      // Bounded: a bitmap of this size per peer; more distinct ids than this are ignored (never in a run).
      if (this.ids.size >= MAX_IDS) return -1
      n = this.ids.size
      this.ids.set(nodeId, n)
    }
    return n
  }

  /** The heartbeat in a pubsub message (null: not a heartbeat), decoded once per process. */
  decodeOnce (message: RPC.Message): Heartbeat | null {
    if (message.from === undefined || message.seqno === undefined || message.data === undefined) return null
    const key = Buffer.from(message.seqno).toString('base64') + Buffer.from(message.from.subarray(-8)).toString('base64')
    let hb = this.decoded.get(key)
    if (hb !== undefined) return hb
    try {
      const m = protocol.Message.decode(message.data)
      hb = isBroadcast(m) ? decodeHeartbeat(m) : null
    } catch {
      hb = null
    }
    if (this.decoded.size >= 10_000) this.decoded.clear()
    this.decoded.set(key, hb)
    return hb
  }
}

const MAX_IDS = 4096

export const now = (): number => performance.timeOrigin + performance.now()

export class SimPeer {
  readonly index: number
  private readonly proc: SwarmProcess
  private readonly localAddress: string
  private host?: Libp2p
  private privateKey?: PrivateKey
  private publicKeyPb?: Uint8Array
  private fromBytes?: Uint8Array
  id = ''
  private out?: Stream
  private seq = BigInt(Math.floor(Math.random() * 2 ** 40)) << 16n
  private readonly known = new Uint8Array(MAX_IDS)
  knownCount = 0
  projects: ViewProject[]
  private soonTimer?: NodeJS.Timeout
  private soonAt = Infinity
  private lastPublished = 0
  private periodic?: NodeJS.Timeout
  private refresher?: NodeJS.Timeout
  private stopped = false
  joined = false
  dialAttempts = 0
  disconnects = 0

  constructor (index: number, proc: SwarmProcess, localAddress: string, projects: ViewProject[]) {
    this.index = index
    this.proc = proc
    this.localAddress = localAddress
    this.projects = projects
  }

  async start (): Promise<void> {
    const { settings } = this.proc
    this.privateKey = await generateKeyPair('secp256k1')
    this.publicKeyPb = publicKeyToProtobuf(this.privateKey.publicKey)
    const peerId = peerIdFromPrivateKey(this.privateKey)
    this.fromBytes = peerId.toMultihash().bytes
    this.id = peerId.toString()
    this.mark(this.id)
    this.host = await createLibp2p({
      privateKey: this.privateKey,
      addresses: { listen: [] },
      // As a real worker (src/p2p/host.ts): its connection monitor pings the input node every 30 s.
      connectionMonitor: { pingInterval: CONNECTION_PING_MS },
      // Each simulated worker dials from an address of its own in 127.0.0.0/8: the input node refuses more
      // than 5 new connections a second from one address (libp2p's inboundConnectionThreshold).
      transports: [tcp({ dialOpts: { localAddress: this.localAddress } as any })],
      connectionProtector: preSharedKey({ psk: swarmKeyFromHex(settings.psk) }),
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      nodeInfo: { name: 'aicn', version: settings.version, userAgent: settings.version },
      services: { identify: identify(), ping: ping() }
    })
    // As a real worker (keepBootstrapPeers in src/p2p/reconnect.ts): a lost connection to the input node is
    // redialled 30 s later.
    this.host.addEventListener('peer:disconnect', () => {
      if (this.stopped || !this.joined) return
      this.joined = false
      this.disconnects++
      this.out = undefined
      setTimeout(() => { void this.join(Infinity).catch(() => {}) }, REDIAL_MS)
    })
    await this.host.handle([MESHSUB, '/meshsub/1.0.0'], (stream) => { void this.readRpcs(stream) }, { maxInboundStreams: 4 })
    // A peer that speaks view sync, as a daemon does (it serves nothing here: only input nodes are asked).
    if (settings.answerJoins === 'auto') await this.host.handle(VIEW_PROTOCOL, (stream) => { void stream.close() })
    const jobs = new JobProtocol(componentsOf(this.host as unknown as Host), { log: silentLogger })
    jobs.serveWith(this.fakeModel)
    await jobs.start()
  }

  /** Connects to the input node (retrying refused dials), opens our pubsub stream, subscribes and GRAFTs. */
  async join (deadline: number): Promise<void> {
    const host = this.host!
    const addr = multiaddr(this.proc.settings.inputAddr)
    let wait = 100
    let tries = 0
    for (;;) {
      this.dialAttempts++
      try {
        this.out = await host.dialProtocol(addr, MESHSUB, { signal: AbortSignal.timeout(10_000) })
        break
      } catch (err) {
        if (now() > deadline || this.stopped || ++tries > 50) throw err
        await new Promise((resolve) => setTimeout(resolve, wait + Math.random() * wait))
        wait = Math.min(wait * 2, 2_000)
      }
    }
    const topic = this.proc.settings.topic
    this.send({ subscriptions: [{ subscribe: true, topic }], messages: [], control: { graft: [{ topicID: topic }], ihave: [], iwant: [], prune: [], idontwant: [] } })
    this.joined = true
    if (this.proc.settings.answerJoins === 'auto') {
      await this.syncView()
      // As src/registry/view-sync/view-sync.ts: once more RESYNC_MS later, for nodes that joined at the same time.
      for (const ms of RESYNC_MS) setTimeout(() => { if (this.joined && !this.stopped) void this.syncView() }, ms)
      // As ViewSync's refresh (src/registry/view-sync/view-sync.ts): again every 0.8–0.9 of the heartbeat interval,
      // which keeps the other nodes fresh now that the input node does not forward their unchanged
      // heartbeats (src/protocols/heartbeat/refresh-forwarding.ts). A real network's workers joined at all sorts
      // of times: the first refresh comes at a random phase, not 0.8 intervals after this burst of joins.
      if (this.refresher === undefined) {
        const every = (): number => Math.max(MIN_REFRESH_MS, this.proc.settings.intervalMs) * (0.8 + Math.random() * 0.1)
        const tick = (): void => {
          if (this.stopped) return
          if (this.joined) void this.syncView()
          this.refresher = setTimeout(tick, every())
        }
        this.refresher = setTimeout(tick, Math.random() * every())
      }
    }
    if (this.periodic !== undefined) return
    // A real worker's heartbeat at start reaches nobody before it is connected; it goes out when the input
    // node's subscription arrives (the join rule). The periodic heartbeat starts at a random phase.
    const first = Math.random() * this.proc.settings.intervalMs
    this.periodic = setTimeout(() => {
      void this.publish()
      this.periodic = setInterval(() => { void this.publish() }, this.proc.settings.intervalMs)
    }, first)
  }

  /** Gets the input node's view (src/registry/view-sync/view-sync.ts). The entries are decoded, not checked: the
   * simulator trusts its input node, as it does for pubsub (a real daemon checks each entry it had not
   * heard, once). */
  private async syncView (): Promise<void> {
    let stream: Stream | undefined
    const timer = setTimeout(() => { stream?.abort(new Error('view sync took over 30 s')) }, 30_000)
    try {
      stream = await this.host!.dialProtocol(multiaddr(this.proc.settings.inputAddr), VIEW_PROTOCOL, { signal: AbortSignal.timeout(30_000), negotiateFully: true })
      for await (const frame of lp.decode(stream, { maxDataLength: MAX_RPC_BYTES })) {
        if (frame.byteLength === 0) break
        const hb = this.proc.decodeOnce(RPC.Message.decode(frame))
        this.proc.synced++
        if (hb !== null) this.mark(hb.nodeId)
      }
    } catch (err) {
      // Refused as unsupported: an input node from before view sync. Anything else: counted, not fatal.
      if ((err as Error).name === 'UnsupportedProtocolError') this.proc.inputWithoutSync = true
      else this.proc.syncErrors++
    } finally {
      clearTimeout(timer)
    }
  }

  private answersJoins (): boolean {
    const { answerJoins } = this.proc.settings
    return answerJoins === 'auto' ? this.proc.inputWithoutSync : answerJoins
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.soonTimer)
    clearTimeout(this.periodic)
    clearTimeout(this.refresher)
    clearInterval(this.periodic)
    try { await this.host?.stop() } catch {}
  }

  private send (rpc: RPC): void {
    const out = this.out
    if (out === undefined || out.writeStatus !== 'writable') return
    out.send(lp.encode.single(RPC.encode(rpc)))
  }

  knows (nodeId: string): boolean {
    const n = this.proc.idOf(nodeId)
    return n >= 0 && this.known[n] === 1
  }

  private mark (nodeId: string): boolean {
    const n = this.proc.idOf(nodeId)
    if (n < 0 || this.known[n] === 1) return false
    this.known[n] = 1
    this.knownCount++
    return true
  }

  private async readRpcs (stream: Stream): Promise<void> {
    const topic = this.proc.settings.topic
    try {
      for await (const frame of lp.decode(stream, { maxDataLength: MAX_RPC_BYTES })) {
        const at = now()
        const rpc = RPC.decode(frame)
        for (const sub of rpc.subscriptions) if (sub.subscribe === true && sub.topic === topic) this.publishSoon(JOIN_COALESCE_MS)
        if ((rpc.control?.prune.length ?? 0) > 0) this.proc.prunes++
        for (const message of rpc.messages) {
          if (message.topic !== topic) continue
          this.proc.received++
          const hb = this.proc.decodeOnce(message)
          if (hb === null || hb.nodeId === this.id) continue
          if (!hb.leaving && this.mark(hb.nodeId) && this.answersJoins()) this.publishSoon(JOIN_COALESCE_MS)
          for (const [model, arrivals] of this.proc.watches) {
            if (!arrivals.has(this.index) && hb.projects.some((p) => p.models.some((m) => m.model === model))) arrivals.set(this.index, at)
          }
        }
      }
    } catch {
      // The input node went away or the run ends.
    }
  }

  /** As Heartbeats.publishSoon (src/protocols/heartbeat/heartbeats.ts): at most one heartbeat per gap, jittered. */
  private publishSoon (gapMs: number): void {
    if (this.stopped) return
    const due = Math.max(Date.now(), this.lastPublished + gapMs)
    if (this.soonTimer !== undefined && this.soonAt <= due + JITTER_MS) return
    const at = due + Math.floor(Math.random() * JITTER_MS)
    clearTimeout(this.soonTimer)
    this.soonAt = at
    this.soonTimer = setTimeout(() => { void this.publish() }, at - Date.now())
  }

  /** Publishes our heartbeat as a StrictSign message; resolves with the time it was handed to the stream. */
  async publish (): Promise<number> {
    if (this.stopped) return NaN
    clearTimeout(this.soonTimer)
    this.soonTimer = undefined
    this.soonAt = Infinity
    this.lastPublished = Date.now()
    const { topic, version, intervalMs } = this.proc.settings
    const data = encodeHeartbeat({ nodeId: this.id, version, nodeType: NODE_TYPE.MODEL, projects: this.projects, leaving: false, intervalMs })
    this.seq++
    const seqno = new Uint8Array(8)
    new DataView(seqno.buffer).setBigUint64(0, this.seq)
    const unsigned: RPC.Message = { from: this.fromBytes, data, seqno, topic }
    const encoded = RPC.Message.encode(unsigned)
    const toSign = new Uint8Array(SIGN_PREFIX.byteLength + encoded.byteLength)
    toSign.set(SIGN_PREFIX)
    toSign.set(encoded, SIGN_PREFIX.byteLength)
    const signature = await this.privateKey!.sign(toSign)
    const at = now()
    this.send({ subscriptions: [], messages: [{ ...unsigned, signature, key: this.publicKeyPb }] })
    this.proc.published++
    return at
  }

  /** The fake model: reads the request, answers one chat completion at once. */
  private readonly fakeModel: JobRunner = async (request) => {
    for await (const _ of request.body) { /* drained */ }
    const answer = this.proc.settings.answer
    return {
      status: 200,
      contentType: 'application/json',
      nodeId: this.id,
      cid: '',
      body: (async function * () { yield new TextEncoder().encode(answer) })()
    }
  }
}
