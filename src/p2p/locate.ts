// Finding the addresses of a node we are neither connected to nor have addresses for, before we ask it
// anything (issue 13, part 8). The DHT lookup gets a deadline of its own: without it, a request for a node
// nobody knows waited as long as the dial's signal allowed (a chat to an unknown node_id answered after
// 185 s, the job's 3 min plus grace; `timeout: "5s"` on peer took the old fixed 10 s lookup).
import type { AbortOptions, PeerId } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../core/errors.ts'

/** How long a DHT lookup for one node may take. */
export const LOOKUP_TIMEOUT_MS = 10_000

export interface LocateOptions {
  /** the caller's: the HTTP client went away */
  signal: AbortSignal
  /** the request's own deadline (ms since epoch), if it has one: the lookup never outlasts it */
  deadline?: number
  lookupTimeoutMs?: number
}

/** What locating a node takes from libp2p (a node satisfies it): connections, known addresses, the DHT. */
export interface LocateComponents {
  getConnections: (peer: PeerId) => unknown[]
  peerStore: { get: (peer: PeerId) => Promise<{ addresses: unknown[] }> }
  peerRouting: { findPeer: (peer: PeerId, options?: AbortOptions & { useCache?: boolean }) => Promise<unknown> }
}

/** Resolves once the peer is connected or has known addresses. Throws AicnError ROUTING (404) when the
 * network does not know the node within the lookup deadline, TIMEOUT (504) when the request's own
 * deadline ran out first, STREAM when the caller gave up. */
export async function locatePeer (host: LocateComponents, peerId: PeerId, options: LocateOptions): Promise<void> {
  if (host.getConnections(peerId).length > 0) return
  const known = await host.peerStore.get(peerId).then((p) => p.addresses.length > 0, () => false)
  if (known) return
  const lookupMs = options.lookupTimeoutMs ?? LOOKUP_TIMEOUT_MS
  const left = options.deadline === undefined ? Infinity : options.deadline - Date.now()
  if (left <= 0) throw timeoutError(peerId)
  const timeout = AbortSignal.timeout(Math.min(lookupMs, left))
  try {
    await host.peerRouting.findPeer(peerId, { signal: AbortSignal.any([options.signal, timeout]), useCache: false })
  } catch {
    if (options.signal.aborted) throw new AicnError(ErrorCode.STREAM, 'cancelled')
    if (timeout.aborted && left <= lookupMs) throw timeoutError(peerId)
    throw new AicnError(ErrorCode.ROUTING, `node ${peerId.toString()} was not found in the network`)
  }
}

function timeoutError (peerId: PeerId): AicnError {
  return new AicnError(ErrorCode.TIMEOUT, `node ${peerId.toString()} was not found before the request's timeout`)
}
