// The rules of docs/config.md (the Go node's, with its types and ranges), with messages that name the key and say what would be right. Every
// problem is collected so that an operator fixes the file in one go; the ConfigError lists them one
// per line in file order (the first line is what the CLI shows most prominently).
import type { Stats } from 'node:fs'
import { stat } from 'node:fs/promises'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Component } from '@multiformats/multiaddr'
import { ConfigError } from '../core/errors.ts'
import { parseDuration } from '../core/duration.ts'
import { MAX_JOB_MS } from '../core/job-types.ts'
import type { AIProjectConfig, Config } from './types.ts'
import { WEB_OFF } from './defaults.ts'

export interface ValidateOptions {
  /** Check the file system: `App.Datastore` is an existing directory and, when logging to a file,
   * `App.LogFile` is not a directory. Default true; tools that only inspect a config turn it off. */
  checkDatastore?: boolean
}

const CONN_MGR_TYPES = ['basic', 'none']
const PUBSUB_ROUTERS = ['gossipsub', 'floodsub']
const ROUTING_TYPES = ['auto', 'none', 'dhtclient', 'dhtserver']
const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'panic', 'fatal']
const LOG_OUTPUTS = ['stdout', 'stderr', 'file']
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const HEX_KEY = /^[0-9a-fA-F]{64}$/

