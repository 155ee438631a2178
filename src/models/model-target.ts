// Which addresses a model's `api` may reach (README.md, "Models and projects"). A node sends
// every job for a model to its `api`, so that URL must reach a model server on this machine and nothing
// else: not another host (the node would become a proxy into its owner's network), not a link-local or
// cloud-metadata address, and not one of the node's own listeners (a model at
// http://127.0.0.1:6000/api/v0/keys/create turned any requester's chat into an admin call).
//
// The same rules run twice: when a model is registered (registry/model-api.ts answers 400) and whenever
// the model client opens a connection (models/client.ts), because a host name can resolve elsewhere later.
// At call time the connection goes only to the addresses checked here, so there is no second lookup for
// a DNS answer to change in between.

import { promises as dns } from 'node:dns'
import { BlockList, isIP, type LookupFunction } from 'node:net'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import { AicnError, ErrorCode } from '../core/errors.ts'

export interface LocalAddressSource {
  interfaces: () => NodeJS.Dict<NetworkInterfaceInfo[]>
  lookup: (host: string) => Promise<string[]>
  /** How long a DNS lookup may take; 2 s unless set (tests shorten it). */
  lookupTimeoutMs?: number
}

const DEFAULT_LOOKUP_TIMEOUT_MS = 2_000

export const systemAddressSource: LocalAddressSource = {
  interfaces: networkInterfaces,
  lookup: async (host) => (await dns.lookup(host, { all: true })).map((a) => a.address)
}

/** `host:port` of each socket this node listens on (HTTP API, libp2p TCP); see src/node/node.ts and src/node/http-api.ts. */
export type OwnListeners = () => string[]

// Interfaces that container runtimes create; containers get addresses inside their subnets.
const BRIDGE_INTERFACE = /^(docker0$|br-|podman|cni)/

/** Never a model server, whatever the interfaces say: link-local (169.254.169.254 is the metadata service
 * of most clouds; some hosts carry a 169.254.x.y address themselves) and the other clouds' metadata
 * addresses. BlockList also matches IPv4-mapped IPv6 spellings (::ffff:169.254.169.254). */
const FORBIDDEN = new BlockList()
FORBIDDEN.addSubnet('169.254.0.0', 16, 'ipv4')
FORBIDDEN.addSubnet('fe80::', 10, 'ipv6')
FORBIDDEN.addAddress('fd00:ec2::254', 'ipv6') // AWS, over IPv6
FORBIDDEN.addAddress('100.100.100.200', 'ipv4') // Alibaba Cloud

function family (address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4'
}

function paramError (message: string): AicnError {
  return new AicnError(ErrorCode.PARAM, message)
}

export function isForbiddenAddress (address: string): boolean {
  return isIP(address) !== 0 && FORBIDDEN.check(address, family(address))
}

/** URL host names that always mean this machine's loopback, without asking DNS (RFC 6761). */
export function isLocalhostName (host: string): boolean {
  const name = host.replace(/\.$/, '')
  return name === 'localhost' || name.endsWith('.localhost')
}

/** The addresses that count as "this machine": loopback and every interface address (`own`), and the
 * subnets of container bridges (`bridged`; a container is another network namespace, so its ports are
 * not ours). BlockList compares parsed addresses, so spellings (`::1` vs `0:0:0:0:0:0:0:1`) do not matter. */
function localAddresses (sources: LocalAddressSource): { own: BlockList, bridged: BlockList } {
  const own = new BlockList()
  const bridged = new BlockList()
  own.addSubnet('127.0.0.0', 8, 'ipv4') // also matches IPv4-mapped ::ffff:127.x.y.z
  own.addAddress('::1', 'ipv6')
  let interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>
  try {
    interfaces = sources.interfaces()
  } catch {
    // Some sandboxes cannot list interfaces; loopback is still known to be ours.
    interfaces = {}
  }
  for (const [name, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) {
      // Link-local IPv6 addresses are per-interface (they need a zone id); a URL cannot carry one.
      const address = info.address.split('%')[0]
      if (isIP(address) === 0) continue
      own.addAddress(address, family(address))
      if (BRIDGE_INTERFACE.test(name) && info.cidr != null) {
        const [net, prefix] = info.cidr.split('/')
        const bits = Number(prefix)
        if (isIP(net) !== 0 && Number.isInteger(bits)) bridged.addSubnet(net, bits, family(net))
      }
    }
  }
  return { own, bridged }
}

