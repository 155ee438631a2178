// The jobs a stream protocol is carrying, both ways, so that stopping the node can end them with an
// error their other side sees instead of cutting them silently. Shared by the job protocol and the Go
// node's chat-proxy tunnel.
import type { Stream } from '@libp2p/interface'
import { AicnError, ErrorCode, isAicnError } from './errors.ts'
import type { JobHead } from './job-types.ts'
import { jobDeadline } from './deadlines.ts'

/** How long running jobs get to end after they were told the node is stopping. */
const STOP_GRACE_MS = 2_000

export interface InboundJob {
  stream: Stream
  /** ends the job the stream carries now (a reused stream gets a new one for each job) */
  controller: AbortController
  done: Promise<void>
}

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

  /** Tracks a job this node sends to `node`. Everything that ends it from this side goes through the one
   * controller returned: the caller's signal, the job's deadline (plus `graceMs`, the time the worker has
   * to report it), and stopAll(). Call `release` once the job is over. */
  sendTo (node: string, head: JobHead, signal: AbortSignal, graceMs: number): { controller: AbortController, release: () => void } {
    const controller = new AbortController()
    const onCallerAbort = (): void => { controller.abort(cancelError(node, head.deadline, signal.reason)) }
    signal.addEventListener('abort', onCallerAbort, { once: true })
    const timer = setTimeout(() => {
      controller.abort(new AicnError(ErrorCode.TIMEOUT, `node ${node} did not finish the job before its deadline`))
    }, jobDeadline(head.deadline, head.kind) - Date.now() + graceMs)
    this.outbound.add(controller)
    const release = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onCallerAbort)
      this.outbound.delete(controller)
    }
    return { controller, release }
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

/** Why the caller's signal ended a job sent to `node`: its deadline, or the client went away. */
export function cancelError (node: string, deadline: number, reason: unknown): AicnError {
  if (isAicnError(reason)) return reason
  if ((deadline > 0 && Date.now() >= deadline) || (reason as Error | undefined)?.name === 'TimeoutError') {
    return new AicnError(ErrorCode.TIMEOUT, `the job to node ${node} ran past its deadline`)
  }
  return new AicnError(ErrorCode.STREAM, 'cancelled')
}
