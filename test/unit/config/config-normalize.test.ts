import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError } from '../../../src/core/errors.ts'
import { normalizeConfig } from '../../../src/config/index.ts'

test('an empty object gets every default of docs/config.md', () => {
  const config = normalizeConfig({})
  assert.deepEqual(config, {
    Bootstrap: [],
    Addresses: [],
    API: { Addr: '', WebAddr: '127.0.0.1:6080', AllowedOrigins: [], AllowedHosts: [], AdminKey: '', MaxConnections: 4096, MaxConnectionsPerIP: 256 },
    Identity: { PeerID: '', PrivKey: '' },
    Swarm: {
      ConnMgr: { Type: 'basic', HighWater: 400, LowWater: 100, GracePeriod: '20s' },
      DisableNatPortMap: false,
      RelayClient: { Enabled: false, StaticRelays: [] },
      RelayService: { Enabled: false },
      EnableHolePunching: false,
      EnableAutoNATService: false,
      DialTimeout: ''
    },
    Pubsub: { Enabled: true, Router: 'gossipsub', FloodPublish: false, AuthorRate: 5, AuthorBurst: 40, PeerRate: 100, PeerBurst: 1000, PeerViewSyncs: 10 },
    Routing: { Type: 'auto', ProtocolPrefix: '' },
    App: {
      LogLevel: 'info',
      LogFile: '',
      LogOutput: 'stderr',
      LogFormat: 'auto',
      PreSharedKey: '',
      TopicName: '',
      Datastore: '',
      AutoUpgrade: { Enabled: false, TimeInterval: '1h' },
      PeersCollect: { Enabled: false, HeartbeatInterval: '180s', BusyInterval: '30s', ClientProject: '' }
    },
    Wire: { Mode: 'aicn' },
    Gateway: { RequireKeys: 'auto', Projects: [], DefaultPrice: { InputPerMillionUsd: 1, OutputPerMillionUsd: 3 }, Prices: [] },
    Jobs: { Timeouts: { Chat: '3m', ImageGen: '5m', ImageEdit: '5m', Embedding: '3m', Completion: '3m' }, IpfsNodes: [], PeerStreams: 128, NodeStreams: 1024, PeerHeldBytes: 16777216, NodeHeldBytes: 67108864, PeerJobRate: 1000, PeerJobBurst: 2000 },
    AIProjects: []
  })
})

test('defaults replace empty strings and zero numbers, as Go LoadConfig does', () => {
  const config = normalizeConfig({
    Swarm: { ConnMgr: { Type: '', HighWater: 0, LowWater: 0, GracePeriod: '' } },
    Pubsub: { Enabled: false, Router: '' },
    Routing: { Type: '' },
    App: { LogLevel: '', LogOutput: '', AutoUpgrade: { TimeInterval: '' }, PeersCollect: { HeartbeatInterval: '' } }
  })
  assert.deepEqual(config.Swarm.ConnMgr, { Type: 'basic', HighWater: 400, LowWater: 100, GracePeriod: '20s' })
  assert.equal(config.Pubsub.Enabled, true, 'Pubsub.Enabled is forced on')
  assert.equal(config.Pubsub.Router, 'gossipsub')
  assert.equal(config.Routing.Type, 'auto')
  assert.equal(config.App.LogLevel, 'info')
  assert.equal(config.App.LogOutput, 'stderr')
  assert.equal(config.App.AutoUpgrade.TimeInterval, '1h')
  assert.equal(config.App.PeersCollect.HeartbeatInterval, '180s')
})

test('set values are kept', () => {
  const config = normalizeConfig({
    Swarm: { ConnMgr: { Type: 'none', HighWater: 50, LowWater: 10, GracePeriod: '1m' }, DialTimeout: '30s' },
    Pubsub: { Router: 'floodsub', FloodPublish: true },
    App: { LogLevel: 'debug', PeersCollect: { Enabled: true, HeartbeatInterval: '60s' } }
  })
  assert.deepEqual(config.Swarm.ConnMgr, { Type: 'none', HighWater: 50, LowWater: 10, GracePeriod: '1m' })
  assert.equal(config.Swarm.DialTimeout, '30s')
  assert.equal(config.Pubsub.Router, 'floodsub')
  assert.equal(config.Pubsub.FloodPublish, true)
  assert.equal(config.App.LogLevel, 'debug')
  assert.equal(config.App.PeersCollect.Enabled, true)
  assert.equal(config.App.PeersCollect.HeartbeatInterval, '60s')
})

