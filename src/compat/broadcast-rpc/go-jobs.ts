// Chat and image jobs in the Go node's protobuf shapes (proto/aicn.proto; docs/protocols.md), converted to and
// from the model server's OpenAI-style JSON. Unlike the Go receiver we forward temperature, top_p and step
// (the Go receiver drops them) and keep the model's id and object (it never copies them), so an answer is the same whichever path it took.
import { randomUUID } from 'node:crypto'
import { AicnError, ErrorCode } from '../../core/errors.ts'
import type { HostInfo } from '../../hostinfo/index.ts'
import { readModelJson } from '../../core/answer.ts'
import { deadlineFor } from '../../core/deadlines.ts'
import { JobKind, type JobKindValue, type JobRunner, type JobTimeouts } from '../../core/job-types.ts'
import type { PeerInfo } from '../../p2p/peer-info.ts'
import type { protocol } from '../../proto/index.ts'
import type { BroadcastHandlers } from './broadcast-rpc.ts'

type Json = Record<string, unknown>

const encoder = new TextEncoder()
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

// ---- chat ----

/** The model request for a chat that arrived as protobuf. Each message's content is raw JSON (e.g. the 7
 * bytes `"Hello"` or an array of parts) and is re-emitted verbatim; the answer is never streamed. */
export function chatRequestToModelJson (req: protocol.ChatCompletionRequest.$Properties): Uint8Array {
  const messages = (req.messages ?? []).map((m, i) => `{"role":${JSON.stringify(m.role ?? '')},"content":${rawJson(m.content, i)}}`)
  const fields = [
    `"model":${JSON.stringify(req.model ?? '')}`,
    `"messages":[${messages.join(',')}]`,
    '"stream":false'
  ]
  // proto3 cannot tell "not set" from 0; Go requesters send 0 when the client gave nothing.
  if (isSet(req.temperature)) fields.push(`"temperature":${float32Json(req.temperature)}`)
  if (isSet(req.top_p)) fields.push(`"top_p":${float32Json(req.top_p)}`)
  fields.push(...walletFields(req.wallet))
  return encoder.encode(`{${fields.join(',')}}`)
}

/** A model's chat answer (already checked for errors by readModelJson) as the protobuf response. */
export function chatResponseFromModelJson (json: unknown): protocol.ChatCompletionResponse.$Properties {
  const answer = modelObject(json)
  const usage = object(answer.usage)
  return {
    id: text(answer.id),
    object: text(answer.object),
    created: integer(answer.created),
    choices: list(answer.choices).map((c) => {
      const choice = object(c)
      const message = object(choice.message)
      return {
        index: int32(choice.index),
        message: { role: text(message.role), content: contentText(message.content) },
        finish_reason: text(choice.finish_reason)
      }
    }),
    usage: { completion_tokens: int32(usage.completion_tokens), prompt_tokens: int32(usage.prompt_tokens), total_tokens: int32(usage.total_tokens) }
  }
}

/** The protobuf request for asking a Go node, from the client's JSON body (`project`, `model`, `cid`,
 * `messages`, `temperature`, `top_p`, `wallet`, `signature`, `hash`; the caller may override the routing
 * fields). Streaming is not possible over the topic, so `stream` is always false. */
export function chatRequestFromJson (body: Json): protocol.ChatCompletionRequest.$Properties {
  return {
    project: text(body.project),
    model: text(body.model),
    cid: text(body.cid),
    messages: list(body.messages).map((m) => {
      const message = object(m)
      return { role: text(message.role), content: encoder.encode(JSON.stringify(message.content ?? null)) }
    }),
    stream: false,
    temperature: finite(body.temperature),
    top_p: finite(body.top_p),
    // The Go requester always sends the wallet sub-message.
    wallet: { wallet: text(body.wallet), signature: text(body.signature), hash: text(body.hash) }
  }
}

/** A Go node's chat answer as the OpenAI-style JSON our clients get. */
export function chatJsonFromResponse (res: protocol.ChatCompletionResponse.$Properties): Json {
  return {
    id: res.id ?? '',
    // Go nodes leave it empty; it is always this for a non-streamed chat.
    object: (res.object ?? '') !== '' ? res.object : 'chat.completion',
    created: Number(res.created ?? 0),
    choices: (res.choices ?? []).map((c) => ({
      index: c.index ?? 0,
      message: { role: c.message?.role ?? '', content: c.message?.content ?? '' },
      finish_reason: c.finish_reason ?? ''
    })),
    usage: {
      completion_tokens: res.usage?.completion_tokens ?? 0,
      prompt_tokens: res.usage?.prompt_tokens ?? 0,
      total_tokens: res.usage?.total_tokens ?? 0
    }
  }
}

// ---- images ----

/** The model request for an image generation that arrived as protobuf. Unset (zero) fields are left out
 * rather than sent as 0 or "", which OpenAI-style servers would reject. */
export function imageRequestToModelJson (req: protocol.ImageGenerationRequest.$Properties): Uint8Array {
  const json: Json = { model: req.model ?? '', prompt: req.prompt ?? '' }
  if ((req.number ?? 0) > 0) json.n = req.number
  if ((req.size ?? '') !== '') json.size = req.size
  if ((req.width ?? 0) > 0) json.width = req.width
  if ((req.height ?? 0) > 0) json.height = req.height
  if ((req.step ?? 0) > 0) json.step = req.step
  if ((req.response_format ?? '') !== '') json.response_format = req.response_format
  const wallet = req.wallet
  if ((wallet?.wallet ?? '') !== '') json.wallet = wallet?.wallet
  if ((wallet?.signature ?? '') !== '') json.signature = wallet?.signature
  if ((wallet?.hash ?? '') !== '') json.hash = wallet?.hash
  return encoder.encode(JSON.stringify(json))
}

