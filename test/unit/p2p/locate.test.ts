// Looking up a node we have no address for (src/p2p/locate.ts): the lookup has its own deadline and
// answers 404 (code 1005) when the network does not know the node, 504 (code 1004) when the request's
// own timeout ends first. The host is a stub whose DHT lookup fails at once or hangs until aborted.
import { before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { ErrorCode } from '../../../src/core/errors.ts'
import { locatePeer } from '../../../src/p2p/locate.ts'

type Lookup = (signal: AbortSignal) => Promise<void>

/** Waits until aborted, as a DHT query to peers that never answer does. (The ref'd timer stands for the
 * sockets such a query holds open: AbortSignal.timeout's own timer does not keep the process alive.) */
const hangs: Lookup = async (signal) => await new Promise<void>((_resolve, reject) => {
  if (signal.aborted) { reject(signal.reason); return }
  const alive = setTimeout(() => {}, 120_000)
  signal.addEventListener('abort', () => { clearTimeout(alive); reject(signal.reason) }, { once: true })
})

function stubHost (options: { connected?: boolean, addresses?: number, lookup?: Lookup } = {}): { host: Parameters<typeof locatePeer>[0], lookups: () => number } {
  let lookups = 0
  const host = {
    getConnections: () => options.connected === true ? [{}] : [],
    peerStore: { get: async () => ({ addresses: Array.from({ length: options.addresses ?? 0 }) }) },
    peerRouting: {
      findPeer: async (_peer: PeerId, call: { signal: AbortSignal }) => {
        lookups++
        await (options.lookup ?? (async () => { throw new Error('not found') }))(call.signal)
        return { id: _peer, multiaddrs: [] }
      }
    }
  }
  return { host: host as unknown as Parameters<typeof locatePeer>[0], lookups: () => lookups }
}

describe('locatePeer', () => {
  let peer: PeerId
  before(async () => { peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')) })
  const signal = (): AbortSignal => new AbortController().signal

  it('does not look up a connected node or one with known addresses', async () => {
    for (const stub of [stubHost({ connected: true }), stubHost({ addresses: 1 })]) {
      await locatePeer(stub.host, peer, { signal: signal() })
      assert.equal(stub.lookups(), 0)
    }
  })

  it('a node the network does not know: 404, code 1005', async () => {
    const { host } = stubHost()
    await assert.rejects(locatePeer(host, peer, { signal: signal() }), { code: ErrorCode.ROUTING, status: 404, message: `node ${peer.toString()} was not found in the network` })
  })

  it('a lookup that hangs ends at the lookup deadline with 404', async () => {
    const { host } = stubHost({ lookup: hangs })
    await assert.rejects(locatePeer(host, peer, { signal: signal(), lookupTimeoutMs: 50, deadline: Date.now() + 60_000 }), { code: ErrorCode.ROUTING, status: 404 })
  })

  it('a lookup that hangs ends at the request\'s shorter deadline with 504, code 1004', async () => {
    const { host } = stubHost({ lookup: hangs })
    await assert.rejects(locatePeer(host, peer, { signal: signal(), lookupTimeoutMs: 60_000, deadline: Date.now() + 50 }), { code: ErrorCode.TIMEOUT, status: 504 })
  })

  it('a deadline already past: 504 without a lookup', async () => {
    const stub = stubHost({ lookup: hangs })
    await assert.rejects(locatePeer(stub.host, peer, { signal: signal(), deadline: Date.now() - 1 }), { code: ErrorCode.TIMEOUT })
    assert.equal(stub.lookups(), 0)
  })

  it('the caller going away ends the lookup', async () => {
    const { host } = stubHost({ lookup: hangs })
    const controller = new AbortController()
    const located = locatePeer(host, peer, { signal: controller.signal, lookupTimeoutMs: 60_000 })
    controller.abort()
    await assert.rejects(located, { code: ErrorCode.STREAM, message: 'cancelled' })
  })
})
