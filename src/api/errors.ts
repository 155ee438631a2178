// The error middleware: every error, and every 404/405 the router leaves without a body, leaves as one
// answer in the shape its path promises: OpenAI's `{"error":{…}}` under /v1 and /api/v1
// (src/web/openai-errors.ts), the `{"code","message"}` envelope of /api/v0 everywhere else (src/core/errors.ts).
import type { Context, Next } from 'koa'
import { AicnError, ErrorCode, isAicnError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { toOpenAiError } from '../web/openai-errors.ts'
import { errorBody, JSON_TYPE } from '../web/reply.ts'

/** Paths whose clients are OpenAI SDKs. */
export function speaksOpenAi (path: string): boolean {
  return /^\/(api\/)?v1(\/|$)/.test(path)
}

export function errorMiddleware (log: Logger) {
  return async function answerErrors (ctx: Context, next: Next): Promise<void> {
    try {
      await next()
      if (ctx.body == null && (ctx.status === 404 || ctx.status === 405 || ctx.status === 501)) throw unmatched(ctx)
    } catch (err) {
      answer(ctx, err, log)
    }
  }
}

/** The router's bare 404/405/501 as our errors (501 is a method the router does not know at all). */
function unmatched (ctx: Context): AicnError {
  if (ctx.status === 404) return new AicnError(ErrorCode.UNSUPPORTED, `no such endpoint: ${clip(ctx.method)} ${clip(ctx.path)}`, { status: 404, reason: 'unknown_url' })
  const allowed = ctx.response.get('Allow')
  return new AicnError(ErrorCode.UNSUPPORTED, `method ${clip(ctx.method)} not allowed on ${clip(ctx.path)}; use ${allowed}`, { status: 405, reason: 'method_not_allowed', headers: { Allow: allowed } })
}

function answer (ctx: Context, err: unknown, log: Logger): void {
  const res = ctx.res
  if (res.headersSent || res.destroyed) {
    // Nothing can be said to the client any more (it left, or a stream was already under way).
    log.debug({ err, method: ctx.method, path: ctx.path }, 'error after the response started or the client left')
    if (!res.writableEnded) res.destroy()
    return
  }
  let error: AicnError
  if (isAicnError(err)) {
    error = err
    if (err.status >= 500) log.warn({ err, method: ctx.method, path: ctx.path }, 'request failed')
  } else {
    log.error({ err, method: ctx.method, path: ctx.path }, 'unhandled error in HTTP handler')
    error = new AicnError(ErrorCode.INTERNAL, 'internal error')
  }
  const openAi = speaksOpenAi(ctx.path)
  const shaped = openAi ? toOpenAiError(error) : { status: error.status, body: errorBody(error) }
  // Headers a route set for a success (e.g. X-AICN-Node) do not belong on the error; the error's own do.
  for (const name of Object.keys(res.getHeaders())) if (name !== 'connection') res.removeHeader(name)
  if (error.headers !== undefined) ctx.set(error.headers)
  // A body left unread (refused before it was read) cannot be skipped over to reach the next request.
  if (!ctx.req.complete) ctx.set('Connection', 'close')
  ctx.status = shaped.status
  ctx.type = JSON_TYPE
  ctx.body = JSON.stringify(shaped.body)
}

// Request paths and methods are echoed in error messages; keep a giant URL from coming back whole.
function clip (text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}...` : text
}
