// The job protocol: a job (chat, image, embedding request) travels to the node that serves its model, and
// the answer streams back chunk by chunk as the model produces it. Wire format: proto/job.proto; framing
// and flow control: job-frames.ts; the two sides: job-requester.ts and job-worker.ts.
import type { PeerId } from '@libp2p/interface'
import type { JobRequest, JobResponse, JobRunner } from '../../core/job-types.ts'
import type { Logger } from '../../core/logger.ts'
import type { Host } from '../../p2p/host.ts'
import { JOB_PROTOCOLS } from './job-common.ts'
import { JobRequester } from './job-requester.ts'
import { serveStream, type WorkerLimits } from './job-worker.ts'
import { RunningJobs } from '../../core/running-jobs.ts'
import { BudgetError, defaultBudgets, type PeerBudgets } from '../../p2p/peer-budget.ts'

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
}

const KiB = 1024
const MiB = 1024 * KiB

export class JobProtocol {
  private readonly host: Host
  private readonly log: Logger
  private readonly selfId: string
  private readonly maxStreams: number
  private readonly limits: WorkerLimits
  private readonly running = new RunningJobs()
  private readonly requester: JobRequester
  private readonly budgets: PeerBudgets
  private execute?: JobRunner

  constructor (host: Host, options: JobProtocolOptions) {
    this.host = host
    this.log = options.log
    this.selfId = host.peerId.toString()
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
    this.budgets = options.budgets ?? defaultBudgets(host, this.log)
    this.requester = new JobRequester(host, this.running, { frames, chunkBytes, maxStreams: this.maxStreams, idleStreamMs: options.idleStreamMs })
  }

  /** Serves incoming jobs with `execute` (this node's own models: a job from the network is never forwarded). */
  async start (execute: JobRunner): Promise<void> {
    this.execute = execute
    await this.host.handle(JOB_PROTOCOLS, (stream, connection) => {
      const serve = this.execute
      if (serve === undefined) {
        stream.abort(new Error('this node does not serve jobs any more'))
        return
      }
      const peer = connection.remotePeer.toString()
      const lease = this.budgets.open(peer, (err) => { stream.abort(err) })
      if (lease instanceof BudgetError) {
        this.log.debug({ err: lease.message, peer }, 'job stream refused')
        stream.abort(lease)
        return
      }
      // Garbage, a requester that went away, a broken stream: the job is over, the node keeps serving.
      this.running.serve(stream, async (job) => {
        try {
          await serveStream(job, serve, this.selfId, this.limits, lease)
        } finally {
          lease.close()
        }
      }, (err) => {
        this.log.debug({ err: err.message, peer }, 'job stream failed')
      })
    }, {
      maxInboundStreams: this.maxStreams,
      maxOutboundStreams: this.maxStreams,
      // Small jobs may go through a relay; the dispatcher keeps streams and uploads on direct connections.
      runOnLimitedConnection: true
    })
  }

  /** Stops serving; running jobs (both ways) end with "node is stopping", idle streams close. */
  async stop (): Promise<void> {
    this.execute = undefined
    await this.host.unhandle(JOB_PROTOCOLS).catch(() => {})
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
