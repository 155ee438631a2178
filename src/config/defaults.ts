// The shape of the config file as data: canonical key names in the order they are written, the JSON
// type of every key and the default filled in at load (docs/config.md, "Keys"). normalizeConfig walks this
// table, so a key's name, type and default live in exactly one place.

/** Where the HTTP API listens unless the config says otherwise: loopback only, because the
 * admin endpoints (register, bootstrap add/rm) have no authentication. */
export const DEFAULT_API_ADDR = '127.0.0.1:6000'

/** The browser-safe listener: port 6000 is on the WHATWG fetch "bad ports" list (X11), so browsers, Node's
 * fetch and every fetch-based SDK refuse it. 6080 is not on that list. */
export const DEFAULT_WEB_ADDR = '127.0.0.1:6080'
/** `API.WebAddr` value that turns the second listener off. */
export const WEB_OFF = 'off'

/** How many HTTP connections a listener holds, in all and per client address (src/api/connection-limits.ts). */
export const DEFAULT_API_CONNECTIONS = { MaxConnections: 4096, MaxConnectionsPerIP: 256 }

/** The Go network's published pre-shared key (its templates ship it; docs/config.md, "Templates"). It is public, so it gives no admission
 * control; aicn writes it only when asked to join that network (`aicn init --network dbc`). */
export const GO_NODE_PSK = 'f504f536a912a8cf7d00adacee8ed20270c5040d961d7f3da4fccbcbec0ec48a'

/** The pubsub topic and DHT rendezvous namespace of the Go network. */
export const DEFAULT_TOPIC_NAME = 'DeepBrainChain'

/** The Go network's DHT protocol prefix (`/dbc/kad/1.0.0`). */
export const DEFAULT_PROTOCOL_PREFIX = '/dbc'

/** The job budgets' defaults (src/p2p/peer-budget.ts; docs/protocols.md, "Budgets"). */
export const DEFAULT_JOB_BUDGETS = {
  PeerStreams: 128,
  NodeStreams: 1024,
  PeerHeldBytes: 16 * 1024 * 1024,
  NodeHeldBytes: 64 * 1024 * 1024,
  PeerJobRate: 1000,
  PeerJobBurst: 2000
} as const

/** The topic's and view sync's rate limits (src/p2p/topic-rate.ts, src/registry/view-sync/view-sync.ts). An honest
 * node publishes at most 5 heartbeats a second (src/protocols/heartbeat/heartbeats.ts); a relay forwards every node's. */
export const DEFAULT_TOPIC_RATES = {
  AuthorRate: 5,
  AuthorBurst: 40,
  PeerRate: 100,
  PeerBurst: 1000,
  PeerViewSyncs: 10
} as const

export type FieldSpec =
  /** `default` replaces a missing or empty string */
  | { kind: 'string', default?: string }
  /** JSON number holding an integer; `default` replaces a missing value or 0 (Go's "if 0" defaults) */
  | { kind: 'integer', default?: number }
  /** any finite JSON number (prices); `default` replaces a missing value */
  | { kind: 'number', default?: number }
  /** `forced` overrides whatever the file says (Pubsub.Enabled) */
  | { kind: 'boolean', forced?: boolean }
  | { kind: 'array', items: FieldSpec }
  | { kind: 'object', fields: Record<string, FieldSpec> }

const str = (fallback?: string): FieldSpec => ({ kind: 'string', default: fallback })
const int = (fallback?: number): FieldSpec => ({ kind: 'integer', default: fallback })
const num = (fallback?: number): FieldSpec => ({ kind: 'number', default: fallback })
const bool: FieldSpec = { kind: 'boolean' }
const strings: FieldSpec = { kind: 'array', items: str() }
const obj = (fields: Record<string, FieldSpec>): FieldSpec => ({ kind: 'object', fields })

