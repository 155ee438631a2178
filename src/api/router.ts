// Our route table on @koa/router. A route is data (path, methods, who may call it, whether it reads a
// JSON body) and a handler that sees a RouteContext and returns a Reply; this file turns that into Koa
// middleware, so the envelope, content types and access rules are the same on every endpoint.
import type { ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import Router from '@koa/router'
import type { Context, Middleware } from 'koa'
import type { AccessControl } from './access.ts'
import type { Route } from '../web/route.ts'
import type { JsonBodyReader } from './body.ts'
import { requireJsonFromBrowsers } from './guard.ts'
import { Params } from '../web/params.ts'
import { render, type StreamReply } from '../web/reply.ts'

export function buildRouter (routes: Route[], readJson: JsonBodyReader, access: AccessControl): Router {
  // strict: false tolerates a trailing slash, as the Go node's router did.
  const router = new Router({ strict: false })
  const seen = new Set<string>()
  for (const route of routes) {
    if (!route.path.startsWith('/')) throw new Error(`route path must start with "/": ${route.path}`)
    if (route.methods.length === 0) throw new Error(`route ${route.path} has no methods`)
    if (seen.has(route.path)) throw new Error(`route ${route.path} is defined twice`)
    seen.add(route.path)
    // @koa/router answers HEAD with the GET route (Koa leaves the body out).
    router.register(route.path, route.methods, handle(route, readJson, access))
  }
  return router
}

function handle (route: Route, readJson: JsonBodyReader, access: AccessControl): Middleware {
  const kind = route.access ?? 'open'
  return async (ctx: Context) => {
    if (ctx.method === 'POST') requireJsonFromBrowsers(ctx, route.readBody === false)
    await access.check(kind, ctx)
    const body = route.readBody === false ? undefined : await readJson(ctx)
    const params = Params.from(ctx.query, body)
    const reply = await route.handler({ params, req: ctx.req, header: (name) => ctx.get(name), signal: disconnectSignal(ctx.res) })
    if (reply?.kind === 'stream') {
      sendStream(ctx, reply)
      return
    }
    const rendered = render(reply)
    if (rendered.headers !== undefined) ctx.set(rendered.headers)
    ctx.status = rendered.status
    ctx.type = rendered.contentType
    ctx.body = rendered.body
  }
}

/** Each chunk goes to the socket the moment it arrives (no buffering, so SSE tokens reach the client one
 * by one), with backpressure from the client through pipe(); Koa destroys the stream when the client
 * goes away, which ends the source (the route's abort signal has already cancelled the model call). */
function sendStream (ctx: Context, reply: StreamReply): void {
  try {
    ctx.status = reply.status
    ctx.set({ 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no', ...reply.headers })
    ctx.type = reply.contentType
  } catch (err) {
    // A header that cannot be sent: the body is never read, so end it here, which releases what its
    // reader holds (a job's busy count, a key's reservation and concurrency slot).
    void reply.body[Symbol.asyncIterator]().return?.()
    throw err
  }
  ctx.body = Readable.from(endingOnError(reply.body, reply.onError))
  // Headers go out now, before the first token, so the client knows the stream has started.
  ctx.flushHeaders()
}

/** After the first byte a failure can only be told in the stream: its tail (e.g. an SSE error event), then the end. */
async function * endingOnError (body: AsyncIterable<Uint8Array>, onError: StreamReply['onError']): AsyncGenerator<Uint8Array> {
  try {
    yield * body
  } catch (err) {
    const tail = onError?.(err)
    if (tail !== undefined) yield tail
  }
}

/** Aborted when the client goes away before the response is finished. */
function disconnectSignal (res: ServerResponse): AbortSignal {
  const controller = new AbortController()
  if (res.destroyed && !res.writableFinished) {
    controller.abort(new Error('client disconnected'))
  } else {
    // ServerResponse emits 'close' also when its socket dies; only a close before the end is a disconnect.
    res.once('close', () => {
      if (!res.writableFinished) controller.abort(new Error('client disconnected'))
    })
  }
  return controller.signal
}
