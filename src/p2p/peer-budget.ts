// What one peer may take of a worker through the job streams it opens (/aicn/job/*, /chat-proxy/0.0.1):
// streams in flight, bytes we hold for it (unfinished frames, frames its job has not read yet, a chat
// body read whole) and jobs per second. The limits hold per peer, over all its connections, and for the
// whole node. A peer over a limit gets the offending stream reset and a strike; enough strikes in a
// short time and every job stream of the peer is reset, its connections are closed and its new streams
// are refused for a while. Honest requesters stay far below every limit (docs/protocols.md, "Budgets").
//
// Pure bookkeeping with an injectable clock (test/unit/p2p/peer-budget.test.ts; the bucket and the strikes are
// src/core/rate-limit.ts's, shared with the topic's rate limits); the protocols hold a
// Lease per stream (src/protocols/job/job-protocol.ts, src/compat/chat-proxy/chat-proxy.ts) and the stream readers report what
// they hold through it (src/p2p/stream-inbox.ts).
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { StrikeRule, TokenBucketRule, type Bucket, type StrikeState } from '../core/rate-limit.ts'
import type { InboundJob, RunningJobs } from '../core/running-jobs.ts'
import type { Stream } from '@libp2p/interface'
import type { Registry } from 'prom-client'
import { registerScrapedGauges } from '../core/scraped-metrics.ts'

const KiB = 1024
const MiB = 1024 * KiB

export interface PeerBudgetOptions {
  /** job streams (both protocols) one peer may have open at once, over all its connections; default 128 */
  maxStreamsPerPeer?: number
  /** job streams of all peers at once; default 1024 */
  maxStreams?: number
  /** bytes held for one peer's streams; default 16 MiB */
  maxHeldBytesPerPeer?: number
  /** bytes held for all peers' streams; default 64 MiB */
  maxHeldBytes?: number
  /** jobs one peer may start per second, sustained; default 1000. An input node serving many clients
   * sends one worker hundreds of small jobs a second; this only stops floods of cheap streams. */
  jobsPerSecond?: number
  /** jobs one peer may start at once after a quiet spell; default 2000 */
  jobBurst?: number
  /** strikes within strikeWindowMs that put a peer in the penalty box; default 3 */
  strikes?: number
  /** default 60 s */
  strikeWindowMs?: number
  /** how long a penalised peer's job streams are refused; default 60 s */
  penaltyMs?: number
  /** called once when a peer is penalised (the node closes its connections) */
  onPenalty?: (peer: string, reason: string) => void
  /** for tests */
  now?: () => number
}

/** A stream went over a budget: it is reset. The code is the table's BUFFER (src/core/errors.ts). */
export class BudgetError extends AicnError {
  constructor (message: string) {
    super(ErrorCode.BUFFER, message)
    this.name = 'BudgetError'
  }
}

interface PeerState {
  streams: number
  held: number
  leases: Set<Lease>
  /** job starts */
  bucket: Bucket
  offences: StrikeState
}

export interface BudgetStats { streams: number, heldBytes: number, peers: number, penalised: number }

export class PeerBudgets {
  readonly maxStreamsPerPeer: number
  readonly maxStreams: number
  readonly maxHeldBytesPerPeer: number
  readonly maxHeldBytes: number
  private readonly jobStarts: TokenBucketRule
  private readonly strikes: StrikeRule
  private readonly onPenalty?: (peer: string, reason: string) => void
  private readonly now: () => number
  private readonly peers = new Map<string, PeerState>()
  private streams = 0
  private held = 0

  constructor (options: PeerBudgetOptions = {}) {
    this.maxStreamsPerPeer = options.maxStreamsPerPeer ?? 128
    this.maxStreams = options.maxStreams ?? 1024
    this.maxHeldBytesPerPeer = options.maxHeldBytesPerPeer ?? 16 * MiB
    this.maxHeldBytes = options.maxHeldBytes ?? 64 * MiB
    this.jobStarts = new TokenBucketRule(options.jobsPerSecond ?? 1000, options.jobBurst ?? 2000)
    this.strikes = new StrikeRule({ strikes: options.strikes ?? 3, windowMs: options.strikeWindowMs ?? 60_000, penaltyMs: options.penaltyMs ?? 60_000 })
    this.onPenalty = options.onPenalty
    this.now = options.now ?? Date.now
  }

