// Calls to this node's API, same origin. Answers in the envelope `{"code","message","data"}` give their
// data; anything else throws an ApiError with the node's message. Browser POSTs are JSON (the node refuses
// other types from pages, src/api/guard.ts).

export class ApiError extends Error {
  readonly status: number
  constructor (status: number, message: string) {
    super(message)
    this.status = status
  }
}

const TIMEOUT_MS = 30_000

async function request (path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
  const timeout = AbortSignal.timeout(TIMEOUT_MS)
  return await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
    cache: 'no-store'
  })
}

/** An `/api/v0` call that answers in the envelope: resolves to `data`. */
export async function call<T> (path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const response = await request(path, body, signal)
  const parsed = await response.json().catch(() => undefined) as { code?: unknown, message?: unknown, data?: unknown } | undefined
  if (parsed === undefined || typeof parsed !== 'object' || parsed === null) throw new ApiError(response.status, `${path}: HTTP ${response.status}`)
  if (parsed.code !== 0 || !response.ok) throw new ApiError(response.status, typeof parsed.message === 'string' ? parsed.message : `HTTP ${response.status}`)
  return parsed.data as T
}

/** A call whose answer is bare JSON (`id`, `swarm/peers`, `/v1/models`). */
export async function callRaw<T> (path: string, signal?: AbortSignal): Promise<T> {
  const response = await request(path, undefined, signal)
  const parsed = await response.json().catch(() => undefined) as T | undefined
  if (!response.ok || parsed === undefined) throw new ApiError(response.status, `${path}: HTTP ${response.status}`)
  return parsed
}

export function errorText (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
