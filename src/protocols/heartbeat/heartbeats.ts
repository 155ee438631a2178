// Gossip of who serves what. Publishes this node's heartbeat at start, at once after a registration or
// health change, within about a second when a node it has not heard of joins, every HeartbeatInterval,
// and an empty "leaving" heartbeat at stop. Busy-counter changes alone publish at most once per
// BusyInterval (default 30 s): every job changes a counter, every node of the network checks the signature
// of every heartbeat (1.7 ms each), so publishing them as they happen made a job's cost grow with the
// network's size. Requesters count their own jobs in flight and fail over (src/jobs/selector.ts).
// Receives the others' into the network view, trusting a heartbeat only when the header's node_id is the
// pubsub message's signed author (nobody can announce models for another node).
//
// A libp2p service (./index.ts). It reads what it announces from the local registry, given in its init
// before the node starts, so nothing has to be wired after libp2p's start: in afterStart (pubsub runs)
// it subscribes to the topic, installs the topic validator and publishes the first heartbeat; the health
// checks that node.ts wires afterwards change the registry, which publishes as any change does. In
// beforeStop, while pubsub and every connection still run (libp2p calls every beforeStop before any
// stop: node_modules/libp2p/dist/src/libp2p.js), the leaving heartbeat goes out.
import type { Connection, PeerId, PrivateKey, Startable } from '@libp2p/interface'
import { protocol } from '../../proto/index.ts'
import type { Logger } from '../../core/logger.ts'
import type { PubSub, PubSubMessage, SubscriptionChange, TopicValidatorResult } from '../../p2p/pubsub.ts'
import type { LocalRegistry, ChangeReason } from '../../registry/local.ts'
import type { NetworkView } from '../../registry/view.ts'
import { countAnnouncedModels, decodeHeartbeat, encodeHeartbeat, NODE_TYPE, projectsOf, type Heartbeat } from '../heartbeat-codec.ts'
import { isBroadcast } from '../../proto/broadcast.ts'
import { nextInterval } from '../../registry/rhythm.ts'
import { MAX_MODELS_PER_NODE } from '../../registry/view-types.ts'
import { SignedHeartbeats, VIEW_PROTOCOL, signEntry, type SignedPubSubMessage, type ViewSync } from '../../registry/view-sync/index.ts'
import { RefreshForwarding } from './refresh-forwarding.ts'

/** go-libp2p-pubsub's limit for one message; anything larger is rejected. */
export const MAX_TOPIC_MESSAGE_BYTES = 1024 * 1024
/** The shortest gap before answering a node that joined: many joins in a burst cost one heartbeat. */
const JOIN_COALESCE_MS = 1000
/** The shortest gap between two of our heartbeats: a burst of registrations is one heartbeat per gap, so an
 * honest node stays far below the topic's rate limit (Pubsub.AuthorRate, src/p2p/topic-rate.ts). */
export const MIN_PUBLISH_GAP_MS = 200
const JITTER_MS = 200
/** Peers asked for their registrations at once, at most (a burst of Go nodes joining). */
const MAX_ASKS = 8
/** A joining node is asked this long after its subscription reached us, and again once if that brought no
 * answer within the first wait: asked at once, the request went out before our pubsub had a stream to it
 * and was lost (test/integration/go-join.test.ts), as its own heartbeat at start was to us. */
const ASK_AFTER_MS = JOIN_COALESCE_MS
const ASK_WAITS_MS = [5_000, 10_000]

/** Asks a peer for its registrations: an AI_PROJECT query over whichever protocol it speaks, answered
 * within `timeoutMs`. */
export type AskRegistrations = (peer: PeerId, timeoutMs: number) => Promise<protocol.AIProjectResponse.$Properties>

const decoder = new TextDecoder()

/** What the heartbeats take from libp2p: our peer id, pubsub (named `pubsub`, src/p2p/host.ts), whether a
 * peer is connected and which protocols it speaks, and the view sync service (named `viewSync`, listed
 * before them; read only when `viewSync` is not false). */
