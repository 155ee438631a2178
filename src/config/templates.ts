// The configs `aicn init` writes (the Go node's `-init` templates), with deliberate safety differences from the Go
// templates: loopback-only defaults, no UPnP/NAT-PMP, no published PSK, no auto-upgrade, gossipsub.
// docs/config.md lists them.
import { DEFAULT_API_ADDR, DEFAULT_API_CONNECTIONS, DEFAULT_JOB_BUDGETS, DEFAULT_PROTOCOL_PREFIX, DEFAULT_TOPIC_NAME, DEFAULT_TOPIC_RATES, DEFAULT_WEB_ADDR } from './defaults.ts'
import type { Config } from './types.ts'

export type TemplateMode = 'input' | 'worker'

export interface TemplateOptions {
  /** `Identity.PeerID`, derived from privKey by the caller */
  peerId: string
  /** `Identity.PrivKey`, base64 of the key protobuf */
  privKey: string
  /** absolute path of the datastore directory */
  datastore: string
  /** libp2p listen addresses; default `["/ip4/127.0.0.1/tcp/7001"]` (loopback: the operator opts in
   * to exposure, the CLI passes its own list) */
  listen?: string[]
  /** HTTP API `host:port`; default 127.0.0.1:6000 */
  apiAddr?: string
  /** the browser-safe listener `host:port` (or "off"); default 127.0.0.1:6080 */
  webAddr?: string
  /** bootstrap peer multiaddrs ending in /p2p/<id>; default none (a first node) */
  bootstrap?: string[]
  /** 64 hex characters; default "" (no private network) */
  psk?: string
  /** log file path; when set, logs go to stderr and this file */
  logFile?: string
}

export const DEFAULT_LISTEN = ['/ip4/127.0.0.1/tcp/7001']

export function createConfigTemplate (mode: TemplateMode, options: TemplateOptions): Config {
  const input = mode === 'input'
  const logFile = options.logFile ?? ''
  return {
    Bootstrap: [...(options.bootstrap ?? [])],
    Addresses: options.listen !== undefined && options.listen.length > 0 ? [...options.listen] : [...DEFAULT_LISTEN],
    API: { Addr: options.apiAddr ?? DEFAULT_API_ADDR, WebAddr: options.webAddr ?? DEFAULT_WEB_ADDR, AllowedOrigins: [], AllowedHosts: [], AdminKey: '', ...DEFAULT_API_CONNECTIONS },
    Identity: { PeerID: options.peerId, PrivKey: options.privKey },
    Swarm: {
      ConnMgr: { Type: 'basic', HighWater: 400, LowWater: 100, GracePeriod: '60s' },
      // Port mapping opens the router to the internet; the operator turns it on knowingly.
      DisableNatPortMap: true,
      RelayClient: { Enabled: false, StaticRelays: [] },
      // Input nodes have public addresses and relay for workers behind NAT.
      RelayService: { Enabled: input },
      EnableHolePunching: false,
      EnableAutoNATService: true,
      DialTimeout: ''
    },
    // gossipsub falls back to /floodsub/1.0.0 for the Go nodes that speak only floodsub.
    Pubsub: { Enabled: true, Router: 'gossipsub', FloodPublish: true, ...DEFAULT_TOPIC_RATES },
    Routing: { Type: input ? 'dhtserver' : 'dhtclient', ProtocolPrefix: DEFAULT_PROTOCOL_PREFIX },
    App: {
      LogLevel: 'info',
      LogFile: logFile,
      LogOutput: logFile === '' ? 'stderr' : 'stderr+file',
      LogFormat: 'auto',
      PreSharedKey: options.psk ?? '',
      TopicName: DEFAULT_TOPIC_NAME,
      Datastore: options.datastore,
      AutoUpgrade: { Enabled: false, TimeInterval: '1h' },
      // Input nodes collect heartbeats so they can route jobs "by project name".
      PeersCollect: { Enabled: input, HeartbeatInterval: '180s', BusyInterval: '30s', ClientProject: '' }
    },
    Wire: { Mode: 'aicn' },
    // DeGPT's public prices: $1 per million input tokens, $3 per million output tokens (docs/config.md).
    Gateway: { RequireKeys: 'auto', Projects: [], DefaultPrice: { InputPerMillionUsd: 1, OutputPerMillionUsd: 3 }, Prices: [] },
    Jobs: { Timeouts: { Chat: '3m', ImageGen: '5m', ImageEdit: '5m', Embedding: '3m', Completion: '3m' }, IpfsNodes: [], ...DEFAULT_JOB_BUDGETS },
    AIProjects: []
  }
}
