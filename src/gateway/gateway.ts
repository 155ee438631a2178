// The OpenAI-compatible gateway every node serves: `/v1/…` (also under `/api/v1/` and the
// `/api/v1/ai/…` names some hosted gateways use; README.md, "OpenAI-compatible gateway"). A request is checked (key, allow-list, limits, balance), sent through the job
// router to a node that serves the model, and answered in OpenAI's shapes; the usage the model reports
// is charged to the key and recorded.
import { randomUUID } from 'node:crypto'
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import type { Job, JobDispatcher } from '../jobs/dispatcher.ts'
import { isEventStream, isJson, MAX_ANSWER_BYTES, modelFailure, PARSE_WHOLE_BYTES } from '../core/answer.ts'
import { scanJson } from '../core/json-scan.ts'
import { collect, finishing } from '../core/iterables.ts'
import { deadlineFor } from '../core/deadlines.ts'
import { JobKind, type JobKindValue, type JobResponse, type JobTimeouts } from '../core/job-types.ts'
import type { NetworkView } from '../registry/view.ts'
import { JSON_TYPE, raw, text, type Reply } from '../web/reply.ts'
import type { Route, RouteContext } from '../web/route.ts'
import { toOpenAiError } from '../web/openai-errors.ts'
import { gatewayErrors } from './errors.ts'
import { ModelDirectory, type ResolvedModel } from './models.ts'
import { readUsage, tapUsage, type Usage } from './sse.ts'
import type { KeyRecord, KeyStore } from './keys.ts'
import type { Limiter } from './limits.ts'
import type { UsageLog } from './usage.ts'
import { openUpload, type Upload } from '../jobs/upload.ts'
import type { Price, PriceTable } from './pricing.ts'
import { countingEvents, settledCost, worstCase, type Delivered, type WorstCase } from './billing.ts'


export interface GatewayDeps {
  view: NetworkView
  dispatcher: JobDispatcher
  keys: KeyStore
  limiter: Limiter
  usage: UsageLog
  prices: PriceTable
  /** refuse requests without a key */
  requireKeys: boolean
  /** `Gateway.Projects`: where plain model names resolve first (src/gateway/models.ts) */
  projects?: string[]
  log: Logger
  /** per kind; default DEFAULT_TIMEOUT_MS */
  timeoutsMs?: JobTimeouts
  /** counts the tokens of every answer (src/metrics/node-metrics.ts) */
  metrics?: { usage: (model: string, promptTokens: number, completionTokens: number) => void }
}

/** What a request has been granted before it runs (its worst case reserved on a metered key); released
 * and settled exactly once when it ends. */
interface Admission {
  key?: KeyRecord
  target: ResolvedModel
  price: Price
  worst: WorstCase
  headers: Record<string, string>
  reservation?: string
  release: () => void
}

export class Gateway {
  private readonly deps: GatewayDeps
  private readonly directory: ModelDirectory

  constructor (deps: GatewayDeps) {
    this.deps = deps
    this.directory = new ModelDirectory(deps.view, { projects: deps.projects })
  }

  routes (): Route[] {
    const endpoints: Array<[string, JobKindValue | 'models']> = [
      ['/models', 'models'],
      ['/chat/completions', JobKind.CHAT],
      ['/completions', JobKind.COMPLETION],
      ['/embeddings', JobKind.EMBEDDING],
      ['/images/generations', JobKind.IMAGE_GEN],
      ['/images/edits', JobKind.IMAGE_EDIT]
    ]
    const routes: Route[] = []
    for (const prefix of ['/v1', '/api/v1', '/api/v1/ai']) {
      for (const [path, kind] of endpoints) {
        if (prefix === '/api/v1/ai' && kind !== 'models' && kind !== JobKind.CHAT && kind !== JobKind.COMPLETION) continue
        // Errors leave in OpenAI's shape under these paths (src/api/errors.ts).
        routes.push(kind === 'models'
          ? { path: prefix + path, methods: ['GET'], handler: async (rc) => await this.models(rc) }
          : { path: prefix + path, methods: ['POST'], readBody: kind !== JobKind.IMAGE_EDIT, handler: async (rc) => await this.job(rc, kind, prefix + path) })
      }
    }
    return routes
  }

