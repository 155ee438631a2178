import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../../../src/core/errors.ts'
import { GO_NODE_PSK, loadConfig, saveConfig } from '../../../src/config/index.ts'

const PRIV_KEY = 'CAISINAckM6QODvCrez5I0Q3RZyo9PeV4jDeB1L71AHnSU/H'
const PEER_ID = '16Uiu2HAmJnGqxBqtWGkymSsy5WDKJY5A5NctcUduENADDptQFF4Y'

async function withTempDir (fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-config-load-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** worker.json exactly as the Go node's `host -init worker` writes it (docs/config.md, "Templates"). */
function goWorkerJson (dir: string): Record<string, unknown> {
  return {
    Bootstrap: [],
    Addresses: ['/ip4/0.0.0.0/tcp/7001', '/ip6/::/tcp/7001'],
    API: { Addr: '127.0.0.1:7002' },
    Identity: { PeerID: PEER_ID, PrivKey: PRIV_KEY },
    Swarm: {
      ConnMgr: { Type: 'basic', HighWater: 400, LowWater: 100, GracePeriod: '60s' },
      DisableNatPortMap: false,
      RelayClient: { Enabled: false, StaticRelays: null },
      RelayService: { Enabled: false },
      EnableHolePunching: false,
      EnableAutoNATService: true,
      DialTimeout: ''
    },
    Pubsub: { Enabled: true, Router: 'floodsub', FloodPublish: true, AuthorRate: 5, AuthorBurst: 40, PeerRate: 100, PeerBurst: 1000, PeerViewSyncs: 10 },
    Routing: { Type: 'dhtclient', ProtocolPrefix: '/dbc' },
    App: {
      LogLevel: 'info',
      LogFile: join(dir, 'host.log'),
      LogOutput: 'file',
      PreSharedKey: GO_NODE_PSK,
      TopicName: 'DeepBrainChain',
      Datastore: join(dir, 'datastore'),
      AutoUpgrade: { Enabled: true, TimeInterval: '1h' },
      PeersCollect: { Enabled: false, HeartbeatInterval: '180s', BusyInterval: '30s', ClientProject: '' }
    },
    Wire: { Mode: 'aicn' },
    Gateway: { RequireKeys: 'auto', Projects: [], DefaultPrice: { InputPerMillionUsd: 1, OutputPerMillionUsd: 3 }, Prices: [] },
    Jobs: { Timeouts: { Chat: '3m', ImageGen: '5m', ImageEdit: '5m', Embedding: '3m', Completion: '3m' }, IpfsNodes: [], PeerStreams: 128, NodeStreams: 1024, PeerHeldBytes: 16777216, NodeHeldBytes: 67108864, PeerJobRate: 1000, PeerJobBurst: 2000 },
    AIProjects: []
  }
}

test('a Go-node worker.json loads unchanged', async () => {
  await withTempDir(async (dir) => {
    await mkdir(join(dir, 'datastore'))
    const json = goWorkerJson(dir)
    await writeFile(join(dir, 'worker.json'), JSON.stringify(json, null, 2))
    const config = await loadConfig(join(dir, 'worker.json'))
    const expected = structuredClone(json) as { Swarm: { RelayClient: { StaticRelays: unknown } } }
    expected.Swarm.RelayClient.StaticRelays = [] // Go writes null for an empty list
    // aicn's own API keys get their defaults (docs/config.md).
    ;(expected as any).API = { ...(expected as any).API, WebAddr: '127.0.0.1:6080', AllowedOrigins: [], AllowedHosts: [], AdminKey: '', MaxConnections: 4096, MaxConnectionsPerIP: 256 }
    ;(expected as any).App.LogFormat = 'auto'
    assert.deepEqual(config, expected)
  })
})

test('a Go docs-style config with lower-case keys, bootstrap peers and models loads', async () => {
  await withTempDir(async (dir) => {
    await mkdir(join(dir, 'datastore'))
    const text = JSON.stringify({
      bootstrap: ['/ip4/122.99.183.54/tcp/6001/p2p/16Uiu2HAmS4CErxrmPryJbbEX2HFQbLK8r8xCA5rmzdSU59rHc9AF'],
      addresses: ['/ip4/0.0.0.0/tcp/6001'],
      api: { addr: ':6000' },
      identity: { peerid: PEER_ID, privkey: PRIV_KEY },
      swarm: { connmgr: { type: 'none' }, relayclient: { enabled: true }, enableholepunching: true },
      pubsub: { enabled: true, router: 'gossipsub' },
      routing: { type: 'dhtclient', protocolprefix: '/dbc' },
      app: { topicname: 'DeepBrainChain', datastore: 'datastore', presharedkey: GO_NODE_PSK },
      aiprojects: [{ project: 'DecentralGPT', models: [{ model: 'Qwen2.5-72B', api: 'http://127.0.0.1:8000/v1/chat/completions', type: 0, cid: 'abc' }] }]
    })
    await writeFile(join(dir, 'worker.json'), text)
    const config = await loadConfig(join(dir, 'worker.json'))
    assert.equal(config.Swarm.ConnMgr.Type, 'none')
    assert.equal(config.Swarm.ConnMgr.HighWater, 400)
    assert.equal(config.Swarm.RelayClient.Enabled, true)
    assert.equal(config.Bootstrap.length, 1)
    assert.equal(config.App.LogOutput, 'stderr')
    assert.equal(config.AIProjects[0].Models[0].CID, 'abc')
  })
})

test('relative Datastore and LogFile are resolved against the config file directory', async () => {
  await withTempDir(async (dir) => {
    await mkdir(join(dir, 'node', 'data'), { recursive: true })
    const json = goWorkerJson(dir) as { App: Record<string, unknown> }
    json.App.Datastore = 'data'
    json.App.LogFile = './logs/../host.log'
    await writeFile(join(dir, 'node', 'worker.json'), JSON.stringify(json))
    const config = await loadConfig(join(dir, 'node', 'worker.json'))
    assert.equal(config.App.Datastore, join(dir, 'node', 'data'))
    assert.equal(config.App.LogFile, join(dir, 'node', 'host.log'))
  })
})

test('a missing file says how to create one', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'nope.json')
    await assert.rejects(loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.message, `config file ${file} not found; create one with "aicn init worker --dir ${dir}"`)
      return true
    })
  })
})