  /** A lease for a new stream of `peer`, or the BudgetError to reset it with. `abort` ends the stream
   * when the peer is penalised later. */
  open (peer: string, abort: (err: Error) => void): Lease | BudgetError {
    const now = this.now()
    const state = this.state(peer, now)
    if (this.strikes.penalised(state.offences, now)) return new BudgetError(`peer ${peer} went over its budgets; its job streams are refused for a while`)
    // Refused without a strike: a busy input node may briefly have more jobs in flight to one worker; the
    // bytes it may hold are what bound the memory.
    if (state.streams >= this.maxStreamsPerPeer) return new BudgetError(`peer ${peer} has ${state.streams} job streams open, the limit is ${this.maxStreamsPerPeer}`)
    if (this.streams >= this.maxStreams) return new BudgetError(`this node has ${this.streams} job streams open, the limit is ${this.maxStreams}`)
    state.streams++
    this.streams++
    const lease = new Lease(this, peer, state, abort)
    state.leases.add(lease)
    return lease
  }

  stats (): BudgetStats {
    const now = this.now()
    let penalised = 0
    for (const state of this.peers.values()) if (this.strikes.penalised(state.offences, now)) penalised++
    return { streams: this.streams, heldBytes: this.held, peers: this.peers.size, penalised }
  }

  /** What one peer holds now. */
  usage (peer: string): { streams: number, heldBytes: number } {
    const state = this.peers.get(peer)
    return { streams: state?.streams ?? 0, heldBytes: state?.held ?? 0 }
  }

  /** True while `peer` is in the penalty box. */
  penalised (peer: string): boolean {
    const state = this.peers.get(peer)
    return state !== undefined && this.strikes.penalised(state.offences, this.now())
  }

  /** @internal Lease: changes what the lease holds by `delta`; a BudgetError when an increase would go
   * over a limit (nothing is changed then). */
  adjust (peer: string, state: PeerState, delta: number): BudgetError | undefined {
    if (delta > 0) {
      if (state.held + delta > this.maxHeldBytesPerPeer) {
        return this.refuse(peer, state, `peer ${peer} would hold ${state.held + delta} bytes on this node, the limit is ${this.maxHeldBytesPerPeer}`)
      }
      if (this.held + delta > this.maxHeldBytes) return new BudgetError(`this node holds ${this.held} bytes for job streams, the limit is ${this.maxHeldBytes}`)
    }
    state.held += delta
    this.held += delta
    return undefined
  }

  /** @internal Lease: takes a job start from the peer's bucket. */
  startJob (peer: string, state: PeerState): BudgetError | undefined {
    if (this.jobStarts.take(state.bucket, 1, this.now())) return undefined
    return this.refuse(peer, state, `peer ${peer} starts jobs faster than ${this.jobStarts.rate} per second`)
  }

  /** @internal Lease: the stream ended. */
  closed (peer: string, state: PeerState, lease: Lease, held: number): void {
    if (!state.leases.delete(lease)) return
    state.streams--
    this.streams--
    state.held -= held
    this.held -= held
    this.forgetIfQuiet(peer, state)
  }

  /** Over a per-peer budget: a strike, and the error to reset the stream with. */
  private refuse (peer: string, state: PeerState, message: string): BudgetError {
    const err = new BudgetError(message)
    if (this.strikes.strike(state.offences, this.now())) {
      // Every stream of the peer goes, not only the one that tripped the limit. Aborting runs the
      // streams' own clean-up, which closes their leases.
      for (const lease of [...state.leases]) lease.abort(new BudgetError(`peer ${peer} went over its budgets: ${message}`))
      this.onPenalty?.(peer, message)
    }
    return err
  }

  private state (peer: string, now: number): PeerState {
    let state = this.peers.get(peer)
    if (state === undefined) {
      state = { streams: 0, held: 0, leases: new Set(), bucket: this.jobStarts.full(now), offences: this.strikes.fresh() }
      this.peers.set(peer, state)
      // A bound on the table itself: peers without streams, strikes or a penalty are dropped.
      if (this.peers.size > 4 * this.maxStreams) this.sweep(now)
    }
    return state
  }

  private forgetIfQuiet (peer: string, state: PeerState): void {
    const now = this.now()
    // A peer with a full bucket and no strikes or penalty is indistinguishable from a new one.
    const { offences } = state
    const full = this.jobStarts.available(state.bucket, now) >= this.jobStarts.burst
    if (state.streams === 0 && offences.penalisedUntil <= now && offences.strikes.length === 0 && full) this.peers.delete(peer)
  }

  private sweep (now: number): void {
    for (const [peer, state] of this.peers) {
      const quiet = this.strikes.forgetOld(state.offences, now)
      if (state.streams === 0 && quiet) this.peers.delete(peer)
    }
  }
}

/** One stream's share of its peer's budget. Closed exactly once, on every path, by the stream's owner. */
export class Lease {
  readonly peer: string
  private readonly budgets: PeerBudgets
  private readonly state: PeerState
  private readonly onAbort: (err: Error) => void
  /** bytes the stream's reader holds */
  private inbox = 0
  /** bytes taken out of the reader and still held (a chat body read whole) */
  private kept = 0
  private closedFlag = false

