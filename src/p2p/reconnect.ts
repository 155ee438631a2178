// Wires the connection history to the host: records dialable addresses of every peer we connect to,
// and at start redials the peers we knew (as the Go node does at start); keeps the bootstrap peers connected.
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../core/logger.ts'
import type { ConnectionHistory } from './history.ts'
import type { Host } from './host.ts'
import type { NodeAddress } from './swarm.ts'

const REDIAL_CONCURRENCY = 16
const REDIAL_TIMEOUT_MS = 10_000

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

export function recordConnections (host: Host, history: ConnectionHistory, log: Logger): void {
  const record = (peerId: string, addrs: Multiaddr[]): void => {
    const addresses = addrs.map(dialableAddress).filter((a): a is string => a !== undefined)
    history.connected(peerId, addresses).catch((err: Error) => { log.warn({ err: err.message, peer: peerId }, 'could not record connection') })
  }
  host.addEventListener('peer:identify', (event) => {
    record(event.detail.peerId.toString(), event.detail.listenAddrs)
  })
  host.addEventListener('connection:open', (event) => {
    const connection = event.detail
    // An inbound connection's remote port is ephemeral; only outbound ones name a dialable address.
    record(connection.remotePeer.toString(), connection.direction === 'outbound' ? [connection.remoteAddr] : [])
  })
}

export interface RedialResult { connected: number, failed: number, forgotten: number }

/** Dials every peer in the history that is not connected yet, except those listed in `skip`. */
export async function redialHistory (host: Host, history: ConnectionHistory, skip: Set<string>, log: Logger): Promise<RedialResult> {
  const self = host.peerId.toString()
  const connectedPeers = new Set(host.getPeers().map((p) => p.toString()))
  const queue = (await history.entries()).filter(([id]) => id !== self && !skip.has(id) && !connectedPeers.has(id))
  const result: RedialResult = { connected: 0, failed: 0, forgotten: 0 }

  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const [peerId, record] = next
      try {
        const addrs = record.Addresses.map((a) => multiaddr(`${a}/p2p/${peerId}`))
        await host.dial(addrs, { signal: AbortSignal.timeout(REDIAL_TIMEOUT_MS) })
        result.connected++
      } catch (err) {
        result.failed++
        log.debug({ peer: peerId, err: (err as Error).message }, 'redial from history failed')
        if (await history.failed(peerId) === 'forgotten') result.forgotten++
      }
    }
  }
  await Promise.all(Array.from({ length: REDIAL_CONCURRENCY }, worker))
  return result
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