test('a file that is not JSON is reported with the parser detail', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'bad.json')
    await writeFile(file, '{"Bootstrap": [,]}')
    await assert.rejects(loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.match(err.message, new RegExp(`^config file ${file} is not valid JSON: .+`))
      return true
    })
  })
})

test('a directory instead of a file is a clear error', async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(loadConfig(dir), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.match(err.message, /^config file .* cannot be read: /)
      return true
    })
  })
})

test('a byte-order mark is tolerated', async () => {
  await withTempDir(async (dir) => {
    await mkdir(join(dir, 'datastore'))
    await writeFile(join(dir, 'worker.json'), '\uFEFF' + JSON.stringify(goWorkerJson(dir)))
    const config = await loadConfig(join(dir, 'worker.json'))
    assert.equal(config.Identity.PeerID, PEER_ID)
  })
})

test('validation problems of a file are ConfigErrors naming the keys', async () => {
  await withTempDir(async (dir) => {
    const json = goWorkerJson(dir) as { Swarm: { ConnMgr: Record<string, unknown> } }
    json.Swarm.ConnMgr.Type = 'fancy'
    await writeFile(join(dir, 'worker.json'), JSON.stringify(json))
    await assert.rejects(loadConfig(join(dir, 'worker.json')), {
      name: 'ConfigError',
      message: `Swarm.ConnMgr.Type: must be "basic" or "none" (got "fancy")\nApp.Datastore: directory ${join(dir, 'datastore')} does not exist (create it, or run "aicn init")`
    })
    // the file-system check can be turned off, e.g. for tools that only read a config
    json.Swarm.ConnMgr.Type = 'none'
    await writeFile(join(dir, 'worker.json'), JSON.stringify(json))
    const config = await loadConfig(join(dir, 'worker.json'), { checkDatastore: false })
    assert.equal(config.Swarm.ConnMgr.Type, 'none')
  })
})

test('a loaded config saved back loads to the same value', async () => {
  await withTempDir(async (dir) => {
    await mkdir(join(dir, 'datastore'))
    await writeFile(join(dir, 'worker.json'), JSON.stringify(goWorkerJson(dir)))
    const first = await loadConfig(join(dir, 'worker.json'))
    await saveConfig(join(dir, 'copy.json'), first)
    assert.deepEqual(await loadConfig(join(dir, 'copy.json')), first)
  })
})