  constructor (budgets: PeerBudgets, peer: string, state: PeerState, abort: (err: Error) => void) {
    this.budgets = budgets
    this.peer = peer
    this.state = state
    this.onAbort = abort
  }

  /** The reader now holds `bytes`; a BudgetError when that is over a limit. */
  hold (bytes: number): BudgetError | undefined {
    if (this.closedFlag) return undefined
    const err = this.budgets.adjust(this.peer, this.state, bytes - this.inbox)
    if (err === undefined) this.inbox = bytes
    return err
  }

  /** `bytes` more are held outside the reader until the lease closes. */
  keep (bytes: number): BudgetError | undefined {
    if (this.closedFlag) return undefined
    const err = this.budgets.adjust(this.peer, this.state, bytes)
    if (err === undefined) this.kept += bytes
    return err
  }

  /** A job starts on the stream: a BudgetError when the peer starts jobs too fast. */
  startJob (): BudgetError | undefined {
    if (this.closedFlag) return undefined
    return this.budgets.startJob(this.peer, this.state)
  }

  /** @internal PeerBudgets: the peer was penalised. */
  abort (err: Error): void {
    this.onAbort(err)
    this.close()
  }

  close (): void {
    if (this.closedFlag) return
    this.closedFlag = true
    this.budgets.closed(this.peer, this.state, this, this.inbox + this.kept)
    this.inbox = 0
    this.kept = 0
  }
}

/** The budgets the config asks for (`Jobs.PeerStreams` … `Jobs.PeerJobBurst`, docs/config.md). */
export function budgetOptions (jobs: { PeerStreams: number, NodeStreams: number, PeerHeldBytes: number, NodeHeldBytes: number, PeerJobRate: number, PeerJobBurst: number }): PeerBudgetOptions {
  return {
    maxStreamsPerPeer: jobs.PeerStreams,
    maxStreams: jobs.NodeStreams,
    maxHeldBytesPerPeer: jobs.PeerHeldBytes,
    maxHeldBytes: jobs.NodeHeldBytes,
    jobsPerSecond: jobs.PeerJobRate,
    jobBurst: jobs.PeerJobBurst
  }
}

/** Budgets with the defaults whose penalty closes the peer's connections (the node's one set is made in
 * src/node/node.ts and shared by the job protocol and the chat-proxy server). */
export function defaultBudgets (host: { hangUp: (peer: PeerId) => Promise<void> }, log: Logger, options: PeerBudgetOptions = {}): PeerBudgets {
  return new PeerBudgets({
    ...options,
    onPenalty: (peer, reason) => {
      log.info({ peer, reason }, 'peer went over its job budgets: its connections are closed and its job streams refused for a while')
      let id: PeerId
      try {
        id = peerIdFromString(peer)
      } catch {
        return
      }
      host.hangUp(id).catch(() => {})
    }
  })
}

/** Gauges of the budgets on the node's metrics (`/api/v0/debug/metrics/prometheus`): job streams and
 * bytes held for peers, and peers in the penalty box; read when scraped. */
export function registerBudgetMetrics (budgets: PeerBudgets, registry: Registry): void {
  registerScrapedGauges(registry, [
    ['aicn_job_streams_inbound', 'job streams (job protocol and chat-proxy) other peers have open on this node', () => budgets.stats().streams],
    ['aicn_job_held_bytes', 'bytes held for other peers\' job streams (unfinished frames, unread frames, chat bodies)', () => budgets.stats().heldBytes],
    ['aicn_job_peers_penalised', 'peers whose job streams are refused for going over their budgets', () => budgets.stats().penalised]
  ])
}

/** Serves one inbound job stream (the job protocol, the Go node's chat-proxy) within its peer's budgets:
 * refused and reset when the peer is over them; else run by `running`, the lease released on every path. */
export function serveWithinBudget (stream: Stream, peer: string, how: { budgets: PeerBudgets, running: RunningJobs, log: Logger, what: string },
  serve: (job: InboundJob, lease: Lease) => Promise<void>): void {
  const { budgets, running, log, what } = how
  const lease = budgets.open(peer, (err) => { stream.abort(err) })
  if (lease instanceof BudgetError) {
    log.debug({ err: lease.message, peer }, `${what} stream refused`)
    stream.abort(lease)
    return
  }
  running.serve(stream, async (job) => {
    try {
      await serve(job, lease)
    } finally {
      lease.close()
    }
  }, (err) => {
    log.debug({ err: err.message, peer }, `${what} stream failed`)
  })
}