test('keys match case-insensitively at every level', () => {
  const config = normalizeConfig({
    swarm: { connmgr: { type: 'none', HIGHWATER: 10, lowWater: 5 }, relayclient: { staticrelays: ['/ip4/1.2.3.4/tcp/1'] } },
    BOOTSTRAP: ['/ip4/1.2.3.4/tcp/4001'],
    api: { addr: '127.0.0.1:7000' },
    app: { topicname: 'T', peerscollect: { enabled: true } },
    aiprojects: [{ project: 'P', models: [{ model: 'M', api: 'http://127.0.0.1:8000', type: 1, cid: 'c1' }] }]
  })
  assert.equal(config.Swarm.ConnMgr.Type, 'none')
  assert.equal(config.Swarm.ConnMgr.HighWater, 10)
  assert.equal(config.Swarm.ConnMgr.LowWater, 5)
  assert.deepEqual(config.Swarm.RelayClient.StaticRelays, ['/ip4/1.2.3.4/tcp/1'])
  assert.deepEqual(config.Bootstrap, ['/ip4/1.2.3.4/tcp/4001'])
  assert.equal(config.API.Addr, '127.0.0.1:7000')
  assert.equal(config.App.TopicName, 'T')
  assert.equal(config.App.PeersCollect.Enabled, true)
  assert.deepEqual(config.AIProjects, [{ Project: 'P', Models: [{ Model: 'M', API: 'http://127.0.0.1:8000', Type: 1, CID: 'c1' }] }])
  // canonical names only, in canonical order
  assert.deepEqual(Object.keys(config.Swarm.ConnMgr), ['Type', 'HighWater', 'LowWater', 'GracePeriod'])
})

test('an exact key wins over a case-insensitive one', () => {
  const config = normalizeConfig({ app: { TopicName: 'exact', topicname: 'folded' }, App: { topicname: 'folded', TopicName: 'exact' } })
  assert.equal(config.App.TopicName, 'exact')
  assert.equal(normalizeConfig({ api: { addr: 'a:1' }, API: { Addr: 'b:2' } }).API.Addr, 'b:2')
})

test('unknown keys are ignored and null counts as absent', () => {
  const config = normalizeConfig({
    Unknown: 1,
    Swarm: { Foo: 'bar', RelayClient: { StaticRelays: null }, ConnMgr: null },
    App: { LogLevel: null },
    AIProjects: null
  })
  assert.deepEqual(config.Swarm.RelayClient.StaticRelays, [])
  assert.equal(config.Swarm.ConnMgr.Type, 'basic')
  assert.equal(config.App.LogLevel, 'info')
  assert.deepEqual(config.AIProjects, [])
  assert.equal('Unknown' in config, false)
  assert.equal('Foo' in config.Swarm, false)
})

test('model entries default Type to 0 and CID to ""', () => {
  const config = normalizeConfig({ AIProjects: [{ Project: 'P', Models: [{ Model: 'M', API: 'http://127.0.0.1:1' }] }] })
  assert.deepEqual(config.AIProjects[0].Models[0], { Model: 'M', API: 'http://127.0.0.1:1', Type: 0, CID: '' })
})

test('wrong JSON types are ConfigErrors naming the key, all listed', () => {
  assert.throws(() => normalizeConfig({ Swarm: { ConnMgr: { HighWater: '400' } } }), {
    name: 'ConfigError', message: 'Swarm.ConnMgr.HighWater: must be a number'
  })
  const cases: Array<[unknown, string]> = [
    [{ Bootstrap: '/ip4/1.2.3.4/tcp/1' }, 'Bootstrap: must be an array'],
    [{ Addresses: [1] }, 'Addresses[0]: must be a string'],
    [{ API: 'x' }, 'API: must be an object'],
    [{ Swarm: { DisableNatPortMap: 'true' } }, 'Swarm.DisableNatPortMap: must be true or false'],
    [{ Swarm: { ConnMgr: { LowWater: 1.5 } } }, 'Swarm.ConnMgr.LowWater: must be a whole number'],
    [{ App: { PeersCollect: { HeartbeatInterval: 180 } } }, 'App.PeersCollect.HeartbeatInterval: must be a string'],
    [{ AIProjects: [{ Models: [{ Type: '1' }] }] }, 'AIProjects[0].Models[0].Type: must be a number'],
    [{ AIProjects: {} }, 'AIProjects: must be an array']
  ]
  for (const [raw, message] of cases) {
    assert.throws(() => normalizeConfig(raw), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.message, message)
      return true
    })
  }
  assert.throws(() => normalizeConfig({ swarm: { connmgr: { highwater: 'x' } }, App: [] }), {
    message: 'Swarm.ConnMgr.HighWater: must be a number\nApp: must be an object'
  })
})

test('a non-object document is a ConfigError', () => {
  for (const raw of [null, [], 'x', 3]) {
    assert.throws(() => normalizeConfig(raw), ConfigError)
  }
})
