// The one place that wires everything together: config → identity → databases (storage.ts) → libp2p host
// and its services (services.ts) → models, jobs and the gateway → health checks (health-checks.ts) → HTTP
// API (http-api.ts), and the reverse on stop (stop-steps.ts).
import { Registry } from 'prom-client'
import type { Config } from '../config/types.ts'
import { ConfigStore } from '../config/store.ts'
import { removeStaleTemps } from '../config/save.ts'
import { WEB_OFF } from '../config/defaults.ts'
import { parseHostPort } from '../config/validate.ts'
import { jobTimeoutsFrom } from '../config/job-timeouts.ts'
import { parseDuration } from '../core/duration.ts'
import type { Logger } from '../core/logger.ts'
import { AGENT_VERSION } from '../core/version.ts'
import { HostInfoCollector } from '../hostinfo/index.ts'
import { createHost, type Host } from '../p2p/host.ts'
import { identityFromBase64 } from '../p2p/identity.ts'
import { budgetOptions, defaultBudgets, registerBudgetMetrics } from '../p2p/peer-budget.ts'
import { PskMismatches } from '../p2p/psk-watch.ts'
import { ModelClient } from '../models/client.ts'
import { ModelTargets } from '../models/model-target.ts'
import { NodeMetrics } from '../metrics/node-metrics.ts'
import { logPskMismatches, startSummary } from '../metrics/operator-log.ts'
import { LocalRegistry } from '../registry/local.ts'
import { checkModelApiWith } from '../registry/model-api.ts'
import { healthKey } from '../registry/health-sync.ts'
import { registerQueryHandlers } from '../protocols/queries.ts'
import { NetworkRegistry } from '../protocols/network.ts'
import { registerRefreshForwardingMetrics } from '../protocols/heartbeat/index.ts'
import { makeBroadcastHandlers } from '../compat/broadcast-rpc/index.ts'
import { LocalExecutor } from '../jobs/local.ts'
import { NodeSelector } from '../jobs/selector.ts'
import { JobDispatcher } from '../jobs/dispatcher.ts'
import { Gateway } from '../gateway/gateway.ts'
import { Limiter } from '../gateway/limits.ts'
import { priceTableFrom } from '../gateway/pricing.ts'
import type { EarlyApi } from '../api/early.ts'
import { NodeControl } from './control.ts'
import { PeerTransport } from './peer-transport.ts'
import { StopSteps } from './stop-steps.ts'
import { openStorage } from './storage.ts'
import { nodeServices } from './services.ts'
import { startHealthChecks } from './health-checks.ts'
import { startHttpApi } from './http-api.ts'

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
  private readonly steps: StopSteps
  private readonly log: Logger

  private constructor (host: Host, control: NodeControl, urls: { api: string, web?: string }, steps: StopSteps, log: Logger) {
    this.host = host
    this.control = control
    this.apiUrl = urls.api
    this.webUrl = urls.web
    this.steps = steps
    this.log = log
  }

  static async start (options: NodeOptions): Promise<AicnNode> {
    const { config, log } = options
    // Everything started so far, stopped in reverse order if a later step fails or on stop().
    const steps = new StopSteps()
    try {
      const identity = identityFromBase64(config.Identity.PrivKey)
      const store = new ConfigStore(options.configPath, config)
      const staleTemps = await removeStaleTemps(options.configPath)
      if (staleTemps > 0) log.info({ removed: staleTemps }, 'removed temp files left by an interrupted config save')
      const startedAt = Date.now()
      const topic = config.App.TopicName
      const heartbeatMs = parseDuration(config.App.PeersCollect.HeartbeatInterval)
      const { datastore, history, view, gatewayDb } = await openStorage(config, heartbeatMs, log, steps)

      // The models this node serves. A model's api may not point at this node's own listeners (host:port,
      // filled in as each starts below) nor at link-local/metadata addresses: src/models/model-target.ts.
      const ownListeners: string[] = config.API.WebAddr === WEB_OFF ? [config.API.Addr] : [config.API.Addr, config.API.WebAddr]
      const targets = new ModelTargets(undefined, () => ownListeners)
      const local = new LocalRegistry(store, async (api) => await checkModelApiWith(api, targets))

      // The libp2p host with our services (src/node/services.ts), built but not started yet.
      const metrics = new Registry()
      const pskMismatches = new PskMismatches()
      steps.add('psk warnings', logPskMismatches(pskMismatches, log))
      const timeoutsMs = jobTimeoutsFrom(config.Jobs)
      const budgets = defaultBudgets({ hangUp: async (peer) => { await host.hangUp(peer) } }, log, budgetOptions(config.Jobs))
      registerBudgetMetrics(budgets, metrics)
      const host = await createHost({
        config,
        privateKey: identity.privateKey,
        datastore,
        agentVersion: AGENT_VERSION,
        metricsRegistry: metrics,
        pskMismatches,
        log,
        services: nodeServices({ config, privateKey: identity.privateKey, log, local, view, history, budgets, timeoutsMs, heartbeatMs })
      })
      const { rpc, jobs, chatProxy, broadcast, latency, rendezvous, heartbeats } = host.services
      if (heartbeats.refreshForwarding !== undefined) registerRefreshForwardingMetrics(heartbeats.refreshForwarding, metrics)
      const hostInfo = new HostInfoCollector()

      // Models and jobs (the local registry is what the heartbeats announce).
      const models = new ModelClient({ targets })
      steps.add('model client', async () => { await models.close() })
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

      const transport = new PeerTransport({ host, rpc, jobs, broadcast, chatProxy, goWire: config.Wire.Mode === 'go' })
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
      steps.add('libp2p', async () => { await host.stop() })
      log.info({ peerId: identity.peerId, addresses: host.getMultiaddrs().map((a) => a.toString()) }, 'libp2p host started')
      ownListeners.push(...tcpListeners(host))

      const health = startHealthChecks(local, targets, log, steps)
      recheck = (project, model, cid) => { health.recheck(healthKey(project, model, cid)) }

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
      steps.add('summary', startSummary(nodeMetrics, { peers: connectedPeers, viewNodes: () => view.nodes().length, models: localModels }, log))
      const urls = await startHttpApi({
        config,
        log,
        metrics,
        early: options.early,
        nodeId: identity.peerId,
        startedAt,
        heartbeatMs,
        timeoutsMs,
        control,
        local,
        network,
        view,
        health,
        nodeMetrics,
        dispatcher,
        gateway,
        gatewayDb,
        keysRequired: keysRequired(config),
        connections: () => host.getConnections().map((c) => ({ peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), direction: c.direction, limited: c.limits !== undefined })),
        connectedPeers,
        ownListeners
      }, steps)
      const served = local.projects().reduce((n, p) => n + p.models.length, 0)
      log.info({ peerId: identity.peerId, api: urls.api, web: urls.web, models: served, bootstrap: config.Bootstrap.length }, `node started: ${served} models registered, ${config.Bootstrap.length} bootstrap peers`)

      return new AicnNode(host, control, urls, steps, log)
    } catch (err) {
      await steps.runAll(log)
      throw err
    }
  }

  /** Stops in reverse start order: HTTP drains first, the databases close last. */
  async stop (): Promise<void> {
    this.log.info('node stopping')
    await this.steps.runAll(this.log)
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
