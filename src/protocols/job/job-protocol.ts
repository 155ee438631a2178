// The job protocol: a job (chat, image, embedding request) travels to the node that serves its model, and
// the answer streams back chunk by chunk as the model produces it. Wire format: proto/job.proto; framing
// and flow control: job-frames.ts; the two sides: job-requester.ts and job-worker.ts.
import type { PeerId, Startable } from '@libp2p/interface'
import type { JobRequest, JobResponse, JobRunner } from '../../core/job-types.ts'
import type { Logger } from '../../core/logger.ts'
import { handleAll, unhandleAll, type ProtocolComponents } from '../../p2p/components.ts'
import { JOB_PROTOCOLS } from './job-common.ts'
import { JobRequester } from './job-requester.ts'
import { serveStream, type WorkerLimits } from './job-worker.ts'
import { RunningJobs } from '../../core/running-jobs.ts'
import { defaultBudgets, serveWithinBudget, type PeerBudgets } from '../../p2p/peer-budget.ts'

export { JOB_PROTOCOL, JOB_PROTOCOL_1_0, JOB_PROTOCOLS } from './job-common.ts'

export interface JobProtocolOptions {
  log: Logger
  /** default 1 MiB: a larger frame is a protocol error */
  maxFrameBytes?: number
  /** default 64 KiB: request/response bodies are cut into frames of at most this */
  chunkBytes?: number
  /** default 256 concurrent job streams per connection */
  maxInboundStreams?: number
  /** default 8 MiB: a request body larger than this is refused (BUFFER, status 413); JSON jobs are far
   * smaller (the HTTP API takes 1 MiB) */
  maxRequestBytes?: number
  /** default 64 MiB: the same for image edits (multipart uploads) */
  maxUploadBytes?: number
  /** default 30 s: a stream kept for later jobs is closed after this long unused */
  idleStreamMs?: number
  /** default 5 s: a requester has this long for its first head on a new stream */
  headTimeoutMs?: number
  /** default 5 s: a frame whose first bytes arrived must be complete within this */
  frameMs?: number
  /** default 10 s: a request body being read must bring its next frame within this, and the rest of a
   * body that the worker answered before reading it must come within this */
  bodyIdleMs?: number
  /** what each peer may take of this node (streams, held bytes, job rate); shared with the chat-proxy
   * server. Default: budgets of its own that close a penalised peer's connections. */
  budgets?: PeerBudgets
  /** false: serve no jobs (a node in Go-wire mode speaks only the Go node's protocols); sending still
   * works. Default true. */
  serve?: boolean
}

/** What the job protocol takes from libp2p (src/p2p/components.ts). */
export type JobComponents = ProtocolComponents

const KiB = 1024
const MiB = 1024 * KiB

export class JobProtocol implements Startable {
  private readonly components: JobComponents
  private readonly serves: boolean
  private serving = false
  private readonly log: Logger
  private readonly selfId: string
  private readonly maxStreams: number
  private readonly limits: WorkerLimits
  private readonly running = new RunningJobs()
  private readonly requester: JobRequester
  private readonly budgets: PeerBudgets
  private execute?: JobRunner

  constructor (components: JobComponents, options: JobProtocolOptions) {
    this.components = components
    this.serves = options.serve ?? true
    this.log = options.log
    this.selfId = components.peerId.toString()
    const maxFrameBytes = options.maxFrameBytes ?? MiB
    // A body frame adds at most 11 bytes to its chunk; keep it within what the peer accepts.
    const chunkBytes = Math.max(1, Math.min(options.chunkBytes ?? 64 * KiB, maxFrameBytes - 16))
    const frames = { maxFrameBytes, highWaterBytes: 4 * chunkBytes }
    this.maxStreams = options.maxInboundStreams ?? 256
    this.limits = {
      frames: { ...frames, frameMs: options.frameMs ?? 5_000 },
      chunkBytes,
      maxRequestBytes: options.maxRequestBytes ?? 8 * MiB,
      maxUploadBytes: options.maxUploadBytes ?? 64 * MiB,
      headTimeoutMs: options.headTimeoutMs ?? 5_000,
      bodyIdleMs: options.bodyIdleMs ?? 10_000
    }
    this.budgets = options.budgets ?? defaultBudgets({ hangUp: async (peer) => { await components.connectionManager.closeConnections(peer) } }, this.log)
    this.requester = new JobRequester(components.connectionManager, this.running, { frames, chunkBytes, maxStreams: this.maxStreams, idleStreamMs: options.idleStreamMs })
  }

  readonly [Symbol.toStringTag] = '@aicn/job'

  /** Incoming jobs run with `execute` (this node's own models: a job from the network is never
   * forwarded). Set it before the node starts; until then a job stream is refused. */
  serveWith (execute: JobRunner): void {
    this.execute = execute
  }

  /** Called by libp2p as the node starts, before it listens: the handler is in place for the first
   * identify our peers get. */
  async start (): Promise<void> {
    if (!this.serves || this.serving) return
    this.serving = true
    await handleAll(this.components.registrar, JOB_PROTOCOLS, (stream, connection) => {
      const serve = this.execute
      if (serve === undefined) {
        stream.abort(new Error('this node does not serve jobs any more'))
        return
      }
      // Garbage, a requester that went away, a broken stream: the job is over, the node keeps serving.
      serveWithinBudget(stream, connection.remotePeer.toString(), { budgets: this.budgets, running: this.running, log: this.log, what: 'job' },
        async (job, lease) => { await serveStream(job, serve, this.selfId, this.limits, lease) })
    }, {
      maxInboundStreams: this.maxStreams,
      maxOutboundStreams: this.maxStreams,
      // Small jobs may go through a relay; the dispatcher keeps streams and uploads on direct connections.
      runOnLimitedConnection: true
    })
  }

  /** libp2p calls this before it closes any connection: running jobs end with an error their other side
   * still receives. */
  async beforeStop (): Promise<void> {
    await this.stop()
  }

  /** Stops serving; running jobs (both ways) end with "node is stopping", idle streams close. */
  async stop (): Promise<void> {
    this.execute = undefined
    if (this.serving) {
      this.serving = false
      await unhandleAll(this.components.registrar, JOB_PROTOCOLS).catch(() => {})
    }
    this.requester.close()
    await this.running.stopAll(this.selfId)
  }

  /** Sends a job to `peer`; resolves when the response head arrives, with the body still streaming. */
  async run (peer: PeerId, request: JobRequest, signal: AbortSignal): Promise<JobResponse> {
    return await this.requester.run(peer, request, signal)
  }

  /** Streams kept open for later jobs (for tests and metrics). */
  get idleStreams (): number {
    return this.requester.idleStreams
  }
}