/** Checks every rule of the config; throws one ConfigError listing all problems, one per line. */
export async function validateConfig (config: Config, options: ValidateOptions = {}): Promise<void> {
  const problems: string[] = []
  const report = (path: string, message: string): void => { problems.push(`${path}: ${message}`) }

  // An empty list is allowed: the first node of a network has nobody to bootstrap from.
  config.Bootstrap.forEach((addr, i) => checkMultiaddr(addr, `Bootstrap[${i}]`, true, report))
  if (config.Addresses.length === 0) report('Addresses', 'must not be empty (e.g. ["/ip4/0.0.0.0/tcp/7001"])')
  config.Addresses.forEach((addr, i) => checkMultiaddr(addr, `Addresses[${i}]`, false, report))
  checkApiAddr(config.API.Addr, 'API.Addr', report)
  if (config.API.WebAddr !== WEB_OFF) checkApiAddr(config.API.WebAddr, 'API.WebAddr', report)
  config.API.AllowedOrigins.forEach((origin, i) => { checkOrigin(origin, `API.AllowedOrigins[${i}]`, report) })
  config.API.AllowedHosts.forEach((host, i) => {
    if (!/^[A-Za-z0-9.-]{1,253}$/.test(host)) report(`API.AllowedHosts[${i}]`, `must be a host name such as "node.example.com" (got ${JSON.stringify(host)})`)
  })
  if (config.API.AdminKey !== '' && config.API.AdminKey.length < 16) report('API.AdminKey', 'must be empty or at least 16 characters (a random secret)')
  checkRange(config.API.MaxConnections, 'API.MaxConnections', 1, 1_000_000, report)
  checkRange(config.API.MaxConnectionsPerIP, 'API.MaxConnectionsPerIP', 1, Math.max(1, config.API.MaxConnections), report)
  checkIdentity(config.Identity, report)

  const { Swarm: swarm } = config
  checkOneOf(swarm.ConnMgr.Type, CONN_MGR_TYPES, 'Swarm.ConnMgr.Type', report)
  if (swarm.ConnMgr.HighWater < 0) report('Swarm.ConnMgr.HighWater', 'must not be negative')
  if (swarm.ConnMgr.LowWater < 0) report('Swarm.ConnMgr.LowWater', 'must not be negative')
  if (swarm.ConnMgr.LowWater > swarm.ConnMgr.HighWater) {
    report('Swarm.ConnMgr.LowWater', `must not be greater than Swarm.ConnMgr.HighWater (${swarm.ConnMgr.LowWater} > ${swarm.ConnMgr.HighWater})`)
  }
  checkDuration(swarm.ConnMgr.GracePeriod, 'Swarm.ConnMgr.GracePeriod', 'non-negative', report)
  swarm.RelayClient.StaticRelays.forEach((addr, i) => checkMultiaddr(addr, `Swarm.RelayClient.StaticRelays[${i}]`, true, report))
  if (swarm.DialTimeout !== '') checkDuration(swarm.DialTimeout, 'Swarm.DialTimeout', 'non-negative', report)

  checkOneOf(config.Pubsub.Router, PUBSUB_ROUTERS, 'Pubsub.Router', report)
  const pubsub = config.Pubsub
  checkRange(pubsub.AuthorRate, 'Pubsub.AuthorRate', 1, 100_000, report)
  checkRange(pubsub.AuthorBurst, 'Pubsub.AuthorBurst', Math.max(1, pubsub.AuthorRate), 1_000_000, report)
  checkRange(pubsub.PeerRate, 'Pubsub.PeerRate', 1, 1_000_000, report)
  checkRange(pubsub.PeerBurst, 'Pubsub.PeerBurst', Math.max(1, pubsub.PeerRate), 10_000_000, report)
  checkRange(pubsub.PeerViewSyncs, 'Pubsub.PeerViewSyncs', 1, 100_000, report)
  checkOneOf(config.Routing.Type, ROUTING_TYPES, 'Routing.Type', report)
  const prefix = config.Routing.ProtocolPrefix
  if (prefix !== '' && !/^\/\S*[^/\s]$/.test(prefix)) {
    report('Routing.ProtocolPrefix', `must be empty or a path like "/dbc" (got ${JSON.stringify(prefix)})`)
  }

  const { App: app } = config
  checkOneOf(app.LogLevel, LOG_LEVELS, 'App.LogLevel', report)
  checkOneOf(app.LogFormat, ['auto', 'pretty', 'json'], 'App.LogFormat', report)
  const outputs = app.LogOutput.split('+')
  const unknownOutput = outputs.find((output) => !LOG_OUTPUTS.includes(output))
  if (unknownOutput !== undefined) {
    report('App.LogOutput', `${JSON.stringify(unknownOutput)} is not one of stdout, stderr, file (join several with "+", e.g. "stderr+file")`)
  }
  const checkFiles = options.checkDatastore !== false
  if (outputs.includes('file')) {
    if (app.LogFile === '') report('App.LogFile', 'must be set when App.LogOutput contains "file"')
    else if (checkFiles) await checkLogFile(app.LogFile, report)
  }
  if (app.PreSharedKey !== '' && !HEX_KEY.test(app.PreSharedKey)) {
    report('App.PreSharedKey', `must be empty or exactly 64 hex characters (got ${app.PreSharedKey.length} characters; "aicn psk" makes one)`)
  }
  if (app.TopicName === '') report('App.TopicName', 'must not be empty (the Go network uses "DeepBrainChain")')
  if (app.Datastore === '') report('App.Datastore', 'must not be empty (a directory for the node\'s databases)')
  else if (checkFiles) await checkDatastoreDir(app.Datastore, report)
  checkDuration(app.AutoUpgrade.TimeInterval, 'App.AutoUpgrade.TimeInterval', 'positive', report)
  checkDuration(app.PeersCollect.HeartbeatInterval, 'App.PeersCollect.HeartbeatInterval', 'positive', report)
  checkDuration(app.PeersCollect.BusyInterval, 'App.PeersCollect.BusyInterval', 'positive', report)

  checkOneOf(config.Wire.Mode, ['aicn', 'go'], 'Wire.Mode', report)
  const gateway = config.Gateway
  checkOneOf(gateway.RequireKeys, ['auto', 'always', 'never'], 'Gateway.RequireKeys', report)
  gateway.Projects.forEach((project, i) => { if (project === '' || project.length > 256) report(`Gateway.Projects[${i}]`, 'must be a project name of 1 to 256 characters') })
  const prices = [{ path: 'Gateway.DefaultPrice', price: gateway.DefaultPrice }, ...gateway.Prices.map((price, i) => ({ path: `Gateway.Prices[${i}]`, price }))]
  for (const { path, price } of prices) {
    if (price.InputPerMillionUsd < 0) report(`${path}.InputPerMillionUsd`, 'must not be negative')
    if (price.OutputPerMillionUsd < 0) report(`${path}.OutputPerMillionUsd`, 'must not be negative')
  }
  gateway.Prices.forEach((price, i) => { if (price.Model === '') report(`Gateway.Prices[${i}].Model`, 'must name a model ("model" or "project/model")') })

  for (const [kind, value] of Object.entries(config.Jobs.Timeouts)) checkDuration(value, `Jobs.Timeouts.${kind}`, 'positive', report, MAX_JOB_MS)
  config.Jobs.IpfsNodes.forEach((entry, i) => { checkIpfsNodeEntry(entry, `Jobs.IpfsNodes[${i}]`, report) })
  const jobs = config.Jobs
  checkRange(jobs.PeerStreams, 'Jobs.PeerStreams', 1, 65_536, report)
  checkRange(jobs.NodeStreams, 'Jobs.NodeStreams', Math.max(1, jobs.PeerStreams), 1_048_576, report)
  // A job frame is up to 1 MiB (src/protocols/job/job-protocol.ts, maxFrameBytes): a peer must be able to hold two.
  checkRange(jobs.PeerHeldBytes, 'Jobs.PeerHeldBytes', 2 * 1024 * 1024, 2 ** 32, report)
  checkRange(jobs.NodeHeldBytes, 'Jobs.NodeHeldBytes', Math.max(2 * 1024 * 1024, jobs.PeerHeldBytes), 2 ** 40, report)
  checkRange(jobs.PeerJobRate, 'Jobs.PeerJobRate', 1, 1_000_000, report)
  checkRange(jobs.PeerJobBurst, 'Jobs.PeerJobBurst', Math.max(1, jobs.PeerJobRate), 10_000_000, report)

  config.AIProjects.forEach((project, i) => checkProject(project, `AIProjects[${i}]`, report))

  if (problems.length > 0) throw new ConfigError(problems.join('\n'))
}