export interface HeartbeatComponents {
  peerId: PeerId
  pubsub: PubSub
  connectionManager: { getConnections: (peer?: PeerId) => Connection[] }
  peerStore: { get: (peer: PeerId) => Promise<{ protocols: string[], metadata?: Map<string, Uint8Array> }> }
  viewSync?: ViewSync
}

export interface HeartbeatInit {
  topic: string
  registry: LocalRegistry
  view: NetworkView
  intervalMs: number
  /** the shortest gap between a heartbeat and one sent only because busy counters changed */
  busyIntervalMs: number
  /** NODE_TYPE flags other than MODEL, which follows the registry */
  baseNodeType: number
  version: string
  log: Logger
  /** serve and use view sync (the `viewSync` component, src/registry/view-sync/); default true. Off, every
   * node answers every node it has not heard of with its own heartbeat, as before (O(N²) checks per join). */
  viewSync?: boolean
  /** signs our own heartbeat for view syncs (the topic's copy is signed inside the pubsub router) */
  privateKey?: PrivateKey
}

export class Heartbeats implements Startable {
  private readonly components: HeartbeatComponents
  private readonly options: HeartbeatInit
  private running = false
  private readonly self: string
  private timer?: NodeJS.Timeout
  private soonTimer?: NodeJS.Timeout
  /** when soonTimer fires (ms since the epoch) */
  private soonAt = Infinity
  private lastPublished = 0
  private stopped = false
  private unsubscribeRegistry?: () => void
  /** the last signed heartbeat of each node, passed on to nodes that join through us */
  private readonly signed = new SignedHeartbeats()
  /** what the topic validator found, until receive() takes it (weak: a message not delivered is dropped) */
  private readonly checked = new WeakMap<PubSubMessage, TopicCheck>()
  private readonly sync?: ViewSync
  /** narrows the forwarding of unchanged heartbeats to peers that keep fresh by view sync */
  readonly refreshForwarding?: RefreshForwarding
  private ask?: AskRegistrations
  /** peers being asked for their registrations */
  private readonly asking = new Set<string>()
  private readonly askTimers = new Set<NodeJS.Timeout>()
  private readonly onMessage = (event: CustomEvent<PubSubMessage>): void => { this.receive(event.detail) }
  // A node that just joined the topic has not heard us yet (our last heartbeat may be minutes old), and
  // we may not have heard it: see askIfUnheard().
  private readonly onSubscriptionChange = (event: CustomEvent<SubscriptionChange>): void => {
    if (!event.detail.subscriptions.some((s) => s.topic === this.options.topic && s.subscribe)) return
    this.publishSoon(JOIN_COALESCE_MS)
    this.askIfUnheard(event.detail.peerId)
  }

  constructor (components: HeartbeatComponents, options: HeartbeatInit) {
    this.components = components
    this.options = options
    this.self = components.peerId.toString()
    if (options.viewSync !== false) {
      const forwarding = this.refreshForwarding = new RefreshForwarding(options.topic)
      this.sync = components.viewSync
      // Before the node starts: view sync serves our signed heartbeats and hands us what it receives.
      this.sync?.serveWith({
        served: (peer) => { forwarding.synced(peer) },
        store: this.signed,
        fresh: (nodeId, data) => this.heardSince(nodeId, data),
        accept: (message) => { this.receive(message, true) },
        own: options.privateKey === undefined ? undefined : async () => this.stopped ? undefined : await signEntry(options.privateKey!, options.topic, this.encode(false))
      })
    }
  }

  readonly [Symbol.toStringTag] = '@aicn/heartbeats'

  /** How to ask a peer for its registrations (src/node/node.ts gives the network registry's query, which
   * is built after the host); set it before the node starts. Without it, nobody is asked. */
  askWith (ask: AskRegistrations): void {
    this.ask = ask
  }

  start (): void {}

