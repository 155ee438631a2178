import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tmpdir } from 'node:os'
import {
  createConfigTemplate, DEFAULT_API_ADDR, GO_NODE_PSK, normalizeConfig, serializeConfig, validateConfig
} from '../../../src/config/index.ts'

const PRIV_KEY = 'CAISINAckM6QODvCrez5I0Q3RZyo9PeV4jDeB1L71AHnSU/H'
const PEER_ID = '16Uiu2HAmJnGqxBqtWGkymSsy5WDKJY5A5NctcUduENADDptQFF4Y'
const identity = { peerId: PEER_ID, privKey: PRIV_KEY, datastore: tmpdir() }

test('the published constants', () => {
  assert.equal(DEFAULT_API_ADDR, '127.0.0.1:6000')
  assert.match(GO_NODE_PSK, /^[0-9a-f]{64}$/)
})

test('the worker template: safe defaults, DHT client, AutoNAT service', async () => {
  const config = createConfigTemplate('worker', identity)
  await validateConfig(config)
  assert.deepEqual(config.Bootstrap, [])
  assert.deepEqual(config.Addresses, ['/ip4/127.0.0.1/tcp/7001'])
  assert.equal(config.API.Addr, '127.0.0.1:6000')
  assert.deepEqual(config.Identity, { PeerID: PEER_ID, PrivKey: PRIV_KEY })
  assert.deepEqual(config.Swarm.ConnMgr, { Type: 'basic', HighWater: 400, LowWater: 100, GracePeriod: '60s' })
  assert.equal(config.Swarm.DisableNatPortMap, true)
  assert.equal(config.Swarm.RelayService.Enabled, false)
  assert.equal(config.Swarm.EnableAutoNATService, true)
  assert.deepEqual(config.Pubsub, { Enabled: true, Router: 'gossipsub', FloodPublish: true, AuthorRate: 5, AuthorBurst: 40, PeerRate: 100, PeerBurst: 1000, PeerViewSyncs: 10 })
  assert.deepEqual(config.Routing, { Type: 'dhtclient', ProtocolPrefix: '/dbc' })
  assert.equal(config.App.PreSharedKey, '')
  assert.equal(config.App.AutoUpgrade.Enabled, false)
  assert.equal(config.App.LogOutput, 'stderr')
  assert.equal(config.App.LogFile, '')
  assert.equal(config.App.TopicName, 'DeepBrainChain')
  assert.deepEqual(config.App.PeersCollect, { Enabled: false, HeartbeatInterval: '180s', BusyInterval: '30s', ClientProject: '' })
  assert.deepEqual(config.AIProjects, [])
})

test('the input template: DHT server, relay service, peer collection', async () => {
  const config = createConfigTemplate('input', identity)
  await validateConfig(config)
  assert.equal(config.Routing.Type, 'dhtserver')
  assert.equal(config.Swarm.RelayService.Enabled, true)
  assert.equal(config.App.PeersCollect.Enabled, true)
  assert.equal(config.Swarm.DisableNatPortMap, true)
})

test('the caller options are used', async () => {
  const bootstrap = ['/ip4/10.0.0.1/tcp/7001/p2p/16Uiu2HAmS4CErxrmPryJbbEX2HFQbLK8r8xCA5rmzdSU59rHc9AF']
  const config = createConfigTemplate('worker', {
    ...identity,
    listen: ['/ip4/0.0.0.0/tcp/7001', '/ip6/::/tcp/7001'],
    apiAddr: '127.0.0.1:7002',
    bootstrap,
    psk: GO_NODE_PSK,
    logFile: `${tmpdir()}/aicn-template-test.log`
  })
  await validateConfig(config)
  assert.deepEqual(config.Addresses, ['/ip4/0.0.0.0/tcp/7001', '/ip6/::/tcp/7001'])
  assert.equal(config.API.Addr, '127.0.0.1:7002')
  assert.deepEqual(config.Bootstrap, bootstrap)
  assert.notEqual(config.Bootstrap, bootstrap, 'the template does not share the caller array')
  assert.equal(config.App.PreSharedKey, GO_NODE_PSK)
  assert.equal(config.App.LogOutput, 'stderr+file')
  assert.equal(config.App.LogFile, `${tmpdir()}/aicn-template-test.log`)
  assert.deepEqual(createConfigTemplate('worker', { ...identity, listen: [] }).Addresses, ['/ip4/127.0.0.1/tcp/7001'])
})

test('a template is already canonical: normalizing changes nothing', () => {
  for (const mode of ['worker', 'input'] as const) {
    const config = createConfigTemplate(mode, identity)
    assert.deepEqual(normalizeConfig(JSON.parse(serializeConfig(config))), config)
    assert.equal(serializeConfig(config), JSON.stringify(config, null, 2) + '\n')
  }
})
