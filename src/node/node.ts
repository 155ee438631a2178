// The one place that wires everything together: config → identity → datastore → libp2p host →
// protocols → HTTP API, and the reverse on stop.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { LevelDatastore } from 'datastore-level'
import { Registry } from 'prom-client'
import type { Config } from '../config/types.ts'
import { ConfigStore } from '../config/store.ts'
import { removeStaleTemps } from '../config/save.ts'
import { HostInfoCollector } from '../hostinfo/index.ts'
import { createHost, dhtProtocol, type Host } from '../p2p/host.ts'
import { identityFromBase64 } from '../p2p/identity.ts'
import { ConnectionHistory } from '../p2p/history.ts'
import { peerHistory } from '../p2p/peer-history/index.ts'
import { bootstrapKeeper } from '../p2p/bootstrap-keeper/index.ts'
import { latencyTracker } from '../p2p/latency/index.ts'
import { rendezvous as rendezvousService } from '../p2p/rendezvous/index.ts'
import { parseNodeAddr } from '../p2p/swarm.ts'
import { rpc as rpcService } from '../protocols/rpc/index.ts'
import { registerQueryHandlers } from '../protocols/queries.ts'
import { NodeControl } from './control.ts'
import { HttpServer } from '../api/index.ts'
import { controlRoutes } from '../api/routes/control.ts'
import { registryRoutes } from '../api/routes/registry.ts'
import { parseDuration } from '../core/duration.ts'
import { LocalRegistry } from '../registry/local.ts'
import { NetworkView } from '../registry/view.ts'
import { GO_DEFAULT_INTERVAL_MS, routingWindowMs } from '../registry/rhythm.ts'
import { NetworkRegistry } from '../protocols/network.ts'
import { checkModelApiWith } from '../registry/model-api.ts'
import { ModelTargets, pinnedLookup, portOf } from '../models/model-target.ts'
import { HealthChecker, httpProbeReason } from '../registry/health.ts'
import { directPeerLiveness } from '../registry/liveness/index.ts'
import { applyHealth, watchRegisteredModels } from '../registry/health-sync.ts'
import { heartbeats as heartbeatService, registerRefreshForwardingMetrics } from '../protocols/heartbeat/index.ts'
import { viewSync as viewSyncService } from '../registry/view-sync/index.ts'
import { PeerTransport } from './peer-transport.ts'
import { broadcastRpc, makeBroadcastHandlers } from '../compat/broadcast-rpc/index.ts'
import { chatProxy as chatProxyService } from '../compat/chat-proxy/index.ts'
import { jobProtocol } from '../protocols/job/index.ts'
import { budgetOptions, defaultBudgets, registerBudgetMetrics } from '../p2p/peer-budget.ts'
import { jobTimeoutsFrom } from '../config/job-timeouts.ts'
import { ModelClient } from '../models/client.ts'
import { LocalExecutor } from '../jobs/local.ts'
import { NodeSelector } from '../jobs/selector.ts'
import { JobDispatcher } from '../jobs/dispatcher.ts'
import { jobRoutes } from '../api/routes/jobs.ts'
import { keyRoutes } from '../api/routes/keys.ts'
import { consoleRoutes } from '../api/routes/console.ts'
import { consoleMiddleware, loadConsoleFiles } from '../api/console.ts'
import { PACKAGE_ROOT } from '../core/package-root.ts'
import { openGatewayDb } from '../gateway/store.ts'
import { Gateway } from '../gateway/gateway.ts'
import { Limiter } from '../gateway/limits.ts'
import { priceTableFrom } from '../gateway/pricing.ts'
import { parseHostPort } from '../config/validate.ts'
import { WEB_OFF } from '../config/defaults.ts'
import { NODE_TYPE } from '../protocols/heartbeat-codec.ts'
import type { Logger } from '../core/logger.ts'
import { AGENT_VERSION, VERSION } from '../core/version.ts'
import { PskMismatches } from '../p2p/psk-watch.ts'
import { NodeMetrics } from '../metrics/node-metrics.ts'
import { logPskMismatches, startSummary } from '../metrics/operator-log.ts'
import { peerLog } from '../metrics/peer-log/index.ts'
import { statusRoutes, type NodeStatus } from '../api/routes/status.ts'
import { healthKey } from '../registry/health-sync.ts'
import { adoptOrListen, type EarlyApi } from '../api/early.ts'
import { connectionLimitsOf } from '../api/connection-limits.ts'

