import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../../../src/core/errors.ts'
import { createConfigTemplate, parseHostPort, validateConfig, type Config } from '../../../src/config/index.ts'

const PRIV_KEY = 'CAISINAckM6QODvCrez5I0Q3RZyo9PeV4jDeB1L71AHnSU/H'
const PEER_ID = '16Uiu2HAmJnGqxBqtWGkymSsy5WDKJY5A5NctcUduENADDptQFF4Y'
const OTHER_PEER = '16Uiu2HAmS4CErxrmPryJbbEX2HFQbLK8r8xCA5rmzdSU59rHc9AF'

function validConfig (): Config {
  return createConfigTemplate('worker', { peerId: PEER_ID, privKey: PRIV_KEY, datastore: tmpdir() })
}

async function problemsOf (config: Config, options?: { checkDatastore?: boolean }): Promise<string[]> {
  try {
    await validateConfig(config, options)
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    return err.message.split('\n')
  }
  return []
}

test('a template config is valid, and zero bootstrap peers is allowed', async () => {
  const config = validConfig()
  assert.deepEqual(config.Bootstrap, [])
  assert.deepEqual(await problemsOf(config), [])
})

test('the identity vector matches, a mismatch is rejected with the expected ID', async () => {
  const config = validConfig()
  config.Identity.PeerID = OTHER_PEER
  assert.deepEqual(await problemsOf(config), [`Identity.PeerID: does not match Identity.PrivKey (expected ${PEER_ID})`])
})

test('every rule reports the key it is about', async () => {
  const cases: Array<[string, (c: Config) => void]> = [
    ['Bootstrap[0]', (c) => { c.Bootstrap = ['foo'] }],
    ['Bootstrap[1]', (c) => { c.Bootstrap = [`/ip4/1.2.3.4/tcp/1/p2p/${OTHER_PEER}`, '/ip4/1.2.3.4/tcp/1'] }],
    ['Bootstrap[0]', (c) => { c.Bootstrap = ['/ip4/1.2.3.4/tcp/1/p2p/notapeer'] }],
    ['Bootstrap[0]', (c) => { c.Bootstrap = [''] }],
    ['Addresses', (c) => { c.Addresses = [] }],
    ['Addresses[1]', (c) => { c.Addresses = ['/ip4/0.0.0.0/tcp/7001', 'foo'] }],
    ['Addresses[0]', (c) => { c.Addresses = ['/ip4/300.0.0.1/tcp/7001'] }],
    ['API.Addr', (c) => { c.API.Addr = '' }],
    ['API.Addr', (c) => { c.API.Addr = '127.0.0.1' }],
    ['API.Addr', (c) => { c.API.Addr = '127.0.0.1:70000' }],
    ['Identity.PrivKey', (c) => { c.Identity.PrivKey = '' }],
    ['Identity.PrivKey', (c) => { c.Identity.PrivKey = 'not base64!' }],
    ['Identity.PrivKey', (c) => { c.Identity.PrivKey = 'CAISIQ==' }],
    ['Identity.PeerID', (c) => { c.Identity.PeerID = '' }],
    ['Identity.PeerID', (c) => { c.Identity.PeerID = OTHER_PEER }],
    ['Swarm.ConnMgr.Type', (c) => { (c.Swarm.ConnMgr as { Type: string }).Type = 'fancy' }],
    ['Swarm.ConnMgr.HighWater', (c) => { c.Swarm.ConnMgr.HighWater = -1; c.Swarm.ConnMgr.LowWater = -2 }],
    ['Swarm.ConnMgr.LowWater', (c) => { c.Swarm.ConnMgr.LowWater = 500 }],
    ['Swarm.ConnMgr.GracePeriod', (c) => { c.Swarm.ConnMgr.GracePeriod = '20' }],
    ['Swarm.ConnMgr.GracePeriod', (c) => { c.Swarm.ConnMgr.GracePeriod = '-1s' }],
    ['Swarm.RelayClient.StaticRelays[0]', (c) => { c.Swarm.RelayClient.StaticRelays = ['/ip4/1.2.3.4/tcp/1'] }],
    ['Swarm.DialTimeout', (c) => { c.Swarm.DialTimeout = 'soon' }],
    ['Pubsub.Router', (c) => { (c.Pubsub as { Router: string }).Router = 'randomsub' }],
    ['Routing.Type', (c) => { (c.Routing as { Type: string }).Type = 'dht' }],
    ['Routing.ProtocolPrefix', (c) => { c.Routing.ProtocolPrefix = 'dbc' }],
    ['App.LogLevel', (c) => { (c.App as { LogLevel: string }).LogLevel = 'INFO' }],
    ['App.LogOutput', (c) => { c.App.LogOutput = 'stderr+syslog' }],
    ['App.LogOutput', (c) => { c.App.LogOutput = 'stderr+' }],
    ['App.LogFile', (c) => { c.App.LogOutput = 'file'; c.App.LogFile = '' }],
    ['App.PreSharedKey', (c) => { c.App.PreSharedKey = 'abcd' }],
    ['App.PreSharedKey', (c) => { c.App.PreSharedKey = 'z'.repeat(64) }],
    ['App.TopicName', (c) => { c.App.TopicName = '' }],
    ['App.Datastore', (c) => { c.App.Datastore = '' }],
    ['App.AutoUpgrade.TimeInterval', (c) => { c.App.AutoUpgrade.TimeInterval = '1 hour' }],
    ['App.AutoUpgrade.TimeInterval', (c) => { c.App.AutoUpgrade.TimeInterval = '0' }],
    ['App.PeersCollect.HeartbeatInterval', (c) => { c.App.PeersCollect.HeartbeatInterval = '180' }],
    ['App.PeersCollect.BusyInterval', (c) => { c.App.PeersCollect.BusyInterval = '0s' }],
    ['AIProjects[0].Project', (c) => { c.AIProjects = [{ Project: '', Models: [] }] }],
    ['AIProjects[0].Models[0].Model', (c) => { c.AIProjects = [{ Project: 'P', Models: [{ Model: '', API: 'http://127.0.0.1:1', Type: 0, CID: '' }] }] }],
    ['Jobs.Timeouts.Chat', (c) => { c.Jobs.Timeouts.Chat = 'soon' }],
    ['Jobs.Timeouts.ImageGen', (c) => { c.Jobs.Timeouts.ImageGen = '0s' }],
    ['Jobs.Timeouts.Embedding', (c) => { c.Jobs.Timeouts.Embedding = '11m' }],
    ['AIProjects[0].Models[0].API', (c) => { c.AIProjects = [{ Project: 'P', Models: [{ Model: 'M', API: '127.0.0.1:8000/v1', Type: 0, CID: '' }] }] }],
    ['Jobs.Timeouts.Chat', (c) => { c.Jobs.Timeouts.Chat = 'soon' }],
    ['Jobs.Timeouts.ImageGen', (c) => { c.Jobs.Timeouts.ImageGen = '0s' }],
    ['Jobs.Timeouts.Embedding', (c) => { c.Jobs.Timeouts.Embedding = '11m' }],
    ['AIProjects[0].Models[0].API', (c) => { c.AIProjects = [{ Project: 'P', Models: [{ Model: 'M', API: '', Type: 0, CID: '' }] }] }],
    ['AIProjects[0].Models[0].Type', (c) => { c.AIProjects = [{ Project: 'P', Models: [{ Model: 'M', API: 'http://m:1', Type: -1, CID: '' }] }] }]
  ]
  for (const [key, mutate] of cases) {
    const config = validConfig()
    mutate(config)
    const problems = await problemsOf(config, { checkDatastore: false })
    assert.ok(problems.length > 0, `no problem reported for ${key}`)
    assert.ok(problems[0].startsWith(`${key}: `), `expected a message about ${key}, got ${JSON.stringify(problems)}`)
  }
})

