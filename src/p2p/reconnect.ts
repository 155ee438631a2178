// Reconnecting: which addresses of a peer can be dialled later (the connection history records them and
// redials them at start: src/p2p/peer-history/), and keeping the bootstrap peers connected
// (src/p2p/bootstrap-keeper/).
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../core/logger.ts'
import type { Host } from './host.ts'
import type { NodeAddress } from './swarm.ts'

/** How long one redial may take (history or bootstrap peer). */
export const REDIAL_TIMEOUT_MS = 10_000

/** The address without its trailing /p2p/<id>, or undefined when it cannot be dialled later. */
export function dialableAddress (addr: Multiaddr): string | undefined {
  const components = addr.getComponents()
  const names = components.map((c) => c.name)
  // Unspecified and circuit addresses are not stable ways to reach the peer again.
  if (names.includes('p2p-circuit')) return undefined
  const host = components[0]?.value
  if (host === '0.0.0.0' || host === '::') return undefined
  const withoutPeer = components.filter((c) => c.name !== 'p2p')
  return multiaddr(withoutPeer).toString()
}

const BOOTSTRAP_CHECK_MS = 30_000

/**
 * Every `intervalMs`, dials the bootstrap peers this node is not connected to, one at a time. libp2p's
 * bootstrap module dials them once at start; a worker whose first dials failed (its input node was down,
 * or refused it: libp2p turns away more than 5 new connections a second from one address) stayed alone
 * until restarted — 7 of 48 workers in the N = 50 scale run. The Go node redials its bootstrap peers every
 * 30 s too (they are its gossipsub direct peers). Returns a function that stops it.
 */
export function keepBootstrapPeers (host: Pick<Host, 'status' | 'getConnections' | 'dial'>, bootstrap: NodeAddress[], log: Logger, intervalMs = BOOTSTRAP_CHECK_MS): () => void {
  let checking = false
  const check = async (): Promise<void> => {
    if (checking) return
    checking = true
    try {
      for (const { addr, peerId } of bootstrap) {
        if (host.status !== 'started' || host.getConnections(peerId).length > 0) continue
        try {
          await host.dial(addr, { signal: AbortSignal.timeout(REDIAL_TIMEOUT_MS) })
          log.info({ peer: peerId.toString() }, 'reconnected to a bootstrap peer')
        } catch (err) {
          log.debug({ peer: peerId.toString(), err: (err as Error).message }, 'bootstrap peer still unreachable')
        }
      }
    } finally {
      checking = false
    }
  }
  const timer = setInterval(() => { void check() }, intervalMs)
  timer.unref()
  return () => { clearInterval(timer) }
}
