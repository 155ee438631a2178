// keepBootstrapPeers redials the bootstrap peers that are not connected, and only those, every interval.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { keepBootstrapPeers } from '../../../src/p2p/reconnect.ts'
import { silentLogger } from '../../../src/core/logger.ts'

/** Lets the dials started by a timer callback run; setImmediate is not mocked. */
async function settle (): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
}

test('bootstrap peers that are not connected are dialled again each interval; connected ones are left alone', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] })
  const [a, b] = await Promise.all([1, 2].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
  const connected = new Set([a.toString()])
  const dials: string[] = []
  let failNext = true
  const host = {
    status: 'started',
    getConnections: (peer: typeof a) => connected.has(peer.toString()) ? [{}] : [],
    dial: async (addr: ReturnType<typeof multiaddr>) => {
      dials.push(addr.toString())
      if (failNext) { failNext = false; throw new Error('ECONNREFUSED') }
      connected.add(b.toString())
    }
  }
  const peers = [a, b].map((peerId, i) => ({ peerId, addr: multiaddr(`/ip4/127.0.0.1/tcp/${4001 + i}/p2p/${peerId.toString()}`) }))
  const stop = keepBootstrapPeers(host as any, peers, silentLogger, 50)
  try {
    t.mock.timers.tick(49)
    await settle()
    assert.deepEqual(dials, [], 'nothing before the first interval')
    t.mock.timers.tick(1)
    await settle()
    assert.deepEqual(dials, [peers[1].addr.toString()], 'only the disconnected peer, and the dial failed')
    t.mock.timers.tick(50)
    await settle()
    assert.deepEqual(dials, [peers[1].addr.toString(), peers[1].addr.toString()], 'tried again, and connected')
    t.mock.timers.tick(150)
    await settle()
    assert.equal(dials.length, 2, 'nothing more once every bootstrap peer is connected')
  } finally {
    stop()
  }
})