  /** Once pubsub runs: subscribes, validates and receives the topic, publishes at once and on schedule. */
  afterStart (): void {
    if (this.running) return
    this.running = true
    this.stopped = false
    const { topic, intervalMs } = this.options
    const pubsub = this.components.pubsub
    if (!pubsub.getTopics().includes(topic)) pubsub.subscribe(topic)
    pubsub.topicValidators.set(topic, (peer, message) => this.validate(peer, message))
    this.refreshForwarding?.install(pubsub)
    pubsub.addEventListener('message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    this.unsubscribeRegistry = this.options.registry.onChange((reason) => { this.changed(reason) })
    this.timer = setInterval(() => {
      // Entries of nodes the view dropped are not passed on any more.
      this.signed.retain((nodeId) => this.options.view.has(nodeId))
      void this.publish()
    }, intervalMs)
    this.timer.unref()
    void this.publish()
  }

  /** Tells the network this node is leaving, then stops publishing: before libp2p stops pubsub and
   * closes the connections, so the leaving heartbeat still goes out. */
  async beforeStop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.stopped = true
    clearInterval(this.timer)
    clearTimeout(this.soonTimer)
    for (const timer of this.askTimers) clearTimeout(timer)
    this.askTimers.clear()
    this.asking.clear()
    this.unsubscribeRegistry?.()
    const pubsub = this.components.pubsub
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    await this.send(true).catch((err: Error) => { this.options.log.debug({ err: err.message }, 'could not publish the leaving heartbeat') })
  }

  stop (): void {}

  /** Publishes the current heartbeat now. */
  async publish (): Promise<void> {
    if (this.stopped) return
    clearTimeout(this.soonTimer)
    this.soonTimer = undefined
    this.soonAt = Infinity
    this.lastPublished = Date.now()
    await this.send(false).catch((err: Error) => { this.options.log.warn({ err: err.message }, 'heartbeat publish failed') })
  }

  private changed (reason: ChangeReason): void {
    if (reason === 'busy') this.publishSoon(this.options.busyIntervalMs)
    else if (Date.now() - this.lastPublished >= MIN_PUBLISH_GAP_MS) void this.publish()
    else {
      // Only the network's copy waits for the gap: this node's own routing follows the change at once.
      if (!this.stopped) this.updateOwnEntry(this.projects(false), this.nodeType())
      this.publishSoon(MIN_PUBLISH_GAP_MS)
    }
  }

  private updateOwnEntry (projects: Heartbeat['projects'], nodeType: number): void {
    this.options.view.update({ nodeId: this.self, projects, nodeType, version: this.options.version, lastHeard: Date.now(), intervalMs: this.options.intervalMs })
  }

  /** Publishes once `gapMs` have passed since the last heartbeat, coalescing bursts into one heartbeat.
   * A pending publish that is due no later stays; otherwise it is brought forward. The last change of a
   * burst always goes out: the heartbeat is built when the timer fires. */
  private publishSoon (gapMs: number): void {
    if (this.stopped) return
    const due = Math.max(Date.now(), this.lastPublished + gapMs)
    if (this.soonTimer !== undefined && this.soonAt <= due + JITTER_MS) return
    // A little jitter keeps the answers of many nodes to one event from arriving all at once.
    const at = due + Math.floor(Math.random() * JITTER_MS)
    clearTimeout(this.soonTimer)
    this.soonAt = at
    this.soonTimer = setTimeout(() => { void this.publish() }, at - Date.now())
    this.soonTimer.unref()
  }

  private async send (leaving: boolean): Promise<void> {
    // Our own entry goes straight into the view: pubsub does not deliver our messages back to us.
    if (!leaving) this.updateOwnEntry(this.projects(false), this.nodeType())
    await this.components.pubsub.publish(this.options.topic, this.encode(leaving))
  }

  private projects (leaving: boolean): Heartbeat['projects'] {
    return leaving ? [] : this.options.registry.projects().map((p) => ({ project: p.project, models: p.models.map(({ model, cid, type, busy, available }) => ({ model, cid, type, busy, available })) }))
  }

  private nodeType (): number {
    return this.options.baseNodeType | (this.options.registry.hasModels() ? NODE_TYPE.MODEL : 0)
  }

  /** Our heartbeat as published on the topic. */
  private encode (leaving: boolean): Uint8Array {
    return encodeHeartbeat({ nodeId: this.self, version: this.options.version, nodeType: this.nodeType(), projects: this.projects(leaving), leaving, intervalMs: this.options.intervalMs })
  }

