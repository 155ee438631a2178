// The info lines an operator reads (issue 15): a peer with another pre-shared key, and a one-line summary
// every minute (peers joining and leaving: the peer-log service, src/metrics/peer-log/). Node wiring lives
// in src/node/node.ts.
import type { Logger } from '../core/logger.ts'
import type { PskMismatches } from '../p2p/psk-watch.ts'
import type { NodeMetrics } from './node-metrics.ts'

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
