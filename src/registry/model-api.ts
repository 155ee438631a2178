// Checks that a registered model API URL points at this machine (reference §9.4.3, finding S9).
// A node forwards network requests to the registered URL, so an API on another host would turn the
// node into a proxy into the owner's network (SSRF). Unlike the original check, host names are allowed
// when they resolve to this machine — including Docker/Podman container names, whose addresses sit in
// the subnet of a local bridge interface rather than on an interface of their own.

import { promises as dns } from 'node:dns'
import { BlockList, isIP } from 'node:net'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import { AicnError, ErrorCode } from '../errors.ts'

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

// Interfaces that container runtimes create; containers get addresses inside their subnets.
const BRIDGE_INTERFACE = /^(docker0$|br-|podman|cni)/

function paramError (message: string): AicnError {
  return new AicnError(ErrorCode.PARAM, message)
}

function family (address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4'
}

/** Builds the set of addresses that count as "this machine": loopback, every interface address, and
 * the subnets of container bridges. BlockList compares parsed addresses, so spelling differences
 * (`::1` vs `0:0:0:0:0:0:0:1`, IPv4-mapped IPv6) do not matter. */
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

/** Validates a model API URL and returns it parsed. Throws AicnError(PARAM) with a message that says
 * what is wrong; the caller answers 400 with it. */
export async function checkModelApi (api: string, sources: LocalAddressSource = systemAddressSource): Promise<URL> {
  let url: URL
  try {
    url = new URL(api)
  } catch {
    throw paramError(`model api ${JSON.stringify(api)} is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw paramError(`model api must use http or https, not ${JSON.stringify(url.protocol)}`)
  }
  if (url.username !== '' || url.password !== '') {
    // Credentials would be stored in the config and shown by registry queries.
    throw paramError('model api must not contain a user name or password')
  }

  // WHATWG URL has already lower-cased the host and normalised IP literals (e.g. 2130706433 → 127.0.0.1).
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const name = host.replace(/\.$/, '')
  if (name === 'localhost' || name.endsWith('.localhost')) return url

  if (isIP(host) !== 0) {
    // A container's address is accepted as a literal too: refusing it would protect nothing, since a
    // wildcard DNS name (e.g. 172-17-0-5.nip.io) resolving to it passes the host-name rule below.
    const { own, bridged } = localAddresses(sources)
    if (own.check(host, family(host)) || bridged.check(host, family(host))) return url
    const hint = host === '0.0.0.0' || host === '::' ? ' (use 127.0.0.1 or localhost to reach a server listening on all addresses)' : ''
    throw paramError(`model api host ${host} is not an address of this machine${hint}`)
  }

  let resolved: string[]
  try {
    resolved = await lookupWithTimeout(host, sources)
  } catch (err) {
    const why = err instanceof Error ? `: ${err.message}` : ''
    throw paramError(`model api host ${JSON.stringify(host)} does not resolve${why}`)
  }
  const { own, bridged } = localAddresses(sources)
  const local = resolved.some((address) => {
    if (isIP(address) === 0) return false
    const type = family(address)
    return own.check(address, type) || bridged.check(address, type)
  })
  if (!local) {
    throw paramError(`model api host ${JSON.stringify(host)} does not resolve to this machine (it resolves to ${resolved.join(', ') || 'nothing'})`)
  }
  return url
}