  /** Limits, balance and metering for an /api/v0 model call (src/api/routes/jobs.ts), as on /v1; undefined
   * when the call carries no key of ours (nothing to charge: keys are not required then). */
  async meterCall (authorization: string, target: ResolvedModel & { kind: JobKindValue }, body: Record<string, unknown> | undefined, endpoint: string): Promise<{ finish: (nodeId: string, usage: unknown, status: number, delivered?: Delivered) => void } | undefined> {
    const kind = target.kind
    const key = await this.keyFrom(authorization, this.deps.requireKeys)
    if (key === undefined) return undefined
    this.checkAllowed(key, target.model, target)
    const admission = await this.admit(key, target, kind, body)
    let settled = false
    return {
      finish: (nodeId, usage, status, delivered) => {
        if (settled) return
        settled = true
        admission.release()
        void this.meter(admission, endpoint, nodeId, readUsage(usage), status, delivered)
      }
    }
  }

  /** The key check of the /api/v0 job routes (src/api/access.ts): the same rules as /v1. */
  async checkKey (authorization: string): Promise<void> {
    await this.keyFrom(authorization, this.deps.requireKeys)
  }

  private async models (rc: RouteContext): Promise<Reply> {
    // Seed 001 lists models without a key; where keys are required, a key that is presented must be valid.
    await this.authenticate(rc, false)
    return raw({ object: 'list', data: this.directory.list() })
  }

