// `aicn status`: one screen on the running node (issue 15) — node, listeners, peers, the models
// registered here and their health, jobs and errors in the last minute. From /api/v0/node/overview
// (src/api/routes/status.ts); --json prints that answer as it is.
import type { NodeStatus } from '../api/routes/status.ts'
import { requireDaemon } from './client.ts'
import type { Output } from './daemon.ts'
import { table } from './table.ts'

const TYPES = ['chat', 'text-to-image', 'image-edit', 'embeddings', 'completion']

export async function runStatus (configPath: string, out: Output, options: { json?: boolean } = {}): Promise<void> {
  const status = (await requireDaemon(configPath, '/api/v0/node/overview')).data as NodeStatus
  if (options.json === true) { out.line(JSON.stringify(status, null, 2)); return }
  out.line(`Node       ${status.node_id}  (aicn ${status.version}, up ${duration(status.uptime_seconds)})`)
  out.line(`Listeners  ${status.listeners.api}${status.listeners.web === '' ? '' : `  web ${status.listeners.web}`}`)
  out.line(`Peers      ${status.peers.connected} connected, ${status.view_nodes} nodes in the network's view`)
  const errors = status.last_minute.errors
  out.line(`Jobs       ${status.last_minute.jobs} in the last minute, ${errors} ${errors === 1 ? 'error' : 'errors'}`)
  out.line('')
  if (status.models.length === 0) {
    out.line('Models     none registered ("aicn models register" adds one)')
  } else {
    const rows = status.models.map((m) => [m.project, m.model + (m.cid === '' ? '' : ` (${m.cid})`), TYPES[m.type] ?? String(m.type), m.available ? 'up' : `DOWN: ${m.reason === '' ? 'no answer' : m.reason}`, m.busy, m.api])
    for (const line of table(['PROJECT', 'MODEL', 'TYPE', 'HEALTH', 'BUSY', 'API'], rows)) out.line(line)
  }
  if (status.peers.list.length > 0) {
    out.line('')
    for (const line of table(['PEER', 'ADDRESS', 'LATENCY', 'DIRECTION'], status.peers.list.map((p) => [p.peer, p.addr, p.latency, p.direction]))) out.line(line)
  }
}

function duration (seconds: number): string {
  const d = Math.floor(seconds / 86_400)
  const h = Math.floor(seconds / 3600) % 24
  const m = Math.floor(seconds / 60) % 60
  const s = seconds % 60
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s}s` : `${s}s`
}