  private validate (peer: PeerId, message: PubSubMessage): TopicValidatorResult {
    const result = checkTopicMessage(message)
    // The router hands the same message object to 'message' listeners: receive() need not decode again.
    if (result.verdict === 'accept') this.checked.set(message, result)
    if (result.verdict === 'reject') {
      this.options.log.debug({ from: message.from?.toString(), via: peer.toString(), reason: result.reason }, 'rejected a topic message')
    }
    return result.verdict
  }

  /** A heartbeat from the topic, or (`synced`) one that a view sync passed on and that was checked. */
  private receive (message: SignedPubSubMessage, synced = false): void {
    if (message.topic !== this.options.topic) return
    const checked = this.checked.get(message) ?? checkTopicMessage(message)
    this.checked.delete(message)
    if (checked.heartbeat === undefined || checked.heartbeat.nodeId === this.self) return
    const heartbeat = checked.heartbeat
    // A node we have not heard of may not have heard of us either. One that speaks view sync got (or
    // gets) our heartbeat from the node it joined through; only one that does not (a Go node, an older
    // aicn) is answered with our heartbeat, and only by the nodes it is connected to.
    if (!synced && !heartbeat.leaving && !this.options.view.has(heartbeat.nodeId)) this.answerJoin(message.from)
    if (heartbeat.leaving) {
      this.signed.forget(heartbeat.nodeId)
      this.options.view.remove(heartbeat.nodeId)
      return
    }
    const now = Date.now()
    // A synced heartbeat counts from when its author signed it (never later than now), not from when
    // we got it: a replayed old entry cannot keep a gone node routable.
    const heardAt = synced ? Math.min(now, heartbeat.timestamp * 1000) : now
    const known = this.options.view.heard(heartbeat.nodeId)
    if (synced && known !== undefined && known.lastHeard >= heardAt) return
    this.signed.keep(heartbeat.nodeId, message)
    this.options.view.update({
      nodeId: heartbeat.nodeId,
      projects: heartbeat.projects,
      nodeType: heartbeat.nodeType,
      version: heartbeat.version,
      lastHeard: heardAt,
      // Routing holds each node to its own rhythm, announced (aicn) or learned (Go): src/registry/rhythm.ts.
      intervalMs: nextInterval(known, heardAt, heartbeat.intervalMs)
    })
  }

  /**
   * A peer that joins the topic without our having heard it, and that does not speak view sync (a Go node),
   * is asked once for its registrations, which enter the view as its heartbeat would (with the Go rhythm:
   * src/registry/rhythm.ts). The Go node's heartbeat at start goes out before its pubsub has a stream to
   * us, and its next one comes a HeartbeatInterval later (180 s by default), so a Go worker that just
   * started was not routable from here for up to three minutes. An aicn node needs none of this: it
   * announces itself when it joins and is passed on by view sync.
   */
  private askIfUnheard (peer: PeerId): void {
    const nodeId = peer.toString()
    const ask = this.ask
    if (ask === undefined || this.stopped || this.options.view.has(nodeId) || this.asking.has(nodeId) || this.asking.size >= MAX_ASKS) return
    this.asking.add(nodeId)
    const timer = setTimeout(() => {
      this.askTimers.delete(timer)
      void this.askNow(peer, ask).finally(() => { this.asking.delete(nodeId) })
    }, ASK_AFTER_MS)
    timer.unref()
    this.askTimers.add(timer)
  }

