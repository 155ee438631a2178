// Runs a job on a model registered on this node: picks the container, counts it busy for the job's
// whole life (feeding the coalesced heartbeat), calls the model server within the job's deadline, and
// hands back the answer as it streams.
import { AicnError, ErrorCode } from '../errors.ts'
import type { ModelClient } from '../models/client.ts'
import type { LocalRegistry } from '../registry/local.ts'
import type { JobRequest, JobResponse } from './types.ts'
import { finishing } from './iterables.ts'

const KIND_NAMES = ['chat', 'text-to-image', 'image edit', 'embeddings', 'text completion']

export class LocalExecutor {
  private readonly registry: LocalRegistry
  private readonly client: ModelClient
  private readonly nodeId: string

  constructor (deps: { registry: LocalRegistry, client: ModelClient, nodeId: string }) {
    this.registry = deps.registry
    this.client = deps.client
    this.nodeId = deps.nodeId
  }

  /** A JobRunner for this node's own models. */
  readonly run = async (request: JobRequest, signal: AbortSignal): Promise<JobResponse> => {
    const { head } = request
    const model = this.registry.find(head.project, head.model, head.cid)
    if (model === undefined) {
      const what = `model "${head.model}" of project "${head.project}"${head.cid === '' ? '' : ` with cid "${head.cid}"`}`
      throw new AicnError(ErrorCode.MODEL, `${what} is not served by node ${this.nodeId}`, { status: 404 })
    }
    if (model.type !== head.kind) {
      throw new AicnError(ErrorCode.PARAM, `model "${head.model}" is a ${KIND_NAMES[model.type] ?? 'unknown'} model, not a ${KIND_NAMES[head.kind]} model`)
    }
    const remaining = head.deadline - Date.now()
    if (remaining <= 0) throw new AicnError(ErrorCode.TIMEOUT, 'the job\'s deadline passed before it started')

    const call = new ModelCallSignal(signal, remaining)
    const release = this.registry.acquire(model)
    const done = (): void => {
      call.dispose()
      release()
    }
    try {
      const answer = await this.client.call({
        url: model.api,
        contentType: head.contentType,
        body: request.body,
        signal: call.signal,
        headersTimeoutMs: remaining
      })
      return {
        status: answer.status,
        contentType: answer.contentType,
        nodeId: this.nodeId,
        cid: model.cid,
        body: finishing(answer.body, done, (err) => bodyError(err, signal, call.timedOut))
      }
    } catch (err) {
      done()
      throw err
    }
  }
}

/** The model call's signal: the job's, or the deadline's (a TimeoutError, as AbortSignal.timeout gives).
 * One controller and one timer instead of AbortSignal.any and AbortSignal.timeout, which cost more than
 * the rest of a small job's local bookkeeping together. */
class ModelCallSignal {
  private readonly controller = new AbortController()
  private readonly job: AbortSignal
  private readonly timer: NodeJS.Timeout
  timedOut = false

  constructor (job: AbortSignal, ms: number) {
    this.job = job
    this.timer = setTimeout(() => {
      this.timedOut = true
      this.controller.abort(new DOMException('the job\'s deadline passed', 'TimeoutError'))
    }, ms).unref()
    if (job.aborted) this.onAbort()
    else job.addEventListener('abort', this.onAbort, { once: true })
  }

  get signal (): AbortSignal {
    return this.controller.signal
  }

  dispose (): void {
    clearTimeout(this.timer)
    this.job.removeEventListener('abort', this.onAbort)
  }

  private readonly onAbort = (): void => {
    this.controller.abort(this.job.reason)
  }
}

/** Why the model's answer broke off: an error the job was aborted with (e.g. the job protocol's own
 * timeout) is kept as it is; our deadline is a timeout; anything else is the model's fault. */
function bodyError (err: unknown, signal: AbortSignal, timedOut: boolean): AicnError {
  if (err instanceof AicnError) return err
  if (signal.aborted && signal.reason instanceof AicnError) return signal.reason
  if (timedOut) return new AicnError(ErrorCode.TIMEOUT, 'the model did not finish before the job\'s deadline')
  return new AicnError(ErrorCode.MODEL, `the model's answer broke off: ${(err as Error).message}`)
}