/** A model's image answer (`{created, data: [{url, b64_json, revised_prompt}]}`) as the protobuf response. */
export function imageResponseFromModelJson (json: unknown): protocol.ImageGenerationResponse.$Properties {
  const answer = modelObject(json)
  return {
    created: integer(answer.created),
    choices: list(answer.data).map((d) => {
      const image = object(d)
      return { url: text(image.url), b64_json: text(image.b64_json), revised_prompt: text(image.revised_prompt) }
    })
  }
}

/** The protobuf request for asking a Go node, from the client's JSON body (`n` is `number`). */
export function imageRequestFromJson (body: Json): protocol.ImageGenerationRequest.$Properties {
  return {
    project: text(body.project),
    model: text(body.model),
    prompt: text(body.prompt),
    number: int32(body.n),
    size: text(body.size),
    width: int32(body.width),
    height: int32(body.height),
    response_format: text(body.response_format),
    cid: text(body.cid),
    step: int32(body.step),
    wallet: { wallet: text(body.wallet), signature: text(body.signature), hash: text(body.hash) }
  }
}

/** A Go node's image answer as OpenAI-style JSON; empty image fields are left out, as Go does. */
export function imageJsonFromResponse (res: protocol.ImageGenerationResponse.$Properties): Json {
  return {
    created: Number(res.created ?? 0),
    data: (res.choices ?? []).map((c) => {
      const image: Json = {}
      if ((c.b64_json ?? '') !== '') image.b64_json = c.b64_json
      if ((c.url ?? '') !== '') image.url = c.url
      if ((c.revised_prompt ?? '') !== '') image.revised_prompt = c.revised_prompt
      return image
    })
  }
}

// ---- handlers ----

export interface GoJobDeps {
  /** runs a job on this node's models (LocalExecutor.run) */
  runner: JobRunner
  peerInfo: () => Promise<PeerInfo>
  hostInfo: () => Promise<HostInfo>
  projects: () => protocol.AIProjectResponse.$Properties
  /** this node's id, named in errors */
  nodeId: string
  /** per kind (Go requests carry no deadline); default DEFAULT_TIMEOUT_MS */
  timeoutsMs?: JobTimeouts
}

/** The broadcast RPC handlers of a node: queries from the given sources, chat and image jobs through the
 * runner (with the Go node's deadlines, 3 and 5 min) and back into protobuf. */
export function makeBroadcastHandlers (deps: GoJobDeps): BroadcastHandlers {
  const run = async (kind: JobKindValue, req: { project?: string | null, model?: string | null, cid?: string | null }, body: Uint8Array, signal: AbortSignal): Promise<unknown> => {
    const head = {
      requestId: randomUUID(),
      project: req.project ?? '',
      model: req.model ?? '',
      cid: req.cid ?? '',
      kind,
      contentType: 'application/json',
      stream: false,
      deadline: deadlineFor(kind, deps.timeoutsMs)
    }
    const response = await deps.runner({ head, body: once(body) }, signal)
    try {
      return await readModelJson(response)
    } catch (err) {
      if (err instanceof AicnError) throw err
      throw new AicnError(ErrorCode.MODEL, `node ${deps.nodeId} could not read the model's answer: ${(err as Error).message}`, { cause: err })
    }
  }
  return {
    peerIdentity: deps.peerInfo,
    hostInfo: deps.hostInfo,
    aiProjects: async () => deps.projects(),
    chat: async (req, signal) => chatResponseFromModelJson(await run(JobKind.CHAT, req, chatRequestToModelJson(req), signal)),
    image: async (req, signal) => imageResponseFromModelJson(await run(JobKind.IMAGE_GEN, req, imageRequestToModelJson(req), signal))
  }
}

// ---- helpers ----

async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

/** One message's raw JSON content, checked to be a single JSON value so it can be spliced in. Go marshals
 * an empty json.RawMessage as null. */
function rawJson (content: Uint8Array | null | undefined, index: number): string {
  if (content == null || content.byteLength === 0) return 'null'
  let source: string
  try {
    source = strictUtf8.decode(content)
    JSON.parse(source)
  } catch {
    throw new AicnError(ErrorCode.PARAM, `the content of message ${index} is not valid JSON`)
  }
  return source.trim()
}

function walletFields (wallet: protocol.WalletVerification.$Properties | null | undefined): string[] {
  const fields: string[] = []
  for (const key of ['wallet', 'signature', 'hash'] as const) {
    const value = wallet?.[key] ?? ''
    if (value !== '') fields.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`)
  }
  return fields
}

function isSet (value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value !== 0
}

/** A float32 as its shortest decimal (0.7 decodes from protobuf as 0.699999988…; the model gets 0.7). */
function float32Json (value: number): string {
  const f = Math.fround(value)
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(f.toPrecision(digits))
    if (Math.fround(candidate) === f) return JSON.stringify(candidate)
  }
  return JSON.stringify(f)
}

function modelObject (json: unknown): Json {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new AicnError(ErrorCode.MODEL, 'the model\'s answer is not a JSON object')
  return json as Json
}

function object (value: unknown): Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Json : {}
}

function list (value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

function text (value: unknown): string {
  return typeof value === 'string' ? value : ''
}

/** A message's content as the protobuf string: text as is, null (tool calls) as '', anything else as JSON. */
function contentText (value: unknown): string {
  if (typeof value === 'string') return value
  return value == null ? '' : JSON.stringify(value)
}

function finite (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0
}

function integer (value: unknown): number {
  const n = Math.trunc(finite(value))
  return Number.isSafeInteger(n) ? n : 0
}

function int32 (value: unknown): number {
  return Math.max(-0x80000000, Math.min(0x7fffffff, integer(value)))
}
