// Builds the libp2p host the way the Go node does (docs/protocols.md, "The libp2p layer"), so both can share one network:
// TCP + (optional) PSK + Noise + yamux, identify with protocol version aicn/0.0.1, ping, Kademlia with
// `<prefix>/kad/1.0.0`, pubsub that also speaks /floodsub/1.0.0, relay, AutoNAT, hole punching, NAT mapping.
import { createLibp2p, type Libp2p, type ServiceFactoryMap } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, identifyPush } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub, StrictSign } from '@libp2p/gossipsub'
import { bootstrap } from '@libp2p/bootstrap'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import type { Datastore } from 'interface-datastore'
import type { PrivateKey } from '@libp2p/interface'
import type { Config } from '../config/types.ts'
import { parseDuration } from '../core/duration.ts'
import { swarmKeyFromHex } from './psk.ts'
import { PskMismatches, watchedPreSharedKey } from './psk-watch.ts'
import type { PubSub } from './pubsub.ts'
import { fastMessageId } from './fast-msg-id.ts'
import { applyGoRulesToFloodsub, goMessageId, installLibraryPatches, SkipUnchangedPeerRecords, skipAuthorInGossipsub, withProtocolVersion } from './patches/index.ts'
import { TopicRateLimiter } from './topic-rate.ts'
import { limitFloodsubRates, limitTopicRates, registerTopicRateMetrics, type HeldMessage } from './patches/topic-limit.ts'
import { CONNECTION_PING_MS, EVENT_LOOP_SAMPLE_MS, gossipTimers } from './idle-tuning.ts'
import type { Logger } from '../core/logger.ts'

/** The largest receive window a yamux stream grows to: what a peer may send on a stream beyond what its
 * reader took, e.g. on a job stream the job paused because its model server is slow. The library's
 * default, 16 MiB per stream, let a peer make each paused stream hold up to the stream's read buffer
 * (4 MiB in @libp2p/utils, then the stream is reset: an honest job fails) outside every budget
 * (src/p2p/peer-budget.ts counts what the frame readers hold, not the muxer's buffer). 2 MiB stays
 * below that buffer, carries bulk transfers between two processes on loopback as fast as 16 MiB
 * (scripts/bench/yamux-window.ts, docs/reliability.md) and still allows 20 MiB/s per stream at 100 ms RTT. */
export const YAMUX_MAX_STREAM_WINDOW = 2 * 1024 * 1024

/** The identify protocol version every aicn and Go node announces. */
export { PROTOCOL_VERSION } from './patches/index.ts'

export interface HostServices extends Record<string, unknown> {
  identify: unknown
  identifyPush: unknown
  ping: import('@libp2p/ping').Ping
  pubsub: PubSub
  dht?: KadDHT
  relay?: unknown
  autoNAT?: unknown
  dcutr?: unknown
  upnp?: unknown
}

export type Host = Libp2p<HostServices>

export interface HostOptions {
  config: Config
  privateKey: PrivateKey
  datastore?: Datastore
  agentVersion: string
  /** where libp2p's metrics (and process metrics) are registered; none when absent */
  metricsRegistry?: import('prom-client').Registry
  /** told about peers that speak with another pre-shared key (src/p2p/psk-watch.ts) */
  pskMismatches?: PskMismatches
  /** where a peer penalised for flooding the topic, or an untested library version (src/p2p/patches/), is logged */
  log?: Logger
}

/** The topic's rate limits from the config (src/p2p/topic-rate.ts). */
export function topicRateLimiter (config: Config, log?: Logger): TopicRateLimiter<HeldMessage> {
  const p = config.Pubsub
  return new TopicRateLimiter<HeldMessage>({
    authorRate: p.AuthorRate,
    authorBurst: p.AuthorBurst,
    peerRate: p.PeerRate,
    peerBurst: p.PeerBurst,
    onPenalty: (peer, reason) => { log?.info({ peer, reason }, 'peer penalised on the topic: its messages are dropped and its gossipsub score lowered for a while') }
  })
}

/** Our own libp2p services (src/node/services.ts lists them), each built by libp2p from its factory. A
 * factory takes only the components it names (src/p2p/components.ts), hence `never` here. */
export type ServiceFactories<S> = { [K in keyof S]: (components: never) => S[K] }

