// What a model's api may reach (src/models/model-target.ts): never the node's own listeners, never
// link-local or metadata addresses, both at registration (checkModelApi) and at every connection the model
// client opens (src/models/client.ts). DNS is a stub here: no test sends anything beyond 127.0.0.1.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { NetworkInterfaceInfo } from 'node:os'
import { once } from 'node:events'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { WholeBody } from '../../../src/core/iterables.ts'
import { ModelClient } from '../../../src/models/client.ts'
import { checkModelApi } from '../../../src/registry/model-api.ts'
import { ModelTargets, isForbiddenAddress, type LocalAddressSource } from '../../../src/models/model-target.ts'

const API_PORT = 6000
const LIBP2P_PORT = 4001

function iface (address: string, cidr: string): NetworkInterfaceInfo {
  return address.includes(':')
    ? { address, cidr, family: 'IPv6', netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', internal: false, scopeid: 0 }
    : { address, cidr, family: 'IPv4', netmask: '255.255.0.0', mac: '00:00:00:00:00:00', internal: false }
}

// A cloud VM: its own link-local addresses are interface addresses too, and must still be refused.
const machine: NodeJS.Dict<NetworkInterfaceInfo[]> = {
  lo: [iface('127.0.0.1', '127.0.0.1/8'), iface('::1', '::1/128')],
  eth0: [iface('10.0.0.4', '10.0.0.4/24'), iface('169.254.10.1', '169.254.10.1/16'), iface('fe80::1', 'fe80::1/64')],
  docker0: [iface('172.17.0.1', '172.17.0.1/16')]
}

function sources (dns: Record<string, string[]> = {}): LocalAddressSource {
  return {
    interfaces: () => machine,
    lookup: async (host) => {
      const found = dns[host]
      if (found === undefined) throw new Error(`getaddrinfo ENOTFOUND ${host}`)
      return found
    }
  }
}

const listeners = (): string[] => [`127.0.0.1:${API_PORT}`, `0.0.0.0:${LIBP2P_PORT}`]

async function refused (api: string, message: RegExp, src = sources()): Promise<void> {
  await assert.rejects(checkModelApi(api, src, listeners), (err: unknown) => {
    assert.ok(err instanceof AicnError, api)
    assert.equal(err.code, ErrorCode.PARAM, api)
    assert.equal(err.status, 400)
    assert.match(err.message, message, api)
    return true
  })
}

describe('model targets at registration', () => {
  it('refuses the node\'s own API and libp2p ports on every spelling of this machine', async () => {
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', 'api.localhost', '[::1]', '[0:0:0:0:0:0:0:1]', '[::ffff:127.0.0.1]', '2130706433', '10.0.0.4', '172.17.0.1']) {
      await refused(`http://${host}:${API_PORT}/api/v0/keys/create`, /on port 6000 is this node's own listener/)
      await refused(`http://${host}:${LIBP2P_PORT}/`, /on port 4001 is this node's own listener/)
    }
    await refused(`http://0.0.0.0:${API_PORT}/api/v0/keys/create`, /0\.0\.0\.0 is not an address of this machine/)
    await refused(`http://[::]:${API_PORT}/`, /:: is not an address of this machine/)
  })

  it('refuses a host name that resolves to the node\'s own listener', async () => {
    await refused(`http://my-host:${API_PORT}/`, /"my-host" on port 6000 is this node's own listener/, sources({ 'my-host': ['10.0.0.4'] }))
  })

  it('counts the default ports of http and https', async () => {
    const own = (): string[] => ['0.0.0.0:80', '[::]:443']
    await assert.rejects(checkModelApi('http://127.0.0.1/v1', sources(), own), /own listener/)
    await assert.rejects(checkModelApi('https://localhost/v1', sources(), own), /own listener/)
    assert.ok(await checkModelApi('http://127.0.0.1:8000/v1', sources(), own))
  })

  it('refuses link-local and cloud-metadata addresses, even when an interface carries one', async () => {
    for (const host of ['169.254.169.254', '169.254.10.1', '[::ffff:169.254.169.254]', '[::ffff:a9fe:a9fe]', '[fe80::1]', '[fe80::abcd]', '[fd00:ec2::254]', '100.100.100.200']) {
      await refused(`http://${host}/latest/meta-data/`, /is a link-local or cloud-metadata address/)
    }
    await refused('http://metadata:80/', /resolves to 169\.254\.169\.254, which is a link-local or cloud-metadata address/, sources({ metadata: ['169.254.169.254'] }))
  })

  it('still accepts model servers on this machine and in its containers, on their own ports', async () => {
    const dns = { 'model-server': ['172.17.0.2'], mixed: ['169.254.169.254', '127.0.0.1'] }
    for (const api of ['http://127.0.0.1:8000/v1', 'http://localhost:11434/v1', 'http://[::1]:8000/', 'http://10.0.0.4:8000/', 'http://model-server:8000/', 'http://mixed:8000/']) {
      assert.ok(await checkModelApi(api, sources(dns), listeners), api)
    }
    // A container is another network namespace: its port 6000 is not ours.
    assert.ok(await checkModelApi(`http://172.17.0.2:${API_PORT}/`, sources(), listeners))
  })

  it('knows the forbidden ranges', () => {
    assert.equal(isForbiddenAddress('169.254.169.254'), true)
    assert.equal(isForbiddenAddress('fe80::1'), true)
    assert.equal(isForbiddenAddress('127.0.0.1'), false)
    assert.equal(isForbiddenAddress('not an address'), false)
  })

  it('gives only the allowed addresses of a name to connect to', async () => {
    const targets = new ModelTargets(sources({ mixed: ['169.254.169.254', '127.0.0.1', '8.8.8.8'] }), listeners)
    assert.deepEqual(await targets.addresses('mixed', 8000), ['127.0.0.1'])
    assert.deepEqual(await targets.addresses('[::1]', 8000), ['::1'])
  })
})

describe('model targets at call time (the model client)', () => {
  let server: Server
  let port: number
  let connections = 0
  const dns: Record<string, string[]> = {}
  let own: string[] = []
  let client: ModelClient

  before(async () => {
    server = createServer((req, res) => { req.resume(); req.on('end', () => { res.setHeader('content-type', 'application/json'); res.end('{"ok":true}') }) })
    server.on('connection', () => { connections++ })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    port = (server.address() as AddressInfo).port
    client = new ModelClient({ targets: new ModelTargets(sources(dns), () => own) })
  })
  after(async () => {
    await client.close()
    server.closeAllConnections()
    server.close()
  })

  const call = async (url: string): Promise<number> => {
    const answer = await client.call({ url, contentType: 'application/json', body: new WholeBody(Buffer.from('{}')), signal: new AbortController().signal, timeoutMs: 5_000 })
    for await (const _ of answer.body) { /* drain */ }
    return answer.status
  }

  const refusedAtCall = async (url: string, message: RegExp): Promise<void> => {
    await assert.rejects(call(url), (err: unknown) => {
      assert.ok(err instanceof AicnError, String(err))
      assert.equal(err.code, ErrorCode.MODEL)
      assert.equal(err.status, 502)
      assert.match(err.message, /^refused to call the model: /)
      assert.match(err.message, message)
      return true
    })
  }

  it('a name that passed registration and then re-resolves to a metadata address is not called', async () => {
    dns['model.test'] = ['127.0.0.1']
    const api = `http://model.test:${port}/v1/chat/completions`
    assert.ok(await checkModelApi(api, sources(dns), () => own))
    assert.equal(await call(api), 200)
    // The name moves (DNS rebinding); a fresh client has no connection to reuse, so it must look again.
    dns['model.test'] = ['169.254.169.254']
    const fresh = new ModelClient({ targets: new ModelTargets(sources(dns), () => own) })
    try {
      await assert.rejects(fresh.call({ url: api, contentType: 'application/json', body: new WholeBody(Buffer.from('{}')), signal: new AbortController().signal, timeoutMs: 5_000 }),
        /refused to call the model: .*169\.254\.169\.254, which is a link-local or cloud-metadata address/)
    } finally {
      await fresh.close()
    }
  })

  it('a model server whose port became one of the node\'s listeners is not called, before any connection', async () => {
    dns['own.test'] = ['127.0.0.1']
    own = [`127.0.0.1:${port}`]
    const before = connections
    try {
      await refusedAtCall(`http://own.test:${port}/api/v0/keys/create`, /own listener/)
      await refusedAtCall(`http://localhost:${port}/api/v0/keys/create`, /own listener/)
      assert.equal(connections, before, 'no connection was opened')
    } finally {
      own = []
    }
  })

  it('an IP literal is checked too (no DNS is involved)', async () => {
    await refusedAtCall('http://169.254.169.254/latest/meta-data/', /link-local or cloud-metadata/)
    await refusedAtCall('http://[fe80::1]:8000/', /link-local or cloud-metadata/)
    await refusedAtCall('http://192.0.2.1:8000/', /is not an address of this machine/)
  })

  it('keeps calling allowed model servers, by name, localhost and literal', async () => {
    dns['ok.test'] = ['169.254.169.254', '127.0.0.1']
    assert.equal(await call(`http://ok.test:${port}/v1`), 200)
    assert.equal(await call(`http://localhost:${port}/v1`), 200)
    assert.equal(await call(`http://127.0.0.1:${port}/v1`), 200)
  })
})