  private async job (rc: RouteContext, kind: JobKindValue, endpoint: string): Promise<Reply> {
    const key = await this.authenticate(rc, this.deps.requireKeys)
    const upload = kind === JobKind.IMAGE_EDIT ? await openUpload(rc.req, rc.header('content-type'), rc.params.optionalString('model')) : undefined
    const body = upload === undefined ? jsonBody(rc) : undefined
    const name = upload?.model ?? (typeof body?.model === 'string' ? body.model : '')
    if (name === '') throw new AicnError(ErrorCode.PARAM, 'you must provide a model parameter')
    // The name reaches headers and logs: no control characters, no giant strings (a CRLF once did both).
    if (name.length > 512 || /[\u0000-\u001f\u007f]/.test(name)) throw new AicnError(ErrorCode.PARAM, 'model must be a name of at most 512 printable characters')
    const target = this.directory.resolve(name)
    if (key !== undefined) this.checkAllowed(key, name, target)
    const stream = body?.stream === true
    const admission = await this.admit(key, target, kind, body)
    let released = false
    /** Settles once: `delivered` undefined means the request failed before any answer (nothing charged). */
    const finish = (response: JobResponse | undefined, usage: Usage | undefined, status: number, delivered?: Delivered): void => {
      if (released) return
      released = true
      admission.release()
      void this.meter(admission, endpoint, response?.nodeId ?? '', usage, status, delivered)
    }
    try {
      const job = this.jobFor(rc, kind, target, body, upload, stream)
      const response = await this.deps.dispatcher.toProject(job, rc.signal, { direct: stream || kind === JobKind.IMAGE_EDIT })
      const headers = { ...admission.headers, 'X-AICN-Node': response.nodeId }
      if (stream && response.error === undefined && response.status < 400 && isEventStream(response.contentType)) {
        const askedForUsage = (body?.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true
        const counted = countingEvents(response.body)
        const tap = tapUsage(counted.body, { dropUsageChunk: !askedForUsage })
        return {
          kind: 'stream',
          status: response.status,
          contentType: response.contentType,
          headers,
          // Charged: what a completed stream reported or delivered, and what a stream the client cut had
          // delivered; a stream that failed upstream costs nothing.
          body: finishing(tap.body, (completed, failed) => {
            // The client leaving also fails the source (its abort cancels the model call): that is a cut.
            const cut = !completed && (failed === undefined || rc.signal.aborted)
            finish(response, tap.usage(), completed ? 200 : cut ? 499 : 502, completed || cut ? { events: counted.events() } : undefined)
          }),
          // The blank lines first end an event the failure may have cut in the middle.
          onError: (err) => Buffer.from(`\n\ndata: ${JSON.stringify(toOpenAiError(err).body)}\n\n`)
        }
      }
      const answer = await readAnswer(response)
      // A model's own error answer (4xx/5xx) is passed on and not charged.
      finish(response, readUsage(answer.usage), answer.status, answer.status === 200 ? { bytes: answer.bytes } : undefined)
      return text(answer.text, JSON_TYPE, answer.status, headers)
    } catch (err) {
      finish(undefined, undefined, toOpenAiError(err).status)
      if (err instanceof AicnError) err.headers = { ...admission.headers, ...err.headers }
      throw err
    }
  }

  private jobFor (rc: RouteContext, kind: JobKindValue, target: ResolvedModel, body: Record<string, unknown> | undefined, upload: Upload | undefined, stream: boolean): Job {
    const head = {
      requestId: randomUUID(),
      project: target.project,
      model: target.model,
      cid: '',
      kind,
      contentType: upload?.contentType ?? 'application/json',
      stream,
      deadline: deadlineFor(kind, this.deps.timeoutsMs)
    }
    if (upload !== undefined) return { head, body: { stream: upload.body } }
    const forModel: Record<string, unknown> = { ...body, model: target.model }
    // Metering needs the stream's usage; ask the model for it when the client did not.
    if (stream && (forModel.stream_options as { include_usage?: unknown } | undefined)?.include_usage !== true) {
      forModel.stream_options = { ...(forModel.stream_options as object | undefined), include_usage: true }
    }
    return { head, body: { bytes: Buffer.from(JSON.stringify(forModel)) } }
  }

  private async authenticate (rc: RouteContext, required: boolean): Promise<KeyRecord | undefined> {
    return await this.keyFrom(rc.header('authorization'), required)
  }

  /** Where keys are required, a missing or unknown key is 401. Where they are not, a token that is not one
   * of our keys counts as no key, as vLLM, Ollama and LiteLLM do (SDKs insist on sending something:
   * 'none', 'EMPTY', 'ollama'); a known key still counts, with its limits, and a revoked one is 401. */
  private async keyFrom (authorization: string, required: boolean): Promise<KeyRecord | undefined> {
    const secret = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1]
    if (secret === undefined) {
      if (required) throw gatewayErrors.missingKey()
      return undefined
    }
    const key = await this.deps.keys.authenticate(secret)
    if (key === undefined) {
      // Where keys are required, a wrong key is an error even on the routes that need none (/v1/models).
      if (this.deps.requireKeys) throw gatewayErrors.badKey()
      return undefined
    }
    if (key.revoked) throw gatewayErrors.badKey()
    return key
  }

  /** A key's model allow-list: the name as asked, `project/model` or the bare model. */
  private checkAllowed (key: KeyRecord, name: string, target: ResolvedModel): void {
    if (key.models.length > 0 && !key.models.includes(name) && !key.models.includes(`${target.project}/${target.model}`) && !key.models.includes(target.model)) {
      throw gatewayErrors.notAllowed(name)
    }
  }

