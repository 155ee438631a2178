import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { NetworkInterfaceInfo } from 'node:os'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { checkModelApi, type LocalAddressSource } from '../../../src/registry/model-api.ts'

function iface (address: string, cidr: string): NetworkInterfaceInfo {
  const v6 = address.includes(':')
  return v6
    ? { address, cidr, family: 'IPv6', netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', internal: false, scopeid: 0 }
    : { address, cidr, family: 'IPv4', netmask: '255.255.0.0', mac: '00:00:00:00:00:00', internal: false }
}

const machine: NodeJS.Dict<NetworkInterfaceInfo[]> = {
  lo: [iface('127.0.0.1', '127.0.0.1/8'), iface('::1', '::1/128')],
  eth0: [iface('192.168.1.10', '192.168.1.10/24'), iface('fd00::2', 'fd00::2/64'), iface('fe80::1', 'fe80::1/64')],
  docker0: [iface('172.17.0.1', '172.17.0.1/16')],
  'br-3f2a9c': [iface('172.18.0.1', '172.18.0.1/16')],
  podman0: [iface('10.88.0.1', '10.88.0.1/16')],
  cni0: [iface('10.22.0.1', '10.22.0.1/24')],
  // Not a container bridge: addresses in its subnet are other machines.
  wg0: [iface('10.50.0.1', '10.50.0.1/16')]
}

const dnsTable: Record<string, string[]> = {
  'model-server': ['172.17.0.2'], // a container on the default Docker bridge
  'compose-svc': ['172.18.0.7'], // a docker compose network
  'podman-svc': ['10.88.0.4'],
  'k8s-pod': ['10.22.0.9'],
  'my-host': ['192.168.1.10'], // this machine's own name
  'debian-host': ['127.0.1.1'],
  'dual-stack': ['8.8.8.8', '::1'], // one local address is enough
  'gpu-box': ['192.168.1.77'], // another machine on the LAN
  'vpn-peer': ['10.50.0.9'],
  'empty-answer': []
}

function sources (overrides: Partial<LocalAddressSource> = {}): LocalAddressSource {
  return {
    interfaces: () => machine,
    lookup: async (host) => {
      const found = dnsTable[host]
      if (found === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
      return found
    },
    ...overrides
  }
}

async function accepts (api: string, src = sources()): Promise<void> {
  const url = await checkModelApi(api, src)
  assert.ok(url instanceof URL, api)
}

async function rejects (api: string, message: string | RegExp, src = sources()): Promise<void> {
  await assert.rejects(checkModelApi(api, src), (err: unknown) => {
    assert.ok(err instanceof AicnError, `${api}: not an AicnError`)
    assert.equal(err.code, ErrorCode.PARAM)
    assert.equal(err.status, 400)
    if (typeof message === 'string') assert.equal(err.message, message)
    else assert.match(err.message, message)
    return true
  }, api)
}

describe('checkModelApi', () => {
  it('rejects what is not a URL', async () => {
    await rejects('x', 'model api "x" is not a URL')
    await rejects('', 'model api "" is not a URL')
    await rejects('http://', 'model api "http://" is not a URL')
    await rejects('http://[::1', 'model api "http://[::1" is not a URL')
  })

  it('accepts only http and https', async () => {
    await rejects('ftp://localhost/model', 'model api must use http or https, not "ftp:"')
    await rejects('file:///etc/passwd', 'model api must use http or https, not "file:"')
    await rejects('ws://localhost:8000/', 'model api must use http or https, not "ws:"')
    // A forgotten scheme parses as a scheme named after the host: still a clear message.
    await rejects('localhost:8000/v1/chat', 'model api must use http or https, not "localhost:"')
    await accepts('https://localhost/v1/chat/completions')
    await accepts('HTTP://localhost/v1/chat/completions')
  })

  it('rejects credentials in the URL', async () => {
    await rejects('http://user:secret@localhost:8000/v1', /must not contain a user name or password/)
    await rejects('http://user@localhost:8000/v1', /must not contain a user name or password/)
  })

  it('accepts localhost and *.localhost without asking DNS', async () => {
    const noDns = sources({ lookup: async () => { throw new Error('DNS must not be asked') } })
    for (const api of ['http://localhost:8000/x', 'http://LOCALHOST/x', 'http://localhost./x', 'http://model.localhost:9000/v1']) {
      await accepts(api, noDns)
    }
  })

  it('accepts loopback IP literals in any spelling', async () => {
    for (const api of ['http://127.0.0.1:8000/v1', 'http://127.1.2.3/', 'http://2130706433/', 'http://[::1]:8000/',
      'http://[0:0:0:0:0:0:0:1]/', 'http://[::ffff:127.0.0.1]/']) {
      await accepts(api)
    }
  })

  it('accepts addresses of local interfaces and of local containers', async () => {
    for (const api of ['http://192.168.1.10:8000/', 'http://[fd00::2]:8000/', 'http://[FD00:0:0:0:0:0:0:2]/', 'http://172.17.0.5:8000/']) {
      await accepts(api)
    }
  })

  it('rejects IP literals of other machines', async () => {
    await rejects('http://10.1.2.3:8000/v1', 'model api host 10.1.2.3 is not an address of this machine')
    await rejects('http://[2001:db8::1]/', 'model api host 2001:db8::1 is not an address of this machine')
    await rejects('http://192.168.1.77/', 'model api host 192.168.1.77 is not an address of this machine')
    await rejects('http://10.50.0.9/', 'model api host 10.50.0.9 is not an address of this machine') // not a bridge
    await rejects('http://0.0.0.0:8000/', /^model api host 0\.0\.0\.0 is not an address of this machine \(use 127\.0\.0\.1/)
  })

  it('accepts host names that resolve to this machine, including container names', async () => {
    for (const host of ['model-server', 'compose-svc', 'podman-svc', 'k8s-pod', 'my-host', 'debian-host', 'dual-stack']) {
      await accepts(`http://${host}:8000/v1/chat/completions`)
    }
  })

  it('rejects host names that resolve elsewhere or not at all', async () => {
    await rejects('http://gpu-box:8000/v1', /^model api host "gpu-box" does not resolve to this machine/)
    await rejects('http://vpn-peer/', /^model api host "vpn-peer" does not resolve to this machine/)
    await rejects('http://empty-answer/', /^model api host "empty-answer" does not resolve to this machine/)
    await rejects('http://no-such-host:8000/', /^model api host "no-such-host" does not resolve: getaddrinfo ENOTFOUND/)
  })

  it('gives up on a lookup that takes too long', async () => {
    const hanging = sources({ lookup: async () => await new Promise<string[]>(() => {}), lookupTimeoutMs: 50 })
    // The lookup never settles: the rejection naming the 50 ms bound is the proof that the bound held.
    await rejects('http://slow-dns:8000/', /^model api host "slow-dns" does not resolve: timed out after 50 ms/, hanging)
  })

  it('still knows loopback when interfaces cannot be listed', async () => {
    const broken = sources({ interfaces: () => { throw new Error('uv_interface_addresses failed') } })
    await accepts('http://127.0.0.1:8000/', broken)
    await accepts('http://debian-host/', broken)
    await rejects('http://192.168.1.10/', 'model api host 192.168.1.10 is not an address of this machine', broken)
  })

  it('returns the parsed URL', async () => {
    const url = await checkModelApi('http://127.0.0.1:8000/v1/chat/completions?x=1', sources())
    assert.equal(url.port, '8000')
    assert.equal(url.pathname, '/v1/chat/completions')
    assert.equal(url.search, '?x=1')
  })

  it('works with the real machine sources', async () => {
    assert.equal((await checkModelApi('http://127.0.0.1:1/v1/chat/completions')).port, '1')
    assert.equal((await checkModelApi('http://localhost:8000/x')).hostname, 'localhost')
    await assert.rejects(checkModelApi('http://198.51.100.7/x'), { message: 'model api host 198.51.100.7 is not an address of this machine' })
  })
})