export function dhtProtocol (config: Config): string {
  return `${config.Routing.ProtocolPrefix === '' ? '/ipfs' : config.Routing.ProtocolPrefix}/kad/1.0.0`
}

export async function createHost<S extends Record<string, unknown> = Record<never, never>> (options: HostOptions & { services?: ServiceFactories<S> }): Promise<Libp2p<HostServices & S>> {
  // Library patches, after a check of the installed versions (src/p2p/patches/README.md).
  const patches = installLibraryPatches(options.log)
  const { config } = options
  const limiter = topicRateLimiter(config, options.log)
  if (options.metricsRegistry != null) registerTopicRateMetrics(limiter, options.metricsRegistry)
  const bootstrapList = config.Bootstrap
  const relayService = config.Swarm.RelayService.Enabled
  // As in the Go node, an empty or zero DialTimeout means libp2p's default.
  const dialTimeout = config.Swarm.DialTimeout === '' ? undefined : parseDuration(config.Swarm.DialTimeout) || undefined

  const listen = [...config.Addresses]
  if (config.Swarm.RelayClient.Enabled) {
    // AutoRelay as the Go node: the bootstrap peers are the static relays.
    const relays = config.Swarm.RelayClient.StaticRelays.length > 0 ? config.Swarm.RelayClient.StaticRelays : bootstrapList
    for (const relay of relays) listen.push(`${relay}/p2p-circuit`)
  }

  // Each factory takes its own slice of libp2p's components; createLibp2p supplies them all.
  const services: Record<string, (components: never) => unknown> = {
    identify: patches.has('identify-protocol-version') ? withProtocolVersion(identify()) : identify(),
    identifyPush: patches.has('identify-protocol-version') ? withProtocolVersion(identifyPush()) : identifyPush(),
    // The DHT pings a peer before adding it to its routing table while our latency tracker may ping the
    // same peer; the default of one outbound ping stream per connection makes one of them fail.
    ping: ping({ maxOutboundStreams: 4, maxInboundStreams: 4 }),
    pubsub: await pubsubFactory(config, limiter)
  }
  if (config.Routing.Type !== 'none') {
    services.dht = kadDHT({
      protocol: dhtProtocol(config),
      clientMode: config.Routing.Type === 'dhtclient' ? true : config.Routing.Type === 'dhtserver' ? false : undefined,
      // The default mapper drops private addresses, which would hide every node on a LAN or loopback.
      peerInfoMapper: passthroughMapper,
      // Queries wait for the first self-query; run it soon after start so lookups are quick.
      initialQuerySelfInterval: 200
    })
  }
  // Services a node may not run are loaded only when it does (each package costs 50–200 ms of start-up
  // to load; docs/benchmarks.md "Start-up and idle").
  if (relayService) services.relay = (await import('@libp2p/circuit-relay-v2')).circuitRelayServer()
  if (config.Swarm.EnableAutoNATService) services.autoNAT = (await import('@libp2p/autonat')).autoNAT()
  if (config.Swarm.EnableHolePunching) services.dcutr = (await import('@libp2p/dcutr')).dcutr()
  if (!config.Swarm.DisableNatPortMap) services.upnp = (await import('@libp2p/upnp-nat')).uPnPNAT()
  Object.assign(services, options.services)

  const maxConnections = config.Swarm.ConnMgr.Type === 'none' ? Number.MAX_SAFE_INTEGER : config.Swarm.ConnMgr.HighWater

  return await createLibp2p({
    privateKey: options.privateKey,
    start: false,
    // Every stream libp2p opens or accepts rewrites the peer's record; unchanged ones are not written
    // (src/p2p/patches/peer-store-writes.ts).
    datastore: options.datastore !== undefined && patches.has('peer-store-unchanged-writes') ? new SkipUnchangedPeerRecords(options.datastore) : options.datastore,
    nodeInfo: { name: 'aicn', version: options.agentVersion, userAgent: options.agentVersion },
    addresses: { listen },
    transports: [tcp(), circuitRelayTransport()],
    connectionProtector: config.App.PreSharedKey === '' ? undefined : watchedPreSharedKey(swarmKeyFromHex(config.App.PreSharedKey), options.pskMismatches ?? new PskMismatches()),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: YAMUX_MAX_STREAM_WINDOW } })],
    connectionManager: { maxConnections, dialTimeout },
    connectionMonitor: { pingInterval: CONNECTION_PING_MS },
    peerDiscovery: bootstrapList.length > 0 ? [bootstrap({ list: bootstrapList, timeout: 0 })] : [],
    metrics: options.metricsRegistry == null
      ? undefined
      : prometheusMetrics({
        registry: options.metricsRegistry,
        // prom-client samples the event loop's delay with a libuv timer every 10 ms by default: 100
        // wake-ups a second on an idle node, the largest part of its idle CPU (docs/benchmarks.md
        // "Start-up and idle"). Sampled every EVENT_LOOP_SAMPLE_MS instead (src/p2p/idle-tuning.ts).
        defaultMetrics: { eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS }
      }),
    services: services as unknown as ServiceFactoryMap<HostServices>
  }) as unknown as Libp2p<HostServices & S>
}

