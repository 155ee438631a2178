// The node's configuration, with the Go node's canonical key names (docs/config.md) so that an
// operator's existing worker.json / input.json works unchanged. Keys are matched case-insensitively
// at load; the node always writes these canonical names back.

export type ModelType = 0 | 1 | 2 | 3 | 4

export interface AIModelConfig {
  Model: string
  API: string
  Type: number
  CID: string
}

export interface AIProjectConfig {
  Project: string
  Models: AIModelConfig[]
}

export interface Config {
  Bootstrap: string[]
  Addresses: string[]
  API: {
    Addr: string
    /** aicn's own: a second listener for browsers and fetch-based SDKs ("off" for none) */
    WebAddr: string
    /** aicn's own: web origins (besides the node's own) that may call the API from a browser; "*" for any */
    AllowedOrigins: string[]
    /** aicn's own: host names (besides loopback names and IP literals) accepted in the Host header */
    AllowedHosts: string[]
    /** aicn's own: a bearer secret that opens the admin endpoints to callers on other machines; "" = none */
    AdminKey: string
    /** aicn's own: connections one HTTP listener holds at most */
    MaxConnections: number
    /** aicn's own: connections one client address (IPv6: a /64) holds on a listener at most; loopback not counted */
    MaxConnectionsPerIP: number
  }
  Identity: { PeerID: string, PrivKey: string }
  Swarm: {
    ConnMgr: { Type: 'basic' | 'none', HighWater: number, LowWater: number, GracePeriod: string }
    DisableNatPortMap: boolean
    RelayClient: { Enabled: boolean, StaticRelays: string[] }
    RelayService: { Enabled: boolean }
    EnableHolePunching: boolean
    EnableAutoNATService: boolean
    DialTimeout: string
  }
  Pubsub: {
    Enabled: boolean
    Router: 'gossipsub' | 'floodsub'
    FloodPublish: boolean
    /** aicn's own (gossipsub): topic messages one author may publish a second (a token per started 64 KiB);
     * over it only its newest message is let through, later (src/p2p/topic-rate.ts) */
    AuthorRate: number
    AuthorBurst: number
    /** aicn's own (gossipsub): topic messages one peer may relay a second, over all authors */
    PeerRate: number
    PeerBurst: number
    /** aicn's own: view syncs (/aicn/view/1.0.0) one peer may ask this node for a minute */
    PeerViewSyncs: number
  }
  Routing: { Type: 'auto' | 'none' | 'dhtclient' | 'dhtserver', ProtocolPrefix: string }
  App: {
    LogLevel: 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal'
    LogFile: string
    LogOutput: string
    /** aicn's own: "auto" (pretty on a terminal, JSON otherwise), "pretty" or "json"; files are always JSON */
    LogFormat: 'auto' | 'pretty' | 'json'
    PreSharedKey: string
    TopicName: string
    Datastore: string
    AutoUpgrade: { Enabled: boolean, TimeInterval: string }
    PeersCollect: { Enabled: boolean, HeartbeatInterval: string, BusyInterval: string, ClientProject: string }
  }
  /** aicn's own: "aicn" offers our native protocols and the Go node's; "go" only the Go node's, so a
   * node looks exactly like a Go node on the wire (used to build mixed networks in tests) */
  Wire: { Mode: 'aicn' | 'go' }
  /** aicn's OpenAI-compatible gateway (not in the Go node's config, which ignores it) */
  Gateway: {
    /** "auto": keys are required when API.Addr is not a loopback address; "always"; "never" */
    RequireKeys: 'auto' | 'always' | 'never'
    /** where plain model names resolve first, in order (src/gateway/models.ts) */
    Projects: string[]
    DefaultPrice: { InputPerMillionUsd: number, OutputPerMillionUsd: number }
    /** per model ("model" or "project/model") */
    Prices: Array<{ Model: string, InputPerMillionUsd: number, OutputPerMillionUsd: number }>
  }
  /** aicn's own: how long a job of each kind may run when the client sets no `timeout` (Go durations) */
  Jobs: {
    Timeouts: { Chat: string, ImageGen: string, ImageEdit: string, Embedding: string, Completion: string }
    IpfsNodes: string[]
    /** the budgets of other peers' job streams on this node (src/p2p/peer-budget.ts, docs/protocols.md) */
    PeerStreams: number
    NodeStreams: number
    PeerHeldBytes: number
    NodeHeldBytes: number
    PeerJobRate: number
    PeerJobBurst: number
  }
  AIProjects: AIProjectConfig[]
}