/** The ports of our own listeners. Any address of this machine on such a port counts as ours: a socket
 * bound to 0.0.0.0 answers on all of them, and refusing a model server that happens to share a port on
 * another interface costs less than guessing wrong. */
function ownPorts (listeners: string[]): Set<number> {
  const ports = new Set<number>()
  for (const listener of listeners) {
    const port = Number(/:(\d{1,5})$/.exec(listener)?.[1])
    if (Number.isInteger(port) && port > 0) ports.add(port)
  }
  return ports
}

async function lookupWithTimeout (host: string, sources: LocalAddressSource): Promise<string[]> {
  const ms = sources.lookupTimeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS
  let timer: NodeJS.Timeout | undefined
  // dns.lookup cannot be cancelled; the race only stops us waiting for it.
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`timed out after ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([sources.lookup(host), timeout])
  } finally {
    clearTimeout(timer)
  }
}

export class ModelTargets {
  private readonly sources: LocalAddressSource
  private readonly ownListeners: OwnListeners

  constructor (sources: LocalAddressSource = systemAddressSource, ownListeners: OwnListeners = () => []) {
    this.sources = sources
    this.ownListeners = ownListeners
  }

  /** The addresses a connection to `host`:`port` may use (at least one); throws AicnError(PARAM) saying
   * why there is none. `host` is a URL's hostname (IPv6 literals may keep their brackets). */
  async addresses (host: string, port: number): Promise<string[]> {
    const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase()
    if (isIP(bare) !== 0) {
      const why = this.refusal(bare, port)
      if (why === undefined) return [bare]
      throw paramError(why === ownListenerText ? `model api host ${bare} on port ${port} ${why}` : `model api host ${bare} ${why}`)
    }
    if (isLocalhostName(bare)) {
      const loopback = ['127.0.0.1', '::1']
      if (this.refusal(loopback[0], port) !== undefined) throw paramError(`model api host ${bare} on port ${port} ${ownListenerText}`)
      return loopback
    }

    let resolved: string[]
    try {
      resolved = await lookupWithTimeout(bare, this.sources)
    } catch (err) {
      const why = err instanceof Error ? `: ${err.message}` : ''
      throw paramError(`model api host ${JSON.stringify(bare)} does not resolve${why}`)
    }
    const refusals = resolved.map((address) => ({ address, why: isIP(address) === 0 ? 'is not an IP address' : this.refusal(address, port) }))
    const allowed = refusals.filter((r) => r.why === undefined).map((r) => r.address)
    if (allowed.length > 0) return allowed
    if (refusals.some((r) => r.why === ownListenerText)) throw paramError(`model api host ${JSON.stringify(bare)} on port ${port} ${ownListenerText}`)
    if (refusals.some((r) => r.why === forbiddenText)) throw paramError(`model api host ${JSON.stringify(bare)} resolves to ${resolved.join(', ')}, which ${forbiddenText}`)
    throw paramError(`model api host ${JSON.stringify(bare)} does not resolve to this machine (it resolves to ${resolved.join(', ') || 'nothing'})`)
  }

  /** Why `address`:`port` may not be a model server, or undefined when it may. */
  private refusal (address: string, port: number): string | undefined {
    if (isForbiddenAddress(address)) return forbiddenText
    const type = family(address)
    const { own, bridged } = localAddresses(this.sources)
    if (own.check(address, type)) return ownPorts(this.ownListeners()).has(port) ? ownListenerText : undefined
    if (bridged.check(address, type)) return undefined
    const hint = address === '0.0.0.0' || address === '::' ? ' (use 127.0.0.1 or localhost to reach a server listening on all addresses)' : ''
    return `is not an address of this machine${hint}`
  }
}

const forbiddenText = 'is a link-local or cloud-metadata address, which no model api may use'
const ownListenerText = 'is this node\'s own listener (its HTTP API or libp2p port), not a model server'

/** The port a URL connects to (URL leaves the scheme's default out). */
export function portOf (url: URL): number {
  if (url.port !== '') return Number(url.port)
  return url.protocol === 'https:' ? 443 : 80
}

/** A DNS lookup that answers with addresses ModelTargets checked, so that a connection cannot go
 * anywhere else (net.connect and http.request ask for one address or, with autoSelectFamily, for all). */
export function pinnedLookup (addresses: string[]): LookupFunction {
  return (_hostname, options, callback) => {
    process.nextTick(() => {
      if (options.all === true) callback(null, addresses.map((address) => ({ address, family: isIP(address) })))
      else callback(null, addresses[0], isIP(addresses[0]))
    })
  }
}