test('the messages say what is wrong', async () => {
  const config = validConfig()
  config.Addresses = ['/ip4/0.0.0.0/tcp/7001', 'foo']
  config.Swarm.ConnMgr.Type = 'fancy' as 'basic'
  config.API.Addr = 'localhost'
  assert.deepEqual(await problemsOf(config), [
    'Addresses[1]: "foo" is not a multiaddr (String multiaddr must start with "/")',
    'API.Addr: must be host:port, e.g. "127.0.0.1:6000" (got "localhost")',
    'Swarm.ConnMgr.Type: must be "basic" or "none" (got "fancy")'
  ])
})

test('a job timeout names its key and the limit', async () => {
  const config = validConfig()
  config.Jobs.Timeouts.Completion = '1h'
  assert.deepEqual(await problemsOf(config, { checkDatastore: false }), ['Jobs.Timeouts.Completion: must be at most 10m'])
})

test('the budgets and rate limits are integers in range, a node-wide one at least the per-peer one', async () => {
  const config = validConfig()
  config.Jobs.PeerStreams = 0
  config.Jobs.NodeStreams = 64
  config.Jobs.PeerHeldBytes = 1024
  config.Jobs.PeerJobRate = 1.5
  config.Pubsub.AuthorRate = 10
  config.Pubsub.AuthorBurst = 5
  config.Pubsub.PeerViewSyncs = -1
  assert.deepEqual(await problemsOf(config, { checkDatastore: false }), [
    'Pubsub.AuthorBurst: must be an integer from 10 to 1000000 (got 5)',
    'Pubsub.PeerViewSyncs: must be an integer from 1 to 100000 (got -1)',
    'Jobs.PeerStreams: must be an integer from 1 to 65536 (got 0)',
    'Jobs.PeerHeldBytes: must be an integer from 2097152 to 4294967296 (got 1024)',
    'Jobs.PeerJobRate: must be an integer from 1 to 1000000 (got 1.5)'
  ])
  const ok = validConfig()
  Object.assign(ok.Jobs, { PeerStreams: 16, NodeStreams: 16, PeerHeldBytes: 4 * 1024 * 1024, NodeHeldBytes: 4 * 1024 * 1024 })
  Object.assign(ok.Pubsub, { AuthorRate: 1, AuthorBurst: 1, PeerRate: 1000, PeerBurst: 1000, PeerViewSyncs: 1 })
  assert.deepEqual(await problemsOf(ok, { checkDatastore: false }), [])
})