type Report = (path: string, message: string) => void

function checkOneOf (value: string, allowed: string[], path: string, report: Report): void {
  if (allowed.includes(value)) return
  const choices = allowed.map((choice) => JSON.stringify(choice))
  const list = choices.length === 2 ? choices.join(' or ') : `one of ${choices.join(', ')}`
  report(path, `must be ${list} (got ${JSON.stringify(value)})`)
}

function checkDuration (value: string, path: string, range: 'positive' | 'non-negative', report: Report, maxMs = Infinity): void {
  let ms: number
  try {
    ms = parseDuration(value)
  } catch {
    report(path, `invalid duration ${JSON.stringify(value)} (a number with a unit: "20s", "1m30s", "1h")`)
    return
  }
  if (ms < 0) report(path, 'must not be negative')
  else if (ms === 0 && range === 'positive') report(path, 'must be greater than zero')
  else if (ms > maxMs) report(path, `must be at most ${formatMs(maxMs)}`)
}

/** An integer from `min` to `max`; the message names the range (and, for a lower bound taken from another
 * key, the value it came from). */
function checkRange (value: number, path: string, min: number, max: number, report: Report): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) report(path, `must be an integer from ${min} to ${max} (got ${value})`)
}

function formatMs (ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`
}

/** A multiaddr; with `withPeer`, one that ends in /p2p/<peer id> so that we know whom we dial. */
function checkMultiaddr (text: string, path: string, withPeer: boolean, report: Report): void {
  let components: Component[]
  try {
    if (text === '') throw new Error('empty string')
    components = multiaddr(text).getComponents()
  } catch (err) {
    report(path, `${JSON.stringify(text)} is not a multiaddr (${(err as Error).message})`)
    return
  }
  if (!withPeer) return
  const last = components.at(-1)
  if (last?.name !== 'p2p' || last.value === undefined) {
    report(path, `${JSON.stringify(text)} must end with /p2p/<peer id>`)
    return
  }
  try {
    peerIdFromString(last.value)
  } catch {
    report(path, `${JSON.stringify(text)} has an invalid peer id ${JSON.stringify(last.value)}`)
  }
}

/** `host:port`, `[ipv6]:port` or `:port` (all interfaces), as Go's net.Listen accepts. */
export function parseHostPort (addr: string): { host: string, port: number } {
  const match = /^(?:\[([0-9A-Za-z:.%]+)\]|([^:[\]\s/]*)):(\d{1,5})$/.exec(addr)
  const port = Number(match?.[3])
  if (match == null || port > 65535) throw new Error(`${JSON.stringify(addr)} is not host:port`)
  return { host: match[1] ?? match[2], port }
}

/** An IPFS node the operator allows image/gen to upload to: an http(s) URL such as http://10.0.0.5:5001. */
function checkIpfsNodeEntry (entry: string, path: string, report: Report): void {
  let url: URL
  try {
    url = new URL(entry)
  } catch {
    report(path, `${JSON.stringify(entry)} is not a URL such as "http://10.0.0.5:5001"`)
    return
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') report(path, `must use http or https (got ${JSON.stringify(url.protocol)})`)
  else if (url.username !== '' || url.password !== '') report(path, 'must not contain a user name or password')
}

function checkApiAddr (addr: string, path: string, report: Report): void {
  try {
    parseHostPort(addr)
  } catch {
    report(path, `must be host:port, e.g. "127.0.0.1:6000" (got ${JSON.stringify(addr)})`)
  }
}

/** `*`, or a web origin: scheme, host and optional port, nothing else (as browsers send it). */
function checkOrigin (origin: string, path: string, report: Report): void {
  if (origin === '*') return
  const parsed = URL.canParse(origin) ? new URL(origin) : undefined
  if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.origin !== origin) {
    report(path, `must be "*" or an origin such as "https://app.example.com" or "http://localhost:3000" (got ${JSON.stringify(origin)})`)
  }
}

function checkIdentity (identity: Config['Identity'], report: Report): void {
  if (identity.PrivKey === '') {
    report('Identity.PrivKey', 'must not be empty (run "aicn init" for a new identity)')
    if (identity.PeerID === '') report('Identity.PeerID', 'must not be empty')
    return
  }
  let expected: string
  try {
    if (!STRICT_BASE64.test(identity.PrivKey)) throw new Error('not standard base64 with padding')
    expected = peerIdFromPrivateKey(privateKeyFromProtobuf(Buffer.from(identity.PrivKey, 'base64'))).toString()
  } catch (err) {
    report('Identity.PrivKey', `is not a base64-encoded libp2p private key (${(err as Error).message})`)
    return
  }
  if (identity.PeerID === '') report('Identity.PeerID', `must not be empty (expected ${expected})`)
  else if (identity.PeerID !== expected) report('Identity.PeerID', `does not match Identity.PrivKey (expected ${expected})`)
}

function checkProject (project: AIProjectConfig, path: string, report: Report): void {
  if (project.Project === '') report(`${path}.Project`, 'must not be empty')
  project.Models.forEach((model, i) => {
    const modelPath = `${path}.Models[${i}]`
    if (model.Model === '') report(`${modelPath}.Model`, 'must not be empty')
    if (model.Type < 0) report(`${modelPath}.Type`, 'must not be negative')
    if (model.API === '') {
      report(`${modelPath}.API`, 'must not be empty')
      return
    }
    const protocol = URL.canParse(model.API) ? new URL(model.API).protocol : ''
    if (protocol !== 'http:' && protocol !== 'https:') {
      report(`${modelPath}.API`, `must be an http:// or https:// URL (got ${JSON.stringify(model.API)})`)
    }
  })
}

async function checkDatastoreDir (dir: string, report: Report): Promise<void> {
  const info = await statOrUndefined(dir)
  if (info === undefined) report('App.Datastore', `directory ${dir} does not exist (create it, or run "aicn init")`)
  else if (!info.isDirectory()) report('App.Datastore', `${dir} is not a directory`)
}

async function checkLogFile (file: string, report: Report): Promise<void> {
  // A missing file (and folder) is created by the logger; a directory in its place never works.
  const info = await statOrUndefined(file)
  if (info?.isDirectory() === true) report('App.LogFile', `${file} is a directory, not a file`)
}

async function statOrUndefined (path: string): Promise<Stats | undefined> {
  try {
    return await stat(path)
  } catch {
    return undefined
  }
}
