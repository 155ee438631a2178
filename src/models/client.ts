// Calls the model servers registered on this node: one keep-alive connection pool (undici), bodies
// streamed both ways and never buffered, transport failures mapped to the API's model-error code.
import { Readable } from 'node:stream'
import { Agent, request, errors as undiciErrors } from 'undici'
import { AicnError, ErrorCode } from '../errors.ts'
import { WholeBody } from '../jobs/iterables.ts'

export interface ModelCall {
  url: string
  contentType: string
  body: AsyncIterable<Uint8Array> | Uint8Array
  signal: AbortSignal
  /** how long to wait for the response head (the model's first byte) */
  headersTimeoutMs: number
}

export interface ModelAnswer {
  status: number
  contentType: string
  body: AsyncIterable<Uint8Array>
}

export class ModelClient {
  private readonly agent: Agent

  constructor (options: { connectionsPerOrigin?: number } = {}) {
    this.agent = new Agent({
      connections: options.connectionsPerOrigin ?? 128,
      keepAliveTimeout: 30_000,
      // A model may think for minutes between two tokens; the job's deadline bounds the whole call instead.
      bodyTimeout: 0,
      connectTimeout: 10_000
    })
  }

  async call (call: ModelCall): Promise<ModelAnswer> {
    const origin = safeOrigin(call.url)
    try {
      const response = await request(call.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: { 'content-type': call.contentType, accept: 'application/json, text/event-stream' },
        body: bodyOf(call.body),
        signal: call.signal,
        headersTimeout: call.headersTimeoutMs
      })
      const contentType = response.headers['content-type']
      return {
        status: response.statusCode,
        contentType: Array.isArray(contentType) ? contentType[0] ?? '' : contentType ?? '',
        body: response.body
      }
    } catch (err) {
      throw modelCallError(err, origin, call.signal)
    }
  }

  async close (): Promise<void> {
    await this.agent.close()
  }
}

/** Bytes known in advance leave with the request head in one write; a stream goes out as it arrives. */
function bodyOf (body: ModelCall['body']): Uint8Array | Readable {
  if (body instanceof Uint8Array) return body
  if (body instanceof WholeBody) return body.bytes
  return Readable.from(body, { objectMode: false })
}

function safeOrigin (url: string): string {
  try { return new URL(url).origin } catch { return url }
}

function modelCallError (err: unknown, origin: string, signal: AbortSignal): AicnError {
  if (err instanceof AicnError) return err
  if (signal.aborted) {
    const reason: unknown = signal.reason
    if (reason instanceof AicnError) return reason
    if (reason instanceof Error && reason.name === 'TimeoutError') return new AicnError(ErrorCode.TIMEOUT, `model server at ${origin} did not answer in time`)
    return new AicnError(ErrorCode.STREAM, 'cancelled')
  }
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.ConnectTimeoutError) {
    return new AicnError(ErrorCode.TIMEOUT, `model server at ${origin} did not answer in time`)
  }
  const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code
  const detail = code ?? (err as Error).message
  return new AicnError(ErrorCode.MODEL, `model server at ${origin} is unreachable: ${detail}`, { status: 502 })
}
