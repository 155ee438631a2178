// The route contract between the layers that answer HTTP (src/gateway/, src/api/routes/) and the Koa
// layer that serves them (src/api/router.ts): a route is data and a handler from RouteContext to Reply,
// so nothing below src/api/ imports Koa.
import type { IncomingMessage } from 'node:http'
import type { Params } from './params.ts'
import type { Reply } from './reply.ts'

/** Who may call a route: open, job (a gateway key when keys are required) or admin. */
export type Access = 'open' | 'job' | 'admin'

export type Method = 'GET' | 'POST'

export interface RouteContext {
  params: Params
  req: IncomingMessage
  /** A request header ('' when absent). */
  header: (name: string) => string
  /** Aborted when the client disconnects before the response is finished. */
  signal: AbortSignal
}

export interface Route {
  /** e.g. '/api/v0/id'; a trailing slash in the request is tolerated. */
  path: string
  methods: Method[]
  handler: (rc: RouteContext) => Promise<Reply>
  /** false for routes that read the request body themselves (uploads, proxies); the JSON body is then not read. */
  readBody?: boolean
  /** Who may call it (src/api/access.ts checks it); default 'open'. Job and admin routes change state or spend. */
  access?: Access
}