  private async askNow (peer: PeerId, ask: AskRegistrations): Promise<void> {
    const nodeId = peer.toString()
    const unheard = (): boolean => !this.stopped && !this.options.view.has(nodeId) && this.components.connectionManager.getConnections(peer).length > 0
    await this.components.peerStore.get(peer)
      .then(async (known) => {
        // No protocols: identify has not told us what it is (pubsub streams open only after it has).
        if (known.protocols.length === 0 || known.protocols.includes(VIEW_PROTOCOL)) return
        let res: protocol.AIProjectResponse.$Properties | undefined
        for (const waitMs of ASK_WAITS_MS) {
          if (!unheard()) return
          res = await ask(peer, waitMs).catch((err: Error) => {
            this.options.log.debug({ peer: nodeId, err: err.message }, 'a joining node did not tell its registrations')
            return undefined
          })
          if (res !== undefined) break
        }
        if (res === undefined || !unheard()) return
        const projects = projectsOf(res)
        const hasModels = projects.some((p) => p.models.length > 0)
        const agent = known.metadata?.get('AgentVersion')
        const now = Date.now()
        this.options.view.update({
          nodeId,
          projects,
          nodeType: (res.node_type ?? 0) | (hasModels ? NODE_TYPE.MODEL : 0),
          version: (res.version ?? '') !== '' ? res.version ?? '' : agent === undefined ? '' : decoder.decode(agent),
          lastHeard: now,
          intervalMs: nextInterval(undefined, now, res.heartbeat_interval_ms ?? undefined)
        })
        this.options.log.debug({ peer: nodeId, projects: projects.length }, 'asked a joining node that does not speak view sync for its registrations')
      })
      .catch((err: Error) => { this.options.log.debug({ peer: nodeId, err: err.message }, 'could not ask a joining node for its registrations') })
  }

  private answerJoin (author: PeerId | undefined): void {
    if (this.sync === undefined || author === undefined) { this.publishSoon(JOIN_COALESCE_MS); return }
    if (this.components.connectionManager.getConnections(author).length === 0) return
    this.components.peerStore.get(author)
      .then((peer) => { if (!peer.protocols.includes(VIEW_PROTOCOL)) this.publishSoon(JOIN_COALESCE_MS) })
      .catch(() => { this.publishSoon(JOIN_COALESCE_MS) })
  }

  /** Whether the view heard `nodeId` at or after the time the heartbeat in `data` was signed. */
  private heardSince (nodeId: string, data: Uint8Array): boolean {
    const known = this.options.view.heard(nodeId)
    if (known === undefined) return false
    try {
      const timestamp = Number(protocol.Message.decode(data).header?.timestamp ?? 0)
      return known.lastHeard >= timestamp * 1000
    } catch {
      return false
    }
  }
}

export interface TopicCheck { verdict: TopicValidatorResult, reason?: string, heartbeat?: Heartbeat }

/** The topic validator's rules, pure so they can be tested on their own. Messages other than heartbeats
 * (the Go node's broadcast requests and responses) are let through when they decode. */
export function checkTopicMessage (message: PubSubMessage): TopicCheck {
  if (message.type !== 'signed' || message.from === undefined) return { verdict: 'reject', reason: 'unsigned message' }
  if (message.data.byteLength > MAX_TOPIC_MESSAGE_BYTES) return { verdict: 'reject', reason: 'oversized message' }
  let decoded: protocol.Message
  try {
    decoded = protocol.Message.decode(message.data)
  } catch {
    return { verdict: 'reject', reason: 'not a protobuf Message' }
  }
  if (!isBroadcast(decoded)) return { verdict: 'accept' }
  // Over the view's cap (src/registry/view-types.ts) a heartbeat is not honest: refused before its models
  // are decoded, so that it is neither kept nor relayed to every other node (issue 19: 60,000 models in
  // 654 KB from each Sybil identity).
  if (decoded.type === protocol.MessageType.AI_PROJECT) {
    let models: number
    try {
      models = countAnnouncedModels(decoded.body)
    } catch (err) {
      return { verdict: 'reject', reason: (err as Error).message }
    }
    if (models > MAX_MODELS_PER_NODE) return { verdict: 'reject', reason: `heartbeat announcing ${models} models (at most ${MAX_MODELS_PER_NODE})` }
  }
  let heartbeat: Heartbeat
  try {
    heartbeat = decodeHeartbeat(decoded)
  } catch (err) {
    return { verdict: 'reject', reason: (err as Error).message }
  }
  if (heartbeat.nodeId !== message.from.toString()) return { verdict: 'reject', reason: 'heartbeat for another node' }
  return { verdict: 'accept', heartbeat }
}
