import { parseDuration } from '../../core/duration.ts'
import { AicnError, ErrorCode } from '../../core/errors.ts'
import type { RouteContext } from '../../web/route.ts'

/** A query that may travel to another node: cancelled with the HTTP request, optionally with its own
 * timeout, which bounds the whole call, finding the node included (src/node/peer-transport.ts). */
export interface RemoteCall { signal: AbortSignal, timeoutMs?: number }

const MAX_TIMEOUT_MS = 5 * 60_000

/** Queries that reach another node take an optional `timeout` (a Go duration such as "5s", as kubo's API). */
export function remoteCall (rc: RouteContext): RemoteCall {
  const text = rc.params.optionalString('timeout')
  if (text === undefined || text === '') return { signal: rc.signal }
  let timeoutMs: number
  try {
    timeoutMs = parseDuration(text)
  } catch {
    throw new AicnError(ErrorCode.PARAM, `timeout "${text}" is not a duration such as "10s"`)
  }
  if (timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) throw new AicnError(ErrorCode.PARAM, 'timeout must be between 1ms and 5m')
  return { signal: rc.signal, timeoutMs }
}