  /** The balance first, then the limits: a key that cannot pay for the request's worst case is refused
   * before any work is done, and a refused request uses up none of its limits. */
  private async admit (key: KeyRecord | undefined, target: ResolvedModel, kind: JobKindValue, body: Record<string, unknown> | undefined): Promise<Admission> {
    const price = this.deps.prices.priceOf(target.project, target.model)
    const worst = worstCase(this.deps.prices, price, kind, body)
    const base = { key, target, price, worst }
    if (key === undefined) return { ...base, headers: {}, release: () => {} }
    let reservation: string | undefined
    if (key.balanceMicroUsd !== null) {
      const reserved = await this.deps.keys.reserve(key.id, worst.microUsd)
      if (!reserved.ok) throw gatewayErrors.balance()
      reservation = reserved.reservation
    }
    const decision = await this.deps.limiter.admit(key)
    if (!decision.ok) {
      if (reservation !== undefined) await this.deps.keys.settle(reservation, 0)
      const limited = gatewayErrors.limited(decision.reason ?? 'limit')
      limited.headers = decision.headers
      throw limited
    }
    return { ...base, headers: decision.headers, reservation, release: decision.release }
  }

  /** Settles the reservation and records the usage row, with what billing.ts makes of the model's usage. */
  private async meter (admission: Admission, endpoint: string, node: string, usage: Usage | undefined, status: number, delivered: Delivered | undefined): Promise<void> {
    const { target, price, worst } = admission
    try {
      const settled = delivered === undefined ? { promptTokens: 0, completionTokens: 0, microUsd: 0 } : settledCost(this.deps.prices, price, worst, usage, delivered)
      // Tokens the model reported, as charged (clamped to the reservation: a lying model cannot inflate them).
      if (usage !== undefined) this.deps.metrics?.usage(target.model, settled.promptTokens, settled.completionTokens)
      if (admission.reservation !== undefined) await this.deps.keys.settle(admission.reservation, settled.microUsd)
      await this.deps.usage.record({
        time: new Date().toISOString(),
        keyId: admission.key?.id ?? '',
        project: target.project,
        model: target.model,
        node,
        promptTokens: settled.promptTokens,
        completionTokens: settled.completionTokens,
        costMicroUsd: settled.microUsd,
        status,
        endpoint
      })
    } catch (err) {
      this.deps.log.error({ err: (err as Error).message }, 'could not record usage')
    }
  }
}

function jsonBody (rc: RouteContext): Record<string, unknown> {
  const body = rc.params.body
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new AicnError(ErrorCode.PARAM, 'the request body must be a JSON object')
  return body as Record<string, unknown>
}

/** The model's answer, passed on as the text it came in (never parsed and serialised again), with the
 * model's own OpenAI-shaped errors (e.g. context_length_exceeded) unchanged. A large JSON answer is
 * checked in slices (src/core/json-scan.ts) instead of parsed in one turn of the event loop. */
async function readAnswer (response: JobResponse): Promise<{ status: number, text: string, usage: unknown, bytes: number }> {
  if (response.error !== undefined) throw new AicnError(response.error.code, response.error.message, { status: response.status })
  const bytes = await collect(response.body, MAX_ANSWER_BYTES)
  if (bytes === undefined) throw new AicnError(ErrorCode.MODEL, 'the model\'s answer is too large')
  const answerText = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
  let fields: Record<string, unknown> | undefined
  if (isJson(response.contentType)) {
    const malformed = new AicnError(ErrorCode.MODEL, 'the model answered malformed JSON')
    if (bytes.byteLength > PARSE_WHOLE_BYTES) {
      const scan = await scanJson(bytes)
      if (scan.problem !== undefined) throw malformed
      fields = scan.fields
    } else {
      let parsed: unknown
      try { parsed = JSON.parse(answerText) } catch { throw malformed }
      fields = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed as Record<string, unknown> : {}
    }
  }
  const error = fields?.error
  if (response.status >= 400 && error !== null && typeof error === 'object') {
    return { status: response.status >= 500 ? 502 : response.status, text: answerText, usage: undefined, bytes: bytes.byteLength }
  }
  const failure = modelFailure(response.status, fields, answerText, response.contentType)
  if (failure !== undefined) throw failure
  return { status: 200, text: answerText, usage: fields?.usage, bytes: bytes.byteLength }
}