export { EVENT_LOOP_SAMPLE_MS }

/** The mesh degree an input node accepts: every worker connected to it (bounded by the connection limit). */
const HUB_MESH_MAX = 1000

async function pubsubFactory (config: Config, limiter: TopicRateLimiter<HeldMessage>): Promise<(components: never) => unknown> {
  if (config.Pubsub.Router === 'floodsub') {
    const { floodsub } = await import('@libp2p/floodsub')
    const factory = floodsub({ globalSignaturePolicy: 'StrictSign' })
    // The Go node's message ID, no echo to a message's author (src/p2p/patches/pubsub-go-rules.ts); rate
    // limits before the signature check (src/p2p/patches/topic-limit.ts).
    return (components: Parameters<typeof factory>[0]) => limitFloodsubRates(applyGoRulesToFloodsub(factory(components)), limiter)
  }
  const timers = gossipTimers(config.Swarm.RelayService.Enabled)
  const factory = gossipsub({
    globalSignaturePolicy: StrictSign,
    allowPublishToZeroTopicPeers: true,
    // Go nodes started from the -init templates speak only /floodsub/1.0.0.
    fallbackToFloodsub: true,
    floodPublish: config.Pubsub.FloodPublish,
    // Go nodes' message ID, so both deduplicate (and gossip about) the same messages (src/p2p/patches/pubsub-go-rules.ts).
    msgIdFn: goMessageId,
    // Duplicates are recognised before their signature is checked (see fast-msg-id.ts).
    fastMsgIdFn: fastMessageId,
    doPX: config.Routing.Type === 'dhtserver' || config.Swarm.RelayService.Enabled,
    // Unlike the Go node we do not make the bootstrap peers gossipsub "direct peers": the bootstrap node
    // does not list its workers back, so they would refuse its mesh and every message it relays would wait
    // for the next gossip round (about 1 s a hop, measured).
    // The default score punishes many peers behind one IP; behind one NAT (a GPU farm) or on loopback that
    // silenced every node past the 14th (measured), and a private network admits its peers by key anyway.
    // A peer that floods the topic is penalised by the rate limiter (src/p2p/topic-rate.ts): its score
    // (-100 × the default weight 10) falls below the graylist threshold (-80), and gossipsub then ignores
    // everything it sends until the penalty ends. Workers wake less often (src/p2p/idle-tuning.ts).
    ...timers,
    scoreParams: { IPColocationFactorWeight: 0, appSpecificScore: (peer: string) => limiter.score(peer), ...timers.scoreParams },
    // A relaying (input) node is the hub of a star: workers connect to input nodes, not to each other.
    // With gossipsub's default Dhi of 12 it refused the mesh to every further worker, which then heard
    // heartbeats only through IHAVE gossip, a second late or (gossip goes to a few random peers) never:
    // at N = 50 most registrations did not reach every node. A hub keeps every worker that grafts.
    ...(config.Swarm.RelayService.Enabled ? { Dhi: HUB_MESH_MAX } : {})
  })
  // Never forward a message back to its author, as Go nodes do (src/p2p/patches/pubsub-go-rules.ts); rate
  // limits per author and per peer before any signature check (src/p2p/patches/topic-limit.ts).
  return (components: Parameters<typeof factory>[0]) => limitTopicRates(skipAuthorInGossipsub(factory(components)), limiter)
}
