// Browser safety, as kubo does it (docs/config.md "API"): a web page the operator opens must not be able to
// drive or read the node's API.
// - Host: a page on a name that an attacker re-binds to 127.0.0.1 (DNS rebinding) sends its own name in
//   `Host`; only loopback names, IP literals and configured names are served.
// - Origin: a cross-site request from a page carries the page's `Origin`; only the node's own origins (the
//   console) and configured ones pass. Requests without `Origin` (curl, SDKs, Go and Python clients) pass.
// - Simple requests: a page can POST `text/plain`, `application/x-www-form-urlencoded` or `multipart` to
//   any site without a CORS preflight. A browser request (one that carries `Origin` or `Sec-Fetch-Site`) to
//   a state-changing endpoint must therefore be `application/json`; other clients may keep sending what
//   `curl -d` sends, as the Go node's clients always did.
// - CORS: answered only for origins in `API.AllowedOrigins` (opt-in).
import { isIP } from 'node:net'
import type { Context } from 'koa'
import { AicnError, ErrorCode } from '../core/errors.ts'

export interface GuardOptions {
  /** Origins besides the node's own that may call the API from a browser; '*' allows any. */
  allowedOrigins?: string[]
  /** Host names besides loopback names and IP literals accepted in `Host`. */
  allowedHosts?: string[]
}

export class BrowserGuard {
  readonly #origins: Set<string>
  readonly #anyOrigin: boolean
  readonly #hosts: Set<string>

  constructor (options: GuardOptions = {}) {
    this.#origins = new Set((options.allowedOrigins ?? []).filter((o) => o !== '*').map((o) => o.toLowerCase()))
    this.#anyOrigin = (options.allowedOrigins ?? []).includes('*')
    this.#hosts = new Set((options.allowedHosts ?? []).map((h) => h.toLowerCase()))
  }

  /** Throws 403 (code 1009) for a request from a host name or an origin that is not allowed. */
  check (ctx: Context): void {
    const host = ctx.get('host')
    if (host !== '' && !this.hostAllowed(hostName(host))) {
      throw new AicnError(ErrorCode.PERMISSION, `Host "${clip(host)}" is not allowed: use 127.0.0.1 or localhost, or add the name to API.AllowedHosts`, { status: 403 })
    }
    const origin = ctx.get('origin')
    if (origin !== '' && !this.originAllowed(origin, ctx.req.socket.localPort)) {
      throw new AicnError(ErrorCode.PERMISSION, `requests from the web origin "${clip(origin)}" are not allowed: add it to API.AllowedOrigins`, { status: 403 })
    }
  }

  /** Whether a configured origin (not the node's own) may read answers: the CORS grant. */
  corsOrigin (origin: string): boolean {
    return origin !== '' && origin !== 'null' && (this.#anyOrigin || this.#origins.has(origin.toLowerCase()))
  }

  hostAllowed (name: string): boolean {
    const lower = name.toLowerCase()
    // An IP literal cannot be re-bound, so it is safe whatever it is: it names the address the client dialled.
    return isLoopbackName(lower) || isIP(lower) !== 0 || this.#hosts.has(lower)
  }

  /** The node's own origins are http://<allowed host>:<the port this request came in on>. */
  originAllowed (origin: string, localPort: number | undefined): boolean {
    if (this.corsOrigin(origin)) return true
    let url: URL
    try { url = new URL(origin) } catch { return false }
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port)
    return url.protocol === 'http:' && port === localPort && this.hostAllowed(url.hostname.replace(/^\[|\]$/g, ''))
  }
}

/** A request a browser made: browsers always send one of these on the requests a page can trigger. */
export function fromBrowser (ctx: Context): boolean {
  return ctx.get('origin') !== '' || ctx.get('sec-fetch-site') !== ''
}

/** Throws 415 when a browser sends a state-changing request in a type a page can send without a preflight. */
export function requireJsonFromBrowsers (ctx: Context, allowMultipart: boolean): void {
  if (!fromBrowser(ctx) || ctx.req.headers['content-length'] === '0') return
  const type = (ctx.get('content-type').split(';')[0] ?? '').trim().toLowerCase()
  if (type === '' && ctx.req.headers['content-length'] === undefined && ctx.req.headers['transfer-encoding'] === undefined) return
  if (type === 'application/json' || type.endsWith('+json')) return
  if (allowMultipart && type === 'multipart/form-data') return
  throw new AicnError(ErrorCode.PARAM, `from a browser this endpoint takes only Content-Type: application/json${allowMultipart ? ' or multipart/form-data' : ''}`, { status: 415 })
}

function isLoopbackName (name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost') || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
}

/** The name part of a Host header: `[::1]:6080` → `::1`, `localhost:6080` → `localhost`. */
function hostName (host: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host)
  if (bracketed !== null) return bracketed[1]
  const colon = host.lastIndexOf(':')
  return colon >= 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host
}

function clip (text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?')
  return printable.length > 100 ? `${printable.slice(0, 100)}...` : printable
}
