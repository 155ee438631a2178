// Our libp2p services (docs/architecture.md, "Services"), as the map createHost gives to libp2p, which
// starts and stops them with the node. Native protocols for aicn peers, the Go node's for Go peers; in
// Go-wire mode only the latter serve. Handlers go in before the node listens, so the first identify our
// peers get lists them; running jobs end before connections do.
import type { PrivateKey } from '@libp2p/interface'
import type { Config } from '../config/types.ts'
import type { JobTimeouts } from '../core/job-types.ts'
import type { Logger } from '../core/logger.ts'
import { parseDuration } from '../core/duration.ts'
import { AGENT_VERSION } from '../core/version.ts'
import { broadcastRpc } from '../compat/broadcast-rpc/index.ts'
import { chatProxy } from '../compat/chat-proxy/index.ts'
import { peerLog } from '../metrics/peer-log/index.ts'
import { bootstrapKeeper } from '../p2p/bootstrap-keeper/index.ts'
import type { ConnectionHistory } from '../p2p/history.ts'
import { dhtProtocol } from '../p2p/host.ts'
import { latencyTracker } from '../p2p/latency/index.ts'
import type { PeerBudgets } from '../p2p/peer-budget.ts'
import { peerHistory } from '../p2p/peer-history/index.ts'
import { rendezvous } from '../p2p/rendezvous/index.ts'
import { parseNodeAddr } from '../p2p/swarm.ts'
import { heartbeats } from '../protocols/heartbeat/index.ts'
import { NODE_TYPE } from '../protocols/heartbeat-codec.ts'
import { jobProtocol } from '../protocols/job/index.ts'
import { rpc } from '../protocols/rpc/index.ts'
import { directPeerLiveness } from '../registry/liveness/index.ts'
import type { LocalRegistry } from '../registry/local.ts'
import type { NetworkView } from '../registry/view.ts'
import { viewSync } from '../registry/view-sync/index.ts'

export interface ServicesInput {
  config: Config
  privateKey: PrivateKey
  log: Logger
  /** what the heartbeats announce */
  local: LocalRegistry
  view: NetworkView
  history: ConnectionHistory
  /** one set of per-peer budgets for both job protocols (docs/protocols.md, "Budgets") */
  budgets: PeerBudgets
  timeoutsMs: JobTimeouts
  heartbeatMs: number
}

/** The services map for createHost (src/p2p/host.ts); its type names each service for `host.services`. */
export function nodeServices (input: ServicesInput) {

  const { config, privateKey, log, local, view, history, budgets, timeoutsMs, heartbeatMs } = input
  const topic = config.App.TopicName
  const goWire = config.Wire.Mode === 'go'
  const bootstrapPeers = config.Bootstrap.map((a) => parseNodeAddr(a))
  return {
    rpc: rpc({ agentVersion: AGENT_VERSION, log, serve: !goWire }),
    jobs: jobProtocol({ log, budgets, serve: !goWire }),
    chatProxy: chatProxy({ log, timeoutsMs, budgets }),
    broadcast: broadcastRpc({ topic, privateKey, agentVersion: AGENT_VERSION, log }),
    // From the node's start until just before it stops (their afterStart and beforeStop).
    peerLog: peerLog({ log }),
    latency: latencyTracker({ log }),
    liveness: directPeerLiveness({ view, log }),
    bootstrapKeeper: bootstrapKeeper({ peers: bootstrapPeers, log }),
    // Records the peers we connect to from the start; redials the known ones once the node listens
    // (src/node/node.ts, after host.start()).
    peerHistory: peerHistory({ history, skip: new Set(bootstrapPeers.map((p) => p.peerId.toString())), log }),
    // Gossip of who serves what: subscribes and publishes the first heartbeat once pubsub runs, the
    // leaving one before pubsub stops. View sync comes first: the heartbeats take it as a component.
    viewSync: viewSync({ topic, refreshMs: heartbeatMs, requestsPerMinute: config.Pubsub.PeerViewSyncs, log }),
    heartbeats: heartbeats({
      topic,
      registry: local,
      view,
      intervalMs: heartbeatMs,
      busyIntervalMs: parseDuration(config.App.PeersCollect.BusyInterval),
      baseNodeType: (config.Swarm.RelayService.Enabled ? NODE_TYPE.PUBLIC_IP : 0) | (config.App.PeersCollect.Enabled ? NODE_TYPE.PEERS_COLLECT : 0),
      version: AGENT_VERSION,
      log,
      privateKey
    }),
    // Rendezvous needs the DHT, which Routing.Type "none" leaves out (src/p2p/host.ts).
    ...(config.Routing.Type === 'none' ? {} : { rendezvous: rendezvous({ namespace: topic, dhtProtocol: dhtProtocol(config), log }) })
  }
}
