// Reads a model's non-streamed answer and decides whether it is a success or an error, without the Go
// node's traps: any JSON content type counts (`application/json; charset=utf-8` too, which the Go node
// took for a non-JSON answer), an HTTP error status is an error even without a `code`, and a JSON answer
// to a stream request is reported, not dropped (the Go node answered an empty 200).
import { AicnError, ErrorCode } from './errors.ts'
import { collect } from './iterables.ts'
import { scanJson } from './json-scan.ts'
import { JobKind, type JobKindValue, type JobResponse } from './job-types.ts'

/** Largest non-streamed answer we hold in memory (images as base64 and big embedding batches can be
 * large). */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024

/** Largest answer a model of each kind may send (src/jobs/local.ts enforces it where the model runs):
 * a chat or completion answer is text, far below this; embeddings and images get MAX_ANSWER_BYTES. */
export const MAX_ANSWER_BYTES_BY_KIND: Record<JobKindValue, number> = {
  [JobKind.CHAT]: 16 * 1024 * 1024,
  [JobKind.COMPLETION]: 16 * 1024 * 1024,
  [JobKind.EMBEDDING]: MAX_ANSWER_BYTES,
  [JobKind.IMAGE_GEN]: MAX_ANSWER_BYTES,
  [JobKind.IMAGE_EDIT]: MAX_ANSWER_BYTES
}

export function isJson (contentType: string): boolean {
  return /^application\/([\w.+-]*\+)?json\b/i.test(contentType.trim())
}

export function isEventStream (contentType: string): boolean {
  return /^text\/event-stream\b/i.test(contentType.trim())
}

/** The answer's JSON on success; throws an AicnError carrying the model's code and message otherwise. */
export async function readModelJson (response: JobResponse): Promise<unknown> {
  return (await readModelAnswer(response)).value
}

/** readModelJson's value together with the JSON text it was parsed from, to pass on without serialising
 * it again. */
export async function readModelAnswer (response: JobResponse): Promise<{ value: unknown, text: string }> {
  if (response.error !== undefined) throw new AicnError(response.error.code, response.error.message, { status: response.status })
  const bytes = await collect(response.body, MAX_ANSWER_BYTES)
  if (bytes === undefined) throw new AicnError(ErrorCode.MODEL, `the model's answer is larger than ${MAX_ANSWER_BYTES} bytes`)
  if (isJson(response.contentType) && bytes.byteLength > PARSE_WHOLE_BYTES) return await readLargeJson(response, bytes)
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
  let parsed: unknown
  if (isJson(response.contentType)) {
    try {
      parsed = JSON.parse(text)
    } catch {
      throw malformed(response.status)
    }
  }
  const failure = modelFailure(response.status, parsed, text, response.contentType)
  if (failure !== undefined) throw failure
  return { value: parsed, text }
}

/** JSON answers up to this are parsed in one go (a few ms); larger ones are checked in slices. */
export const PARSE_WHOLE_BYTES = 1024 * 1024

/** A large JSON answer: checked in slices (src/core/json-scan.ts), its error fields read, the whole value
 * parsed only if someone asks for it (the IPFS upload of generated images does). */
async function readLargeJson (response: JobResponse, bytes: Uint8Array): Promise<{ value: unknown, text: string }> {
  const scan = await scanJson(bytes)
  if (scan.problem !== undefined) throw malformed(response.status)
  const failure = modelFailure(response.status, scan.fields, '', response.contentType)
  if (failure !== undefined) throw failure
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
  let value: unknown
  let parsed = false
  return {
    text,
    get value () {
      if (!parsed) {
        value = JSON.parse(text)
        parsed = true
      }
      return value
    }
  }
}

function malformed (status: number): AicnError {
  return new AicnError(ErrorCode.MODEL, `the model answered malformed JSON (HTTP ${status})`, { status: 502 })
}

/** The error a model's answer describes, if any. */
export function modelFailure (status: number, parsed: unknown, text: string, contentType: string): AicnError | undefined {
  const object = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed as Record<string, unknown> : undefined
  const code = typeof object?.code === 'number' && object.code !== 0 ? object.code : undefined
  const error = object?.error
  const errorMessage = typeof error === 'string' ? error : (error as { message?: unknown } | undefined)?.message
  const message = typeof object?.message === 'string' && code !== undefined ? object.message : typeof errorMessage === 'string' ? errorMessage : undefined
  if (status < 400 && code === undefined && error == null) {
    if (parsed === undefined) return new AicnError(ErrorCode.MODEL, `the model answered ${contentType === '' ? 'without a content type' : contentType}, not JSON`, { status: 502 })
    return undefined
  }
  // A model's own 4xx (bad request, rate limit) is the client's to see; anything else is a bad gateway.
  const httpStatus = status >= 400 && status < 500 ? status : 502
  const fallback = parsed === undefined && text.trim() !== '' ? text.trim().slice(0, 200) : `HTTP ${status}`
  return new AicnError((code ?? ErrorCode.MODEL), `model error: ${message ?? fallback}`, { status: httpStatus })
}