export interface NodeOptions {
  configPath: string
  config: Config
  log: Logger
  /** the API's listeners, opened before the node started (src/api/early.ts); opened here when absent */
  early?: EarlyApi
}

export class AicnNode {
  readonly host: Host
  readonly control: NodeControl
  readonly apiUrl: string
  /** The browser-safe listener (API.WebAddr), undefined when it is "off". */
  readonly webUrl: string | undefined
  private readonly stopSteps: StopStep[]
  private readonly log: Logger

  private constructor (host: Host, control: NodeControl, urls: { api: string, web?: string }, stopSteps: StopStep[], log: Logger) {
    this.host = host
    this.control = control
    this.apiUrl = urls.api
    this.webUrl = urls.web
    this.stopSteps = stopSteps
    this.log = log
  }

  static async start (options: NodeOptions): Promise<AicnNode> {
    const { config, log } = options
    // Everything started so far, stopped in reverse order if a later step fails or on stop().
    const stopSteps: StopStep[] = []
    const started = (name: string, run: StopStep['run']): void => { stopSteps.push({ name, run }) }
    try {
      const identity = identityFromBase64(config.Identity.PrivKey)
      const store = new ConfigStore(options.configPath, config)
      const staleTemps = await removeStaleTemps(options.configPath)
      if (staleTemps > 0) log.info({ removed: staleTemps }, 'removed temp files left by an interrupted config save')
      const topic = config.App.TopicName
      const heartbeatMs = parseDuration(config.App.PeersCollect.HeartbeatInterval)

      // Databases on disk.
      const peerstorePath = join(config.App.Datastore, 'peerstore')
      await mkdir(peerstorePath, { recursive: true })
      const datastore = new LevelDatastore(peerstorePath)
      await datastore.open()
      started('peer store', async () => { await datastore.close() })
      const history = new ConnectionHistory(join(config.App.Datastore, 'conns.db'), log)
      await history.open()
      started('connection history', async () => { await history.close() })
      // A node counts for routing while heard within three of its own heartbeat intervals (rhythm.ts); an
      // entry saved by an older version, without its interval, gets the window of a Go node's default.
      const view = new NetworkView({ path: join(config.App.Datastore, 'view.db'), routingFreshMs: routingWindowMs(GO_DEFAULT_INTERVAL_MS), log })
      await view.open()
      started('network view', async () => { await view.close() })
      const pruner = setInterval(() => { view.prune() }, heartbeatMs)
      pruner.unref()
      started('view pruning', () => { clearInterval(pruner) })
      const gatewayDb = await openGatewayDb(join(config.App.Datastore, 'gateway.db'))
      started('gateway database', async () => { await gatewayDb.close() })

      // The models this node serves. A model's api may not point at this node's own listeners (host:port,
      // filled in as each starts below) nor at link-local/metadata addresses: src/models/model-target.ts.
      const ownListeners: string[] = config.API.WebAddr === WEB_OFF ? [config.API.Addr] : [config.API.Addr, config.API.WebAddr]
      const targets = new ModelTargets(undefined, () => ownListeners)
      const local = new LocalRegistry(store, async (api) => await checkModelApiWith(api, targets))

      // The libp2p host, built but not started yet.
      const metrics = new Registry()
      const pskMismatches = new PskMismatches()
      started('psk warnings', logPskMismatches(pskMismatches, log))
      // Our native protocols for aicn peers, the Go node's for Go peers; in Go-wire mode only the latter.
      // They are libp2p services: libp2p starts them (handlers in place before the node listens, so the
      // first identify our peers get lists them) and stops them (running jobs end before connections do).
      const goWire = config.Wire.Mode === 'go'
      const timeoutsMs = jobTimeoutsFrom(config.Jobs)
      // One set of per-peer budgets for both job protocols (docs/protocols.md, "Budgets").
      const budgets = defaultBudgets({ hangUp: async (peer) => { await host.hangUp(peer) } }, log, budgetOptions(config.Jobs))
      registerBudgetMetrics(budgets, metrics)
      const bootstrapPeers = config.Bootstrap.map((a) => parseNodeAddr(a))
      const bootstrapIds = new Set(bootstrapPeers.map((p) => p.peerId.toString()))
      const host = await createHost({
        config,
        privateKey: identity.privateKey,
        datastore,
        agentVersion: AGENT_VERSION,
        metricsRegistry: metrics,
        pskMismatches,
        log,
        services: {
          rpc: rpcService({ agentVersion: AGENT_VERSION, log, serve: !goWire }),
          jobs: jobProtocol({ log, budgets, serve: !goWire }),
          chatProxy: chatProxyService({ log, timeoutsMs, budgets }),
          broadcast: broadcastRpc({ topic, privateKey: identity.privateKey, agentVersion: AGENT_VERSION, log }),
          // From the node's start until just before it stops (their afterStart and beforeStop).
          peerLog: peerLog({ log }),
          latency: latencyTracker({ log }),
          liveness: directPeerLiveness({ view, log }),
          bootstrapKeeper: bootstrapKeeper({ peers: bootstrapPeers, log }),
          // Records the peers we connect to from the start; redials the known ones once the node listens (below).
          peerHistory: peerHistory({ history, skip: bootstrapIds, log }),
          // Gossip of who serves what: subscribes and publishes the first heartbeat once pubsub runs, the
          // leaving one before pubsub stops. View sync comes first: the heartbeats take it as a component.
          viewSync: viewSyncService({ topic, refreshMs: heartbeatMs, requestsPerMinute: config.Pubsub.PeerViewSyncs, log }),
          heartbeats: heartbeatService({
            topic,
            registry: local,
            view,
            intervalMs: heartbeatMs,
            busyIntervalMs: parseDuration(config.App.PeersCollect.BusyInterval),
            baseNodeType: (config.Swarm.RelayService.Enabled ? NODE_TYPE.PUBLIC_IP : 0) | (config.App.PeersCollect.Enabled ? NODE_TYPE.PEERS_COLLECT : 0),
            version: AGENT_VERSION,
            log,
            privateKey: identity.privateKey
          }),
          // Rendezvous needs the DHT, which Routing.Type "none" leaves out (src/p2p/host.ts).
          ...(config.Routing.Type === 'none' ? {} : { rendezvous: rendezvousService({ namespace: topic, dhtProtocol: dhtProtocol(config), log }) })
        }
      })
      const { rpc, jobs, chatProxy, broadcast, latency, rendezvous, heartbeats } = host.services
      if (heartbeats.refreshForwarding !== undefined) registerRefreshForwardingMetrics(heartbeats.refreshForwarding, metrics)
      const hostInfo = new HostInfoCollector()

      // Models and jobs (the local registry is what the heartbeats announce).
      const models = new ModelClient({ targets })
      started('model client', async () => { await models.close() })
      // A model marked down that just answered a job is probed again at once (set once health exists).
      let recheck: (project: string, model: string, cid: string) => void = () => {}
      const executor = new LocalExecutor({
        registry: local,
        client: models,
        nodeId: identity.peerId,
        onAnswer: (m, answered) => { if (answered && !m.available) recheck(m.project, m.model, m.cid) }
      })
      // Operator's metrics and summary (docs/metrics.md); peers counted once per node, not per connection.
      const connectedPeers = (): number => new Set(host.getConnections().map((c) => c.remotePeer.toString())).size
      const localModels = (): { up: number, down: number } => {
        const all = local.projects().flatMap((p) => p.models)
        const up = all.filter((m) => m.available).length
        return { up, down: all.length - up }
      }
      const nodeMetrics = new NodeMetrics(metrics, { viewNodes: () => view.nodes().length, connectedPeers, localModels })

      const transport = new PeerTransport({ host, rpc, jobs, broadcast, chatProxy, goWire })
      const control = new NodeControl({ host, queries: transport, config: store, hostInfo, latency, rendezvous, metrics, topic, pskMismatches })
      const network = new NetworkRegistry({ host, view, local, rpc, queries: transport, latency })
      registerQueryHandlers(rpc, { localPeerInfo: async () => await control.id(), localHostInfo: async () => await hostInfo.collect() })
      const dispatcher = new JobDispatcher({ selfId: identity.peerId, local: executor, remote: transport, selector: new NodeSelector(), network, log, metrics: nodeMetrics })

      // A Go node that joins the topic unheard is asked for its registrations (src/protocols/heartbeat/heartbeats.ts).
      heartbeats.askWith(async (peer, timeoutMs) => await network.registrationsOf(peer, { timeoutMs }))

      // Jobs that arrive from the network run on this node's models; they are never forwarded again.
      jobs.serveWith(nodeMetrics.served(executor.run))
      chatProxy.serveWith(nodeMetrics.served(executor.run))
      broadcast.serveWith(makeBroadcastHandlers({
        runner: executor.run,
        peerInfo: async () => await control.id(),
        hostInfo: async () => await hostInfo.collect(),
        projects: () => network.localProjects(),
        nodeId: identity.peerId,
        timeoutsMs
      }))

      // Starts the services above too; stopping it first ends their running jobs (their beforeStop).
      await host.start()
      started('libp2p', async () => { await host.stop() })
      log.info({ peerId: identity.peerId, addresses: host.getMultiaddrs().map((a) => a.toString()) }, 'libp2p host started')
      ownListeners.push(...tcpListeners(host))

      // A probe goes only where a job may go (the same rules, checked at each probe).
      const probe = async (url: URL, signal: AbortSignal): Promise<boolean> => {
        const addresses = await targets.addresses(url.hostname, portOf(url)).catch(() => undefined)
        if (addresses === undefined) throw new Error('the address is not one a model may be at (see README, Models and projects)')
        const why = await httpProbeReason(url, signal, pinnedLookup(addresses))
        if (why !== undefined) throw new Error(why)
        return true
      }
      const health = new HealthChecker({ probe }, applyHealth(local, log))
      recheck = (project, model, cid) => { health.recheck(healthKey(project, model, cid)) }
      const unwatch = watchRegisteredModels(local, health, log)
      started('health checks', () => { unwatch(); health.stop() })

      // Once the node listens, which host.start() promises and a service's afterStart does not
      // (src/p2p/peer-history/peer-history.ts).
      host.services.peerHistory.redial()
        .then((r) => { if (r.connected + r.failed > 0) log.info(r, 'redialled peers from the connection history') })
        .catch((err: Error) => { log.warn({ err: err.message }, 'redialling the connection history failed') })

      const gateway = new Gateway({
        view,
        dispatcher,
        keys: gatewayDb.keys,
        limiter: new Limiter({ dailyStore: gatewayDb.dailyStore }),
        usage: gatewayDb.usage,
        prices: priceTableFrom(config.Gateway),
        requireKeys: keysRequired(config),
        projects: config.Gateway.Projects,
        log,
        timeoutsMs,
        metrics: nodeMetrics
      })
      const startedAt = performance.now()
      const urls = { api: '', web: '' }
      const status = (): NodeStatus => ({
        node_id: identity.peerId,
        version: VERSION,
        uptime_seconds: Math.round((performance.now() - startedAt) / 1000),
        listeners: urls,
        peers: { connected: connectedPeers(), list: control.swarmPeers().map(({ peer, addr, latency, direction }) => ({ peer, addr, latency, direction })) },
        view_nodes: view.nodes().length,
        models: local.projects().flatMap((p) => p.models.map((m) => ({
          project: m.project, model: m.model, cid: m.cid, api: m.api, type: m.type, busy: m.busy, available: m.available,
          reason: m.available ? '' : health.reason(healthKey(m.project, m.model, m.cid))
        }))),
        last_minute: { jobs: nodeMetrics.jobsLastMinute.total(), errors: nodeMetrics.errorsLastMinute.total() }
      })
      started('summary', startSummary(nodeMetrics, { peers: connectedPeers, viewNodes: () => view.nodes().length, models: localModels }, log))
      const routes = [
        ...controlRoutes(control),
        ...registryRoutes(local, network, async (project, model, cid) => await health.settle(healthKey(project, model, cid), REGISTER_PROBE_WAIT_MS)),
        ...statusRoutes(status),
        ...jobRoutes({
          dispatcher,
          timeoutsMs,
          ipfsNodes: config.Jobs.IpfsNodes,
          meter: async (authorization, head, body, endpoint) => await gateway.meterCall(authorization, head, body, endpoint),
          onUsage: (model, promptTokens, completionTokens) => { nodeMetrics.usage(model, promptTokens, completionTokens) }
        }),
        ...keyRoutes(gatewayDb.keys, gatewayDb.usage),
        ...gateway.routes(),
        ...consoleRoutes({
          selfId: identity.peerId,
          version: AGENT_VERSION,
          startedAt,
          role: config.App.PeersCollect.Enabled ? 'input' : 'worker',
          psk: config.App.PreSharedKey !== '',
          keysRequired: keysRequired(config),
          local,
          view,
          connections: () => host.getConnections().map((c) => ({ peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), direction: c.direction, limited: c.limits !== undefined })),
          latencyMicros: (nodeId) => network.latencyMicros(nodeId),
          routingFreshMs: 3 * heartbeatMs,
          healthReason: (project, model, cid) => health.reason(healthKey(project, model, cid))
        })
      ]
      // The web console (README "Console"), served only on the web listener: browsers refuse API.Addr's 6000.
      const consoleFiles = config.API.WebAddr === WEB_OFF ? undefined : await loadConsoleFiles(join(PACKAGE_ROOT, 'dist', 'console'))
      if (config.API.WebAddr !== WEB_OFF && consoleFiles === undefined) log.warn('the web console is not built (npm run build): / on the web listener answers 404')
      let webPort: number | undefined
      const http = new HttpServer({
        routes,
        logger: log,
        registry: metrics,
        guard: { allowedOrigins: config.API.AllowedOrigins, allowedHosts: config.API.AllowedHosts },
        access: { adminKey: config.API.AdminKey, checkJobKey: async (authorization) => { await gateway.checkKey(authorization) } },
        fallback: consoleFiles === undefined ? undefined : consoleMiddleware(consoleFiles, { servesPort: (port) => port === webPort }),
        connectionLimits: connectionLimitsOf(config.API)
      })
      started('HTTP API', async () => { await http.close() })
      // Two listeners, one app: API.Addr (6000 by default) for the Go node's clients, API.WebAddr for
      // browsers and fetch-based SDKs, which refuse port 6000 (WHATWG fetch "bad ports").
      const listening = await adoptOrListen(http, options.early, config.API.Addr, 'API.Addr')
      ownListeners.push(`${listening.host}:${listening.port}`)
      log.info({ url: listening.url }, 'HTTP API listening')
      const web = config.API.WebAddr === WEB_OFF ? undefined : await adoptOrListen(http, options.early, config.API.WebAddr, 'API.WebAddr')
      if (web !== undefined) ownListeners.push(`${web.host}:${web.port}`)
      if (web !== undefined) log.info({ url: web.url }, 'web listener (browsers, fetch, SDKs) listening')
      webPort = web?.port
      urls.api = listening.url
      urls.web = web?.url ?? ''
      options.early?.serve(http.requestListener)
      const served = local.projects().reduce((n, p) => n + p.models.length, 0)
      log.info({ peerId: identity.peerId, api: listening.url, web: web?.url, models: served, bootstrap: config.Bootstrap.length }, `node started: ${served} models registered, ${config.Bootstrap.length} bootstrap peers`)

      return new AicnNode(host, control, { api: listening.url, web: web?.url }, stopSteps, log)
    } catch (err) {
      await runStopSteps(stopSteps, log)
      throw err
    }
  }

  /** Stops in reverse start order: HTTP drains first, the databases close last. */
  async stop (): Promise<void> {
    this.log.info('node stopping')
    await runStopSteps(this.stopSteps, this.log)
    this.log.info('node stopped')
  }
}