test('good values of the less obvious keys are accepted', async () => {
  const config = validConfig()
  config.Bootstrap = [
    `/ip4/1.2.3.4/tcp/7001/p2p/${OTHER_PEER}`,
    `/dns4/boot.example.org/tcp/7001/p2p/${OTHER_PEER}`,
    `/ip4/1.2.3.4/tcp/7001/p2p/${OTHER_PEER}/p2p-circuit/p2p/${PEER_ID}`
  ]
  config.Addresses = ['/ip4/0.0.0.0/tcp/7001', '/ip6/::/tcp/7001']
  config.API.Addr = ':6000'
  config.Swarm.DialTimeout = '1m30s'
  config.Swarm.ConnMgr.GracePeriod = '0'
  config.Jobs.Timeouts.ImageEdit = '10m'
  config.Jobs.Timeouts.Chat = '45s'
  config.App.LogOutput = 'stdout+stderr'
  config.App.PreSharedKey = 'F504F536A912A8CF7D00ADACEE8ED20270C5040D961D7F3DA4FCCBCBEC0EC48A'
  config.AIProjects = [{ Project: 'P', Models: [{ Model: 'M', API: 'http://vllm:8000/v1/chat/completions', Type: 0, CID: '' }] }]
  assert.deepEqual(await problemsOf(config), [])
})

test('parseHostPort understands the Go listen forms', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:6000'), { host: '127.0.0.1', port: 6000 })
  assert.deepEqual(parseHostPort(':8080'), { host: '', port: 8080 })
  assert.deepEqual(parseHostPort('[::1]:6000'), { host: '::1', port: 6000 })
  assert.deepEqual(parseHostPort('localhost:0'), { host: 'localhost', port: 0 })
  for (const bad of ['', '6000', '::1:6000', 'host:', 'host:port', 'a:1:2', 'http://x:1']) {
    assert.throws(() => parseHostPort(bad), Error, bad)
  }
})

test('the datastore must be an existing directory, unless the check is off', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-config-validate-'))
  try {
    const config = validConfig()
    config.App.Datastore = join(dir, 'missing')
    assert.deepEqual(await problemsOf(config), [`App.Datastore: directory ${join(dir, 'missing')} does not exist (create it, or run "aicn init")`])
    assert.deepEqual(await problemsOf(config, { checkDatastore: false }), [])

    const file = join(dir, 'file')
    await writeFile(file, '')
    config.App.Datastore = file
    assert.deepEqual(await problemsOf(config), [`App.Datastore: ${file} is not a directory`])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a log file may be missing (the logger creates it) but not a directory', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-config-validate-'))
  try {
    const config = validConfig()
    config.App.LogOutput = 'stderr+file'
    config.App.LogFile = join(dir, 'logs', 'host.log')
    assert.deepEqual(await problemsOf(config), [])
    config.App.LogFile = dir
    assert.deepEqual(await problemsOf(config), [`App.LogFile: ${dir} is a directory, not a file`])
    // only checked when logs go to the file
    config.App.LogOutput = 'stderr'
    assert.deepEqual(await problemsOf(config), [])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('the web listener, allowed origins and hosts, and the admin key are checked', async () => {
  const config = validConfig()
  config.API.WebAddr = 'nope'
  config.API.AllowedOrigins = ['https://app.example', '*', 'https://app.example/path', 'ftp://x']
  config.API.AllowedHosts = ['node.example', 'bad host']
  config.API.AdminKey = 'short'
  const problems = await problemsOf(config)
  assert.deepEqual(problems.filter((p) => p.startsWith('API.')).map((p) => p.split(':')[0]), [
    'API.WebAddr', 'API.AllowedOrigins[2]', 'API.AllowedOrigins[3]', 'API.AllowedHosts[1]', 'API.AdminKey'
  ])
  config.API.WebAddr = 'off'
  assert.ok(!(await problemsOf(config)).some((p) => p.startsWith('API.WebAddr')), '"off" turns the listener off')
})
