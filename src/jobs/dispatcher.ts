// Sends a job where it must run: to a named node (this one runs it on its own model, any other gets it
// over the job protocol), or, by project and model, to the best node the selector finds, trying the next
// one when a node fails before the first byte of its answer.
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { parsePeerId } from '../p2p/peer-id.ts'
import type { NetworkRegistry } from '../protocols/network.ts'
import { WholeBody, discard, finishing } from '../core/iterables.ts'
import type { LocalExecutor } from './local.ts'
import { isRetryable, type NodeSelector } from './selector.ts'
import type { JobHead, JobResponse, JobSender } from '../core/job-types.ts'
import type { JobRecord, NodeMetrics } from '../metrics/node-metrics.ts'
import type { ProjectPeer } from '../protocols/network.ts'

/** A job's body: bytes that can be sent again to another node, or a one-shot stream (an upload). */
export type JobBody = { bytes: Uint8Array } | { stream: AsyncIterable<Uint8Array> }

export interface Job { head: JobHead, body: JobBody }

/** How many nodes the router asks for before choosing. */
const CANDIDATES = 100

export class JobDispatcher {
  private readonly selfId: string
  private readonly local: LocalExecutor
  private readonly remote: JobSender
  private readonly selector: NodeSelector
  private readonly network: NetworkRegistry
  private readonly log: Logger
  private readonly metrics: NodeMetrics | undefined

  constructor (deps: { selfId: string, local: LocalExecutor, remote: JobSender, selector: NodeSelector, network: NetworkRegistry, log: Logger, metrics?: NodeMetrics }) {
    this.selfId = deps.selfId
    this.local = deps.local
    this.remote = deps.remote
    this.selector = deps.selector
    this.network = deps.network
    this.log = deps.log
    this.metrics = deps.metrics
  }

  /** Runs the job on the given node. */
  async toNode (nodeId: string, job: Job, signal: AbortSignal): Promise<JobResponse> {
    const record = this.metrics?.begin(job.head)
    try {
      const response = await this.run(nodeId, job, signal)
      return record?.answered(response, response.nodeId === this.selfId ? 'local' : 'remote') ?? response
    } catch (err) {
      record?.failed(err, signal.aborted, false)
      throw err
    }
  }

  /** Runs the job on a node that serves its project and model; `direct` keeps relay-only nodes out
   * (streams and uploads need a direct connection). */
  async toProject (job: Job, signal: AbortSignal, options: { direct: boolean }): Promise<JobResponse> {
    const record = this.metrics?.begin(job.head)
    const state = { known: false }
    try {
      const response = await this.tryNodes(job, signal, options, record, state)
      return record?.answered(response, response.nodeId === this.selfId ? 'local' : 'remote') ?? response
    } catch (err) {
      record?.failed(err, signal.aborted, state.known)
      throw err
    }
  }

  private async run (nodeId: string, job: Job, signal: AbortSignal): Promise<JobResponse> {
    const request = { head: job.head, body: bodyOf(job.body) }
    if (nodeId === this.selfId) return await this.local.run(request, signal)
    return await this.remote.run(parsePeerId(nodeId), request, signal)
  }

  private async tryNodes (job: Job, signal: AbortSignal, options: { direct: boolean }, record: JobRecord | undefined, state: { known: boolean }): Promise<JobResponse> {
    const { project, model } = job.head
    const candidates = this.network.peers(project, model, CANDIDATES, job.head.kind)
    let plan = this.selector.plan(candidates, { direct: options.direct, self: this.selfId })
    // Nobody announces the model as up, but this node serves it with its server marked down: try it once
    // anyway. The health probe may be seconds behind a server that just came back (issue 15).
    if (plan.length === 0 && this.local.serves?.(project, model, job.head.kind) === true) plan = [selfPeer(this.selfId)]
    // The same for another node: its last heartbeat said its model server was down, which the next one
    // (probes retry within seconds) may already contradict. One try, on the best-placed such node.
    if (plan.length === 0) plan = this.selector.plan(this.network.downPeers?.(project, model, CANDIDATES) ?? [], { direct: options.direct, self: this.selfId }).slice(0, 1)
    if (plan.length === 0) throw new AicnError(ErrorCode.NO_NODE, `no reachable node serves model "${model}" of project "${project}"`)
    state.known = true

    const consumed = { started: false }
    const body = 'bytes' in job.body ? job.body : { stream: watchStart(job.body.stream, consumed) }
    let lastError: unknown
    for (const [attempt, candidate] of plan.entries()) {
      // An upload can only be sent once: after its first byte left, there is nothing to retry with.
      if (attempt > 0 && consumed.started) break
      const release = this.selector.started(candidate.node_id)
      try {
        const response = await this.run(candidate.node_id, { head: { ...job.head, cid: candidate.cid }, body }, signal)
        // Before the first byte, a dead or overloaded model server (unreachable, 5xx, 429) and a node that no
        // longer serves the model (404 error head) are worth another node; a model's own 4xx answer is not.
        const failedEarly = response.status >= 500 || response.status === 429 || (response.error !== undefined && response.status === 404)
        if (failedEarly && attempt < plan.length - 1 && !consumed.started) {
          this.failed(candidate.node_id)
          record?.failover()
          release()
          await discard(response.body)
          lastError = new AicnError(response.error?.code ?? ErrorCode.MODEL, response.error?.message ?? `HTTP ${response.status}`)
          this.log.debug({ node: candidate.node_id, status: response.status }, 'node failed before answering; trying the next')
          continue
        }
        if (failedEarly) this.failed(candidate.node_id)
        else this.selector.succeeded(candidate.node_id)
        return { ...response, body: finishing(response.body, release) }
      } catch (err) {
        release()
        lastError = err
        if (signal.aborted || !(isRetryable(err) || notServedHere(err))) throw err
        this.failed(candidate.node_id)
        if (attempt < plan.length - 1) record?.failover()
        this.log.debug({ node: candidate.node_id, err: (err as Error).message }, 'node failed before answering; trying the next')
      }
    }
    throw lastError ?? new AicnError(ErrorCode.NO_NODE, `no node could run model "${model}" of project "${project}"`)
  }

  private failed (nodeId: string): void {
    this.selector.failed(nodeId)
    this.metrics?.cooldown()
  }
}

function selfPeer (nodeId: string): ProjectPeer {
  return { node_id: nodeId, connectivity: 1, latency: 0, Idle: 0, cid: '' }
}

/** The view said the node serves the model, but the node says it does not (it changed meanwhile). */
function notServedHere (err: unknown): boolean {
  return err instanceof AicnError && err.code === ErrorCode.MODEL && err.status === 404
}

function bodyOf (body: JobBody): AsyncIterable<Uint8Array> {
  return 'bytes' in body ? new WholeBody(body.bytes) : body.stream
}

async function * watchStart (stream: AsyncIterable<Uint8Array>, consumed: { started: boolean }): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) {
    consumed.started = true
    yield chunk
  }
}
