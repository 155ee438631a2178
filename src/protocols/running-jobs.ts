// The jobs a stream protocol is carrying, both ways, so that stopping the node can end them with an
// error their other side sees instead of cutting them silently. Shared by the job protocol and the Go
// node's chat-proxy tunnel.
import type { Stream } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../errors.ts'

/** How long running jobs get to end after they were told the node is stopping. */
const STOP_GRACE_MS = 2_000

export interface InboundJob { stream: Stream, controller: AbortController, done: Promise<void> }

export class RunningJobs {
  readonly inbound = new Set<InboundJob>()
  readonly outbound = new Set<AbortController>()

  /** Serves an incoming stream as one job, tracked until it ends; a failure aborts the stream (after
   * `onFailure` has logged it) and never reaches the caller: the node keeps serving. */
  serve (stream: Stream, run: (job: InboundJob) => Promise<void>, onFailure: (err: Error) => void): void {
    const job: InboundJob = { stream, controller: new AbortController(), done: Promise.resolve() }
    this.inbound.add(job)
    job.done = run(job)
      .catch((err: Error) => {
        onFailure(err)
        stream.abort(err)
      })
      .finally(() => { this.inbound.delete(job) })
  }

  /** Aborts every job with "node … is stopping", waits a moment for them to end, then resets the rest. */
  async stopAll (selfId: string): Promise<void> {
    const stopping = new AicnError(ErrorCode.STREAM, `node ${selfId} is stopping`)
    for (const controller of this.outbound) controller.abort(stopping)
    const running = [...this.inbound]
    if (running.length === 0) return
    for (const job of running) job.controller.abort(stopping)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.allSettled(running.map(async (job) => await job.done)),
      new Promise((resolve) => { timer = setTimeout(resolve, STOP_GRACE_MS) })
    ])
    clearTimeout(timer)
    for (const job of this.inbound) job.stream.abort(stopping)
  }
}