export const CONFIG_SPEC = obj({
  Bootstrap: strings,
  Addresses: strings,
  // WebAddr, AllowedOrigins, AllowedHosts, AdminKey and the connection limits are aicn's own (src/api/guard.ts,
  // src/api/connection-limits.ts, docs/config.md).
  API: obj({
    Addr: str(),
    WebAddr: str(DEFAULT_WEB_ADDR),
    AllowedOrigins: strings,
    AllowedHosts: strings,
    AdminKey: str(),
    MaxConnections: int(DEFAULT_API_CONNECTIONS.MaxConnections),
    MaxConnectionsPerIP: int(DEFAULT_API_CONNECTIONS.MaxConnectionsPerIP)
  }),
  Identity: obj({ PeerID: str(), PrivKey: str() }),
  Swarm: obj({
    ConnMgr: obj({ Type: str('basic'), HighWater: int(400), LowWater: int(100), GracePeriod: str('20s') }),
    DisableNatPortMap: bool,
    RelayClient: obj({ Enabled: bool, StaticRelays: strings }),
    RelayService: obj({ Enabled: bool }),
    EnableHolePunching: bool,
    EnableAutoNATService: bool,
    DialTimeout: str()
  }),
  // The Go node always runs pubsub; the file's value is ignored there, so we force it too.
  // AuthorRate … PeerViewSyncs are aicn's own rate limits on the topic and view sync (src/p2p/topic-rate.ts).
  Pubsub: obj({
    Enabled: { kind: 'boolean', forced: true },
    Router: str('gossipsub'),
    FloodPublish: bool,
    AuthorRate: int(DEFAULT_TOPIC_RATES.AuthorRate),
    AuthorBurst: int(DEFAULT_TOPIC_RATES.AuthorBurst),
    PeerRate: int(DEFAULT_TOPIC_RATES.PeerRate),
    PeerBurst: int(DEFAULT_TOPIC_RATES.PeerBurst),
    PeerViewSyncs: int(DEFAULT_TOPIC_RATES.PeerViewSyncs)
  }),
  Routing: obj({ Type: str('auto'), ProtocolPrefix: str() }),
  App: obj({
    LogLevel: str('info'),
    LogFile: str(),
    LogOutput: str('stderr'),
    // aicn's own: how stderr/stdout lines look (the file is always JSON). Go nodes ignore the key.
    LogFormat: str('auto'),
    PreSharedKey: str(),
    TopicName: str(),
    Datastore: str(),
    AutoUpgrade: obj({ Enabled: bool, TimeInterval: str('1h') }),
    // BusyInterval is aicn's own; Go nodes ignore it.
    PeersCollect: obj({ Enabled: bool, HeartbeatInterval: str('180s'), BusyInterval: str('30s'), ClientProject: str() })
  }),
  // aicn's own: "go" makes the node speak only the Go node's protocols (for mixed-network tests).
  Wire: obj({ Mode: str('aicn') }),
  // aicn's own: the OpenAI-compatible gateway. Go nodes ignore the key.
  Gateway: obj({
    RequireKeys: str('auto'),
    Projects: strings,
    DefaultPrice: obj({ InputPerMillionUsd: num(1), OutputPerMillionUsd: num(3) }),
    Prices: { kind: 'array', items: obj({ Model: str(), InputPerMillionUsd: num(), OutputPerMillionUsd: num() }) }
  }),
  // aicn's own: job timeouts per kind, as the Go node's fixed ones (chat 3 min, images 5 min), and the
  // IPFS nodes image/gen may upload to (empty: loopback only; src/jobs/ipfs.ts).
  // PeerStreams … PeerJobBurst: the job budgets (src/p2p/peer-budget.ts).
  Jobs: obj({
    Timeouts: obj({ Chat: str('3m'), ImageGen: str('5m'), ImageEdit: str('5m'), Embedding: str('3m'), Completion: str('3m') }),
    IpfsNodes: strings,
    PeerStreams: int(DEFAULT_JOB_BUDGETS.PeerStreams),
    NodeStreams: int(DEFAULT_JOB_BUDGETS.NodeStreams),
    PeerHeldBytes: int(DEFAULT_JOB_BUDGETS.PeerHeldBytes),
    NodeHeldBytes: int(DEFAULT_JOB_BUDGETS.NodeHeldBytes),
    PeerJobRate: int(DEFAULT_JOB_BUDGETS.PeerJobRate),
    PeerJobBurst: int(DEFAULT_JOB_BUDGETS.PeerJobBurst)
  }),
  AIProjects: {
    kind: 'array',
    items: obj({
      Project: str(),
      Models: { kind: 'array', items: obj({ Model: str(), API: str(), Type: int(), CID: str() }) }
    })
  }
})