/** host:port of each TCP address libp2p listens on (from its multiaddrs). */
function tcpListeners (host: Host): string[] {
  const listeners: string[] = []
  for (const address of host.getMultiaddrs()) {
    const components = address.getComponents()
    // A relayed address names the relay's port, not ours.
    if (components.some((c) => c.name === 'p2p-circuit')) continue
    const tcp = components.find((c) => c.name === 'tcp')
    if (tcp?.value !== undefined) listeners.push(`${components[0]?.value ?? ''}:${tcp.value}`)
  }
  return listeners
}

/** Keys are required when the config says so, and by default whenever a listener is reachable from other machines. */
function keysRequired (config: Config): boolean {
  if (config.Gateway.RequireKeys !== 'auto') return config.Gateway.RequireKeys === 'always'
  const listeners = config.API.WebAddr === WEB_OFF ? [config.API.Addr] : [config.API.Addr, config.API.WebAddr]
  return listeners.some((addr) => {
    const host = parseHostPort(addr).host
    return !(host === 'localhost' || host.startsWith('127.') || host === '::1')
  })
}

/** How long a register call waits for the first probe of the model's server before answering. */
const REGISTER_PROBE_WAIT_MS = 2_000

interface StopStep { name: string, run: () => Promise<void> | void }

/** Runs the steps last-first, once each; a failing step is logged and the rest still run. */
async function runStopSteps (steps: StopStep[], log: Logger): Promise<void> {
  for (const step of steps.splice(0).reverse()) {
    try { await step.run() } catch (err) { log.warn({ err: (err as Error).message }, `stopping ${step.name} failed`) }
  }
}
