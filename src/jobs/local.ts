// Runs a job on a model registered on this node: picks the container, counts it busy for the job's
// whole life (feeding the coalesced heartbeat), calls the model server within the job's deadline, and
// hands back the answer as it streams.
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { ModelClient } from '../models/client.ts'
import type { LocalModel, LocalRegistry } from '../registry/local.ts'
import type { JobRequest, JobResponse } from '../core/job-types.ts'
import { finishing } from '../core/iterables.ts'
import { boundAnswer } from '../core/answer-bounds.ts'

const KIND_NAMES = ['chat', 'text-to-image', 'image edit', 'embeddings', 'text completion']

export class LocalExecutor {
  private readonly registry: LocalRegistry
  private readonly client: ModelClient
  private readonly nodeId: string

  private readonly onAnswer: ((model: LocalModel, answered: boolean) => void) | undefined

  /** `onAnswer` hears whether a model's server answered a job (node.ts: a model marked down that just
   * answered is probed again at once, so it is announced as up without waiting for its next probe). */
  constructor (deps: { registry: LocalRegistry, client: ModelClient, nodeId: string, onAnswer?: (model: LocalModel, answered: boolean) => void }) {
    this.registry = deps.registry
    this.client = deps.client
    this.nodeId = deps.nodeId
    this.onAnswer = deps.onAnswer
  }

  /** Whether this node has the model registered for this kind of job, whatever its health. */
  serves (project: string, model: string, kind: number): boolean {
    const found = this.registry.find(project, model)
    return found !== undefined && found.type === kind
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

    const release = this.registry.acquire(model)
    try {
      const answer = await this.client.call({ url: model.api, contentType: head.contentType, body: request.body, signal, timeoutMs: remaining })
      this.onAnswer?.(model, true)
      return {
        status: answer.status,
        contentType: answer.contentType,
        nodeId: this.nodeId,
        cid: model.cid,
        body: finishing(boundAnswer(answer.body, answer.contentType, head.kind, true), release, (err) => bodyError(err, signal))
      }
    } catch (err) {
      release()
      throw err
    }
  }
}

/** Why the model's answer broke off: an error the job was aborted with (e.g. the job protocol's own
 * timeout, or the model client's deadline) is kept as it is; anything else is the model's fault. */
function bodyError (err: unknown, signal: AbortSignal): AicnError {
  if (err instanceof AicnError) return err
  if (signal.aborted && signal.reason instanceof AicnError) return signal.reason
  return new AicnError(ErrorCode.MODEL, `the model's answer broke off: ${(err as Error).message}`)
}

