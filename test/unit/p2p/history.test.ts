import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { ConnectionHistory, MAX_AGE_SECONDS, MAX_FAILURES } from '../../../src/p2p/history.ts'
import { dialableAddress } from '../../../src/p2p/reconnect.ts'
import { silentLogger } from '../../../src/core/logger.ts'

const PEER = '16Uiu2HAmJnGqxBqtWGkymSsy5WDKJY5A5NctcUduENADDptQFF4Y'

async function withHistory (run: (history: ConnectionHistory, path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-history-'))
  const history = new ConnectionHistory(join(dir, 'conns.db'), silentLogger)
  await history.open()
  try {
    await run(history, join(dir, 'conns.db'))
  } finally {
    await history.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
}

test('dialable addresses drop the peer id, circuits and unspecified hosts', () => {
  assert.equal(dialableAddress(multiaddr(`/ip4/127.0.0.1/tcp/4001/p2p/${PEER}`)), '/ip4/127.0.0.1/tcp/4001')
  assert.equal(dialableAddress(multiaddr('/ip4/0.0.0.0/tcp/4001')), undefined)
  assert.equal(dialableAddress(multiaddr('/ip6/::/tcp/4001')), undefined)
  assert.equal(dialableAddress(multiaddr(`/ip4/1.2.3.4/tcp/1/p2p/${PEER}/p2p-circuit`)), undefined)
})

test('a connection is recorded and survives reopening the database', async () => {
  await withHistory(async (history, path) => {
    await history.connected(PEER, ['/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/1', '/ip4/10.0.0.1/tcp/2'], 1_700_000_000_000)
    await history.close()
    const reopened = new ConnectionHistory(path, silentLogger)
    await reopened.open()
    assert.deepEqual(await reopened.get(PEER), { Addresses: ['/ip4/127.0.0.1/tcp/1', '/ip4/10.0.0.1/tcp/2'], LastConnectTime: 1_700_000_000, ConsecutiveFailures: 0 })
    await reopened.close()
  })
})

test('a connection without addresses keeps the known ones, and never creates an empty record', async () => {
  await withHistory(async (history) => {
    await history.connected(PEER, [])
    assert.equal(await history.get(PEER), undefined)
    await history.connected(PEER, ['/ip4/127.0.0.1/tcp/1'])
    await history.connected(PEER, [])
    assert.deepEqual((await history.get(PEER))?.Addresses, ['/ip4/127.0.0.1/tcp/1'])
  })
})

test('failures are counted; an old peer is forgotten after too many, a recent one is kept', async () => {
  await withHistory(async (history) => {
    const now = Date.now()
    await history.connected(PEER, ['/ip4/127.0.0.1/tcp/1'], now)
    for (let i = 0; i < MAX_FAILURES + 2; i++) assert.equal(await history.failed(PEER, now), 'kept')
    assert.equal((await history.get(PEER))?.ConsecutiveFailures, MAX_FAILURES)

    const longAgo = now - (MAX_AGE_SECONDS + 60) * 1000
    await history.connected(PEER, ['/ip4/127.0.0.1/tcp/1'], longAgo)
    for (let i = 0; i < MAX_FAILURES - 1; i++) assert.equal(await history.failed(PEER, now), 'kept')
    assert.equal(await history.failed(PEER, now), 'forgotten')
    assert.equal(await history.get(PEER), undefined)
    assert.equal(await history.failed(PEER, now), 'forgotten')
  })
})

test('a successful connection resets the failure count', async () => {
  await withHistory(async (history) => {
    await history.connected(PEER, ['/ip4/127.0.0.1/tcp/1'])
    await history.failed(PEER)
    await history.connected(PEER, [])
    assert.equal((await history.get(PEER))?.ConsecutiveFailures, 0)
  })
})
