// Who may call what (README "What is open and what is guarded"):
// - open routes: anyone who passes the browser guard (src/api/guard.ts);
// - job routes (model calls on /api/v0): a gateway key when keys are required, like /v1;
// - admin routes (keys, usage, model registration, bootstrap and swarm changes): callers on this machine,
//   or anyone presenting `API.AdminKey`.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Context } from 'koa'
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { Access } from '../web/route.ts'


export interface AccessOptions {
  /** `API.AdminKey`: a bearer secret that opens the admin routes to other machines; '' or absent = none. */
  adminKey?: string
  /** Checks the caller's gateway key on job routes (throws 401 when keys are required and it is missing). */
  checkJobKey?: (authorization: string) => Promise<void>
}

const LOOPBACK_PEER = /^(127\.|::1$|::ffff:127\.)/

export class AccessControl {
  readonly #adminKeyHash: Buffer | undefined
  readonly #checkJobKey: AccessOptions['checkJobKey']

  constructor (options: AccessOptions = {}) {
    this.#adminKeyHash = options.adminKey === undefined || options.adminKey === '' ? undefined : sha256(options.adminKey)
    this.#checkJobKey = options.checkJobKey
  }

  async check (access: Access, ctx: Context): Promise<void> {
    if (access === 'job') {
      await this.#checkJobKey?.(ctx.get('authorization'))
    } else if (access === 'admin' && !this.#adminAllowed(ctx)) {
      throw new AicnError(ErrorCode.PERMISSION, 'this endpoint answers only callers on this machine (or with API.AdminKey as the bearer token)', { status: 403 })
    }
  }

  #adminAllowed (ctx: Context): boolean {
    if (LOOPBACK_PEER.test(ctx.req.socket.remoteAddress ?? '')) return true
    const secret = /^Bearer\s+(\S{1,256})$/i.exec(ctx.get('authorization'))?.[1]
    return this.#adminKeyHash !== undefined && secret !== undefined && timingSafeEqual(sha256(secret), this.#adminKeyHash)
  }
}

/** A caller on this machine (a loopback peer address), to whom the admin routes always answer. */
export function fromThisMachine (req: IncomingMessage): boolean {
  return LOOPBACK_PEER.test(req.socket.remoteAddress ?? '')
}

function sha256 (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}
