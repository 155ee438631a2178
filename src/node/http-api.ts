// The node's HTTP API: every route (src/api/routes/), the console's files, and the two listeners, API.Addr
// for the Go node's clients and API.WebAddr for browsers and fetch-based SDKs, which refuse port 6000
// (WHATWG fetch "bad ports"). Listeners opened before the node started (src/api/early.ts) are adopted.
import { join } from 'node:path'
import type { Registry } from 'prom-client'
import type { Config } from '../config/types.ts'
import { WEB_OFF } from '../config/defaults.ts'
import type { Logger } from '../core/logger.ts'
import type { JobTimeouts } from '../core/job-types.ts'
import { PACKAGE_ROOT } from '../core/package-root.ts'
import { AGENT_VERSION, VERSION } from '../core/version.ts'
import { HttpServer } from '../api/index.ts'
import { consoleMiddleware, loadConsoleFiles } from '../api/console.ts'
import { connectionLimitsOf } from '../api/connection-limits.ts'
import { adoptOrListen, type EarlyApi } from '../api/early.ts'
import { consoleRoutes } from '../api/routes/console.ts'
import { controlRoutes } from '../api/routes/control.ts'
import { jobRoutes } from '../api/routes/jobs.ts'
import { keyRoutes } from '../api/routes/keys.ts'
import { registryRoutes } from '../api/routes/registry.ts'
import { statusRoutes, type NodeStatus } from '../api/routes/status.ts'
import type { Gateway } from '../gateway/gateway.ts'
import type { GatewayDb } from '../gateway/store.ts'
import type { JobDispatcher } from '../jobs/dispatcher.ts'
import type { NodeMetrics } from '../metrics/node-metrics.ts'
import type { NetworkRegistry } from '../protocols/network.ts'
import type { HealthChecker } from '../registry/health.ts'
import { healthKey } from '../registry/health-sync.ts'
import type { LocalRegistry } from '../registry/local.ts'
import type { NetworkView } from '../registry/view.ts'
import type { ConnectionInfo } from '../web/console-types.ts'
import type { NodeControl } from './control.ts'
import type { StopSteps } from './stop-steps.ts'

/** How long a register call waits for the first probe of the model's server before answering. */
const REGISTER_PROBE_WAIT_MS = 2_000

/** What the routes serve: the node's parts, built by src/node/node.ts. */
export interface HttpApiParts {
  config: Config
  log: Logger
  metrics: Registry
  early?: EarlyApi
  nodeId: string
  /** ms since the epoch */
  startedAt: number
  heartbeatMs: number
  timeoutsMs: JobTimeouts
  control: NodeControl
  local: LocalRegistry
  network: NetworkRegistry
  view: NetworkView
  health: HealthChecker
  nodeMetrics: NodeMetrics
  dispatcher: JobDispatcher
  gateway: Gateway
  gatewayDb: GatewayDb
  keysRequired: boolean
  connections: () => ConnectionInfo[]
  connectedPeers: () => number
  /** host:port of the node's own listeners; the API's are added as they open (src/models/model-target.ts) */
  ownListeners: string[]
}

