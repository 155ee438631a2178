// Wires the connection history to the host: records dialable addresses of every peer we connect to,
// and at start redials the peers we knew (reference §3 step 11, §12.1).
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../logger.ts'
import type { ConnectionHistory } from './history.ts'
import type { Host } from './host.ts'

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
