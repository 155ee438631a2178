// `/api/v0` model calls (README.md, "Model calls"): chat/completion, image/gen, image/edit, each addressed to a
// node (`node_id`) or, on the `/proxy` paths, to whichever node the router picks. The client's body reaches
// the model untouched apart from our routing fields, so no parameter is ever lost on any path.
import { randomUUID } from 'node:crypto'
import { AicnError, ErrorCode } from '../../core/errors.ts'
import type { Job, JobDispatcher } from '../../jobs/dispatcher.ts'
import { isEventStream, readModelAnswer, readModelJson } from '../../core/answer.ts'
import { checkIpfsNode, ipfsOrigins, uploadImage } from '../../jobs/ipfs.ts'
import { DEFAULT_TIMEOUT_MS, JobKind, type JobKindValue, type JobResponse, type JobTimeouts } from '../../core/job-types.ts'
import { finishing } from '../../core/iterables.ts'
import { openUpload } from '../../jobs/upload.ts'
import { readUsage, tapUsage } from '../../gateway/sse.ts'
import { countingEvents } from '../../gateway/billing.ts'
import { ok, okJson, type Reply } from '../../web/reply.ts'
import type { Route, RouteContext } from '../../web/route.ts'
import { remoteCall } from './remote-call.ts'

/** Our routing fields; everything else in the body is the model's. */
const ROUTING_FIELDS = new Set(['node_id', 'project', 'cid', 'ipfs_node'])

/** A model call admitted under a key's limits and balance; `finish` settles it (once) with what it used. */
export interface MeteredCall {
  /** `delivered` (streamed events, or bytes of a whole answer) is charged when the model reported no usage;
   * undefined when the call failed before any answer (nothing charged). */
  finish: (nodeId: string, usage: unknown, status: number, delivered?: { events: number } | { bytes: number }) => void
}

/** Admits a call made with a key (limits, balance; src/gateway/gateway.ts meterCall), or undefined when the
 * call carries no key of ours and so has nothing to charge. */
export type CallMeter = (authorization: string, head: Job['head'], body: Record<string, unknown> | undefined, endpoint: string) => Promise<MeteredCall | undefined>

export interface JobRouteOptions {
  dispatcher: JobDispatcher
  /** Keys' limits and balances on these routes, as on /v1. */
  meter?: CallMeter
  /** Told the usage a model reported on a call without a key (a metered call reports through `meter`),
   * for the token metrics (docs/metrics.md). */
  onUsage?: (model: string, promptTokens: number, completionTokens: number) => void
  /** per-kind timeouts; defaults to DEFAULT_TIMEOUT_MS */
  timeoutsMs?: JobTimeouts
  /** `Jobs.IpfsNodes`: the IPFS nodes `ipfs_node` may name (empty: loopback only; jobs/ipfs.ts) */
  ipfsNodes?: readonly string[]
}