/** Builds the app, opens (or adopts) both listeners and serves; stopped through `steps`. */
export async function startHttpApi (parts: HttpApiParts, steps: StopSteps): Promise<{ api: string, web?: string }> {
  const { config, log } = parts
  const urls = { api: '', web: '' }
  // The web console (README "Console"), served only on the web listener: browsers refuse API.Addr's 6000.
  const consoleFiles = config.API.WebAddr === WEB_OFF ? undefined : await loadConsoleFiles(join(PACKAGE_ROOT, 'dist', 'console'))
  if (config.API.WebAddr !== WEB_OFF && consoleFiles === undefined) log.warn('the web console is not built (npm run build): / on the web listener answers 404')
  let webPort: number | undefined
  const http = new HttpServer({
    routes: nodeRoutes(parts, () => overview(parts, urls)),
    logger: log,
    registry: parts.metrics,
    guard: { allowedOrigins: config.API.AllowedOrigins, allowedHosts: config.API.AllowedHosts },
    access: { adminKey: config.API.AdminKey, checkJobKey: async (authorization) => { await parts.gateway.checkKey(authorization) } },
    fallback: consoleFiles === undefined ? undefined : consoleMiddleware(consoleFiles, { servesPort: (port) => port === webPort }),
    connectionLimits: connectionLimitsOf(config.API)
  })
  steps.add('HTTP API', async () => { await http.close() })
  const listening = await adoptOrListen(http, parts.early, config.API.Addr, 'API.Addr')
  parts.ownListeners.push(`${listening.host}:${listening.port}`)
  log.info({ url: listening.url }, 'HTTP API listening')
  const web = config.API.WebAddr === WEB_OFF ? undefined : await adoptOrListen(http, parts.early, config.API.WebAddr, 'API.WebAddr')
  if (web !== undefined) {
    parts.ownListeners.push(`${web.host}:${web.port}`)
    log.info({ url: web.url }, 'web listener (browsers, fetch, SDKs) listening')
  }
  webPort = web?.port
  urls.api = listening.url
  urls.web = web?.url ?? ''
  parts.early?.serve(http.requestListener)
  return { api: listening.url, web: web?.url }
}

function nodeRoutes (parts: HttpApiParts, status: () => NodeStatus): ReturnType<typeof controlRoutes> {
  const { config, local, network, health, gateway, gatewayDb, nodeMetrics } = parts
  return [
    ...controlRoutes(parts.control),
    ...registryRoutes(local, network, async (project, model, cid) => await health.settle(healthKey(project, model, cid), REGISTER_PROBE_WAIT_MS)),
    ...statusRoutes(status),
    ...jobRoutes({
      dispatcher: parts.dispatcher,
      timeoutsMs: parts.timeoutsMs,
      ipfsNodes: config.Jobs.IpfsNodes,
      meter: async (authorization, head, body, endpoint) => await gateway.meterCall(authorization, head, body, endpoint),
      onUsage: (model, promptTokens, completionTokens) => { nodeMetrics.usage(model, promptTokens, completionTokens) }
    }),
    ...keyRoutes(gatewayDb.keys, gatewayDb.usage),
    ...gateway.routes(),
    ...consoleRoutes({
      selfId: parts.nodeId,
      version: AGENT_VERSION,
      startedAt: parts.startedAt,
      role: config.App.PeersCollect.Enabled ? 'input' : 'worker',
      psk: config.App.PreSharedKey !== '',
      keysRequired: parts.keysRequired,
      local,
      view: parts.view,
      connections: parts.connections,
      latencyMicros: (nodeId) => network.latencyMicros(nodeId),
      routingFreshMs: 3 * parts.heartbeatMs,
      healthReason: (project, model, cid) => health.reason(healthKey(project, model, cid))
    })
  ]
}

/** What `aicn status` shows (`/api/v0/node/overview`). */
function overview (parts: HttpApiParts, listeners: { api: string, web: string }): NodeStatus {
  const { local, health, nodeMetrics } = parts
  return {
    node_id: parts.nodeId,
    version: VERSION,
    uptime_seconds: Math.max(0, Math.round((Date.now() - parts.startedAt) / 1000)),
    listeners,
    peers: { connected: parts.connectedPeers(), list: parts.control.swarmPeers().map(({ peer, addr, latency, direction }) => ({ peer, addr, latency, direction })) },
    view_nodes: parts.view.nodes().length,
    models: local.projects().flatMap((p) => p.models.map((m) => ({
      project: m.project, model: m.model, cid: m.cid, api: m.api, type: m.type, busy: m.busy, available: m.available,
      reason: m.available ? '' : health.reason(healthKey(m.project, m.model, m.cid))
    }))),
    last_minute: { jobs: nodeMetrics.jobsLastMinute.total(), errors: nodeMetrics.errorsLastMinute.total() }
  }
}
