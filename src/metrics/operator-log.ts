// The info lines an operator reads (issue 15): peers joining and leaving, a peer with another
// pre-shared key, and a one-line summary every minute. Node wiring lives in src/node/node.ts.
import type { PeerId } from '@libp2p/interface'
import type { Logger } from '../core/logger.ts'
import type { Host } from '../p2p/host.ts'
import type { PskMismatches } from '../p2p/psk-watch.ts'
import type { NodeMetrics } from './node-metrics.ts'

/** Logs each peer that connects or disconnects (its first connection opened, its last one closed). */
export function logPeerEvents (host: Host, log: Logger): () => void {
  const onConnect = (event: CustomEvent<PeerId>): void => {
    const addr = host.getConnections(event.detail)[0]?.remoteAddr.toString()
    log.info({ peer: event.detail.toString(), ...(addr === undefined ? {} : { addr }) }, 'peer connected')
  }
  const onDisconnect = (event: CustomEvent<PeerId>): void => {
    log.info({ peer: event.detail.toString() }, 'peer disconnected')
  }
  host.addEventListener('peer:connect', onConnect)
  host.addEventListener('peer:disconnect', onDisconnect)
  return () => {
    host.removeEventListener('peer:connect', onConnect)
    host.removeEventListener('peer:disconnect', onDisconnect)
  }
}

/** Warns once a minute per address about a peer whose pre-shared key differs (the Go node warns too). */
export function logPskMismatches (mismatches: PskMismatches, log: Logger): () => void {
  return mismatches.onMismatch((m) => {
    if (m.fresh === false) return
    const who = m.direction === 'inbound' ? `a peer at ${m.remoteAddr} tried to connect` : `the peer at ${m.remoteAddr} answered`
    log.warn({ addr: m.remoteAddr, direction: m.direction }, `${who} with a different pre-shared key (App.PreSharedKey): it is in another private network; connection refused`)
  })
}

export interface SummarySources {
  peers: () => number
  viewNodes: () => number
  models: () => { up: number, down: number }
}

/** Every `intervalMs`, one info line: peers, models up/down, jobs and errors in the last minute. */
export function startSummary (metrics: NodeMetrics, sources: SummarySources, log: Logger, intervalMs = 60_000): () => void {
  const timer = setInterval(() => {
    const models = sources.models()
    const fields = {
      peers: sources.peers(),
      nodes: sources.viewNodes(),
      modelsUp: models.up,
      modelsDown: models.down,
      jobsPerMin: metrics.jobsLastMinute.total(),
      errorsPerMin: metrics.errorsLastMinute.total()
    }
    log.info(fields, `summary: ${fields.peers} peers, ${fields.nodes} nodes in view, models ${fields.modelsUp} up / ${fields.modelsDown} down, ${fields.jobsPerMin} jobs/min, ${fields.errorsPerMin} errors/min`)
  }, intervalMs)
  timer.unref()
  return () => { clearInterval(timer) }
}