export function jobRoutes (options: JobRouteOptions): Route[] {
  const { dispatcher } = options
  const allowedIpfs = ipfsOrigins(options.ipfsNodes ?? [])

  /** Sends the job to the named node, or to the best node for the project on `/proxy`. */
  const send = async (rc: RouteContext, job: Job, proxy: boolean, direct: boolean): Promise<JobResponse> => {
    if (proxy) return await dispatcher.toProject(job, rc.signal, { direct })
    return await dispatcher.toNode(rc.params.string('node_id', { required: true }), job, rc.signal)
  }

  const head = (rc: RouteContext, kind: JobKindValue, proxy: boolean, contentType: string, stream: boolean): Job['head'] => ({
    requestId: randomUUID(),
    project: rc.params.string('project', { required: true, maxLength: 256, identifier: true }),
    model: rc.params.string('model', { required: true, maxLength: 256, identifier: true }),
    cid: proxy ? '' : rc.params.string('cid', { default: '', maxLength: 256, identifier: true }),
    kind,
    contentType,
    stream,
    // A client may ask for a shorter (or longer, up to 5 min) deadline with `timeout`, e.g. "30s".
    deadline: Date.now() + (remoteCall(rc).timeoutMs ?? (options.timeoutsMs ?? DEFAULT_TIMEOUT_MS)[kind])
  })

  /** Runs a call under the caller's key (when it has one of ours), settling it exactly once on every path. */
  const metered = async (rc: RouteContext, jobHead: Job['head'], run: (finish: MeteredCall['finish']) => Promise<Reply>): Promise<Reply> => {
    const endpoint = (rc.req.url ?? '').split('?')[0]
    const call = await options.meter?.(rc.header('authorization'), jobHead, rc.params.body as Record<string, unknown> | undefined, endpoint)
    if (call === undefined) {
      return await run((_nodeId, usage) => {
        const reported = readUsage(usage)
        if (reported !== undefined) options.onUsage?.(jobHead.model, reported.prompt_tokens, reported.completion_tokens)
      })
    }
    try {
      return await run(call.finish)
    } catch (err) {
      call.finish('', undefined, err instanceof AicnError ? err.status : 500)
      throw err
    }
  }

  /** The whole answer as the envelope's data, settled with the usage the model reported. */
  const whole = async (response: JobResponse, finish: MeteredCall['finish']): Promise<Reply> => {
    const answer = await readModelAnswer(response)
    finish(response.nodeId, (answer.value as { usage?: unknown } | undefined)?.usage, 200, { bytes: Buffer.byteLength(answer.text) })
    return okJson(answer.text, servedBy(response))
  }

  const chat = (proxy: boolean) => async (rc: RouteContext): Promise<Reply> => {
    if (!proxy) rc.params.string('node_id', { required: true })
    if (!Array.isArray(rc.params.raw('messages'))) throw new AicnError(ErrorCode.PARAM, 'messages must be a list of {"role","content"}')
    const stream = rc.params.bool('stream', { default: false })
    const job: Job = { head: head(rc, JobKind.CHAT, proxy, 'application/json', stream), body: { bytes: modelBody(rc) } }
    return await metered(rc, job.head, async (finish) => {
      const response = await send(rc, job, proxy, stream)
      if (stream && response.error === undefined && response.status < 400 && isEventStream(response.contentType)) {
        // The usage chunk, where the model sends one, settles the call when the stream ends.
        const counted = countingEvents(response.body)
        const tap = tapUsage(counted.body, { dropUsageChunk: false })
        return sse({ ...response, body: finishing(tap.body, (completed, failed) => {
          // The client leaving also fails the source (its abort cancels the model call): that is a cut.
          const cut = !completed && (failed === undefined || rc.signal.aborted)
          finish(response.nodeId, tap.usage(), completed ? 200 : cut ? 499 : 502, completed || cut ? { events: counted.events() } : undefined)
        }) })
      }
      return await whole(response, finish)
    })
  }

  const imageGen = (proxy: boolean) => async (rc: RouteContext): Promise<Reply> => {
    if (!proxy) rc.params.string('node_id', { required: true })
    rc.params.string('prompt', { required: true })
    const ipfsText = rc.params.string('ipfs_node', { default: '' })
    const ipfs = ipfsText === '' ? undefined : checkIpfsNode(ipfsText, allowedIpfs)
    // For IPFS we need the image bytes, so the model is asked for base64 whatever the client said.
    const bytes = modelBody(rc, ipfs === undefined ? {} : { response_format: 'b64_json' })
    const jobHead = head(rc, JobKind.IMAGE_GEN, proxy, 'application/json', false)
    return await metered(rc, jobHead, async (finish) => {
      const response = await send(rc, { head: jobHead, body: { bytes } }, proxy, false)
      if (ipfs === undefined) return await whole(response, finish)
      const answer = await readModelJson(response)
      const images = ((answer as { data?: Array<{ b64_json?: string }> }).data ?? []).map((d) => d.b64_json).filter((b): b is string => typeof b === 'string')
      if (images.length === 0) throw new AicnError(ErrorCode.MODEL, 'the model returned no image to upload')
      const choices = await Promise.all(images.map(async (b64) => await uploadImage(ipfs, Buffer.from(b64, 'base64'), rc.signal, jobHead.deadline)))
      finish(response.nodeId, (answer as { usage?: unknown }).usage, 200, { bytes: 0 })
      return ok({ ipfs_node: ipfsText, choices }, undefined, servedBy(response))
    })
  }

  const imageEdit = (proxy: boolean) => async (rc: RouteContext): Promise<Reply> => {
    if (!proxy) rc.params.string('node_id', { required: true })
    // Routing fields come in the query string; the multipart body goes to the model as it arrives.
    const jobHead = head(rc, JobKind.IMAGE_EDIT, proxy, rc.header('content-type'), false)
    const upload = await openUpload(rc.req, jobHead.contentType, jobHead.model)
    const job: Job = { head: jobHead, body: { stream: upload.body } }
    return await metered(rc, job.head, async (finish) => await whole(await send(rc, job, proxy, true), finish))
  }

  // Model calls spend the network's compute: with keys required they need one, like /v1 (src/api/access.ts).
  const post = (path: string, handler: Route['handler'], readBody = true): Route => ({ path: `/api/v0${path}`, methods: ['POST'], handler, readBody, access: 'job' })
  return [
    post('/chat/completion', chat(false)),
    post('/chat/completion/proxy', chat(true)),
    post('/image/gen', imageGen(false)),
    post('/image/gen/proxy', imageGen(true)),
    post('/image/edit', imageEdit(false), false),
    post('/image/edit/proxy', imageEdit(true), false)
  ]
}

/** The client's JSON body without our routing fields, with `overrides` applied. */
function modelBody (rc: RouteContext, overrides: Record<string, unknown> = {}): Uint8Array {
  const body = rc.params.body
  const out: Record<string, unknown> = {}
  if (body !== null && typeof body === 'object') {
    for (const [key, value] of Object.entries(body)) {
      if (!ROUTING_FIELDS.has(key.toLowerCase())) out[key] = value
    }
  }
  // The model gets the model name in its usual key even when the client wrote `Model`.
  for (const key of Object.keys(out)) if (key !== 'model' && key.toLowerCase() === 'model') delete out[key]
  out.model = rc.params.string('model', { required: true })
  return Buffer.from(JSON.stringify({ ...out, ...overrides }))
}

/** Where the job ran. The cid comes from the worker: one that could not be a header value is left out
 * rather than failing the answer after the work was done. */
function servedBy (response: JobResponse): Record<string, string> {
  const headers: Record<string, string> = { 'X-AICN-Node': response.nodeId }
  if (/^[\x20-\x7e]{0,256}$/.test(response.cid)) headers['X-AICN-CID'] = response.cid
  return headers
}

function sse (response: JobResponse): Reply {
  return {
    kind: 'stream',
    status: response.status,
    contentType: response.contentType,
    headers: servedBy(response),
    body: response.body,
    // After the first byte a failure can only be told in the stream: an error event, then the end.
    onError: (err) => {
      const error = err instanceof AicnError ? err : new AicnError(ErrorCode.STREAM, (err as Error).message)
      // The blank lines first end an event the failure may have cut in the middle.
      return Buffer.from(`\n\ndata: ${JSON.stringify({ error: { code: error.code, message: error.message, type: 'stream_error' } })}\n\n`)
    }
  }
}
