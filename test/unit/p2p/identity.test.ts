import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateIdentity, identityFromBase64, readKeyFile, writeKeyFile } from '../../../src/p2p/identity.ts'
import { generatePskHex, swarmKeyFromHex } from '../../../src/p2p/psk.ts'

// The test vector from the Go node's README.
const VECTOR_PRIVKEY = 'CAISINAckM6QODvCrez5I0Q3RZyo9PeV4jDeB1L71AHnSU/H'
const VECTOR_PEER_ID = '16Uiu2HAmJnGqxBqtWGkymSsy5WDKJY5A5NctcUduENADDptQFF4Y'

test('the reference key decodes to the reference peer id', () => {
  const identity = identityFromBase64(VECTOR_PRIVKEY)
  assert.equal(identity.peerId, VECTOR_PEER_ID)
  assert.equal(identity.privKeyBase64, VECTOR_PRIVKEY)
  assert.ok(identity.pubKeyBase64.startsWith('CAISIQ'))
  assert.equal(Buffer.from(identity.pubKeyBase64, 'base64').length, 37)
})

test('fresh identities are secp256k1 and round-trip through base64', async () => {
  const identity = await generateIdentity()
  assert.match(identity.peerId, /^16Uiu2HA/)
  assert.ok(identity.privKeyBase64.startsWith('CAISI'))
  assert.equal(identityFromBase64(identity.privKeyBase64).peerId, identity.peerId)
})

test('bad private keys are rejected with a clear message', () => {
  assert.throws(() => identityFromBase64('not base64 at all!'), /base64/)
  assert.throws(() => identityFromBase64(Buffer.from('hello').toString('base64')), /private key/)
})

test('key files hold the raw 36-byte protobuf, mode 0600, and are never overwritten', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-keys-'))
  try {
    const file = join(dir, 'peer.key')
    const identity = identityFromBase64(VECTOR_PRIVKEY)
    await writeKeyFile(file, identity)
    const bytes = await readFile(file)
    assert.equal(bytes.length, 36)
    assert.deepEqual([...bytes.subarray(0, 4)], [0x08, 0x02, 0x12, 0x20])
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    assert.equal((await readKeyFile(file)).peerId, VECTOR_PEER_ID)
    await assert.rejects(writeKeyFile(file, await generateIdentity()), /EEXIST/)
    assert.equal((await readKeyFile(file)).peerId, VECTOR_PEER_ID)

    const garbage = join(dir, 'garbage.key')
    await writeFile(garbage, 'definitely not a key')
    await assert.rejects(readKeyFile(garbage), /garbage\.key is not a valid key file/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('pre-shared keys are 64 hex characters and become a swarm.key file', () => {
  const hex = generatePskHex()
  assert.match(hex, /^[0-9a-f]{64}$/)
  assert.notEqual(generatePskHex(), hex)
  const file = new TextDecoder().decode(swarmKeyFromHex(hex.toUpperCase()))
  assert.equal(file, `/key/swarm/psk/1.0.0/\n/base16/\n${hex}`)
  assert.throws(() => swarmKeyFromHex('abc'), /64 hex/)
  assert.throws(() => swarmKeyFromHex('g'.repeat(64)), /64 hex/)
})
