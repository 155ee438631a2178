// The web console's static files (built by `npm run build` into dist/console/, sources in console/),
// served at `/` on the web listener by the HTTP server's fallback: after the routes, for paths they did
// not match. The files are read once at start into memory, so a request can only ever get one of them:
// there is no path on disk to traverse to. GET and HEAD only; every answer carries a strict
// Content-Security-Policy (no inline script or style, nothing from other origins).
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import type { Middleware } from 'koa'

export interface StaticFile { body: Buffer, type: string, etag: string }

/** URL path ('/', '/main.js', '/panels/chat.js') → file. */
export type ConsoleFiles = Map<string, StaticFile>

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8'
}

const MAX_DEPTH = 4
const MAX_FILES = 500

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join('; ')

const SECURITY_HEADERS = {
  'Content-Security-Policy': CONSOLE_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin'
}

/** Reads the built console (files with a known type; source maps and the rest are left out). Resolves
 * to undefined when the folder has no index.html (the console was not built). */
export async function loadConsoleFiles (dir: string): Promise<ConsoleFiles | undefined> {
  const files: ConsoleFiles = new Map()
  const walk = async (folder: string, prefix: string, depth: number): Promise<void> => {
    const entries = await readdir(folder, { withFileTypes: true }).catch(() => [])
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (files.size >= MAX_FILES || entry.name.startsWith('.')) continue
      const path = join(folder, entry.name)
      if (entry.isDirectory() && depth < MAX_DEPTH) {
        await walk(path, `${prefix}${entry.name}/`, depth + 1)
      } else if (entry.isFile() && TYPES[extname(entry.name)] !== undefined) {
        const body = await readFile(path)
        const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
        files.set(`${prefix}${entry.name}`, { body, type: TYPES[extname(entry.name)], etag })
      }
    }
  }
  await walk(dir, '/', 0)
  const index = files.get('/index.html')
  if (index === undefined) return undefined
  files.set('/', index)
  return files
}

export interface ConsoleOptions {
  /** Whether to serve on the listener a request came in on (by its local port); default all. */
  servesPort?: (localPort: number | undefined) => boolean
}

/** Koa middleware answering the console's files; anything else goes on to `next`. The files are not
 * renamed per build, so browsers must revalidate (no-cache); the ETag makes that a 304. */
export function consoleMiddleware (files: ConsoleFiles, options: ConsoleOptions = {}): Middleware {
  return async (ctx, next) => {
    const file = files.get(ctx.path)
    if (file === undefined || options.servesPort?.(ctx.req.socket.localPort) === false) {
      await next()
      return
    }
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      // Answered as the router's 405s are (src/api/errors.ts).
      ctx.set('Allow', 'GET, HEAD')
      ctx.status = 405
      return
    }
    ctx.set(SECURITY_HEADERS)
    ctx.set('Cache-Control', 'no-cache')
    ctx.etag = file.etag
    ctx.status = 200
    if (ctx.fresh) {
      ctx.status = 304
      return
    }
    ctx.type = file.type
    ctx.body = file.body
  }
}
