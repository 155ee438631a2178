// How the CLI talks to the running node: its admin API, found through the `api` file the daemon writes
// next to its config (src/cli/daemon.ts). node:http, not fetch: fetch refuses port 6000, the default
// API.Addr (a WHATWG "bad port"). Every call is bounded in time and in the size of the answer.
import http from 'node:http'
import { readFile } from 'node:fs/promises'
import { UsageError } from '../core/errors.ts'
import { apiFilePath } from './paths.ts'

/** An answer larger than this is not one of ours. */
const MAX_ANSWER = 8 * 1024 * 1024

/** `body` is the parsed JSON answer; callers narrow it to the shape they read. */
export interface ApiAnswer { status: number, body: unknown }

/** The URL of the daemon running this config, or undefined when there is no `api` file. */
export async function daemonUrl (configPath: string): Promise<string | undefined> {
  try {
    const text = (await readFile(apiFilePath(configPath), 'utf8')).trim()
    return text === '' ? undefined : text
  } catch {
    return undefined
  }
}

/** One request; rejects when the node cannot be reached (refused, timed out). */
export async function callApi (base: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<ApiAnswer> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
  return await new Promise<ApiAnswer>((resolve, reject) => {
    const req = http.request(new URL(path, base), {
      method: payload === undefined ? 'GET' : 'POST',
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(payload.length) },
      timeout: timeoutMs
    }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_ANSWER) req.destroy(new Error('answer too large'))
        else chunks.push(chunk)
      })
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`no answer from ${base} within ${timeoutMs} ms`)) })
    req.on('error', reject)
    req.end(payload)
  })
}

/** The running node's answer to an admin call, unwrapped from the envelope; undefined when no node runs
 * for this config (no `api` file, or a stale one: nobody answers). An error answer throws its message. */
export async function adminCall (configPath: string, path: string, body: unknown = {}): Promise<Envelope | undefined> {
  const base = await daemonUrl(configPath)
  if (base === undefined) return undefined
  let answer: ApiAnswer
  try {
    answer = await callApi(base, path, body)
  } catch {
    return undefined
  }
  const envelope = answer.body as { code?: number, message?: string, data?: unknown }
  if (typeof envelope !== 'object' || envelope === null || envelope.code !== 0) {
    throw new UsageError(typeof envelope?.message === 'string' ? envelope.message : `the node answered HTTP ${answer.status}`)
  }
  return { data: envelope.data, message: envelope.message ?? '' }
}

export interface Envelope { data: unknown, message: string }

/** adminCall for commands that need the node running. */
export async function requireDaemon (configPath: string, path: string, body: unknown = {}): Promise<Envelope> {
  const base = await daemonUrl(configPath)
  const notRunning = `the node of ${configPath} is not running; start it with "aicn daemon --config ${configPath}" (or --background)`
  if (base === undefined) throw new UsageError(notRunning)
  try {
    await callApi(base, '/api/v0/id', undefined, 5_000)
  } catch {
    throw new UsageError(notRunning)
  }
  const answer = await adminCall(configPath, path, body)
  if (answer === undefined) throw new UsageError(notRunning)
  return answer
}
