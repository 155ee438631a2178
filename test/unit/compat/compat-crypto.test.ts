// The Go node's body encryption, checked against an independent implementation of the same construction:
// node:crypto's ECDH (OpenSSL; computeSecret returns the shared X coordinate) and AES-256-GCM, while
// src/compat/crypto.ts uses @noble/curves for the ECDH.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, createDecipheriv, createECDH, randomBytes } from 'node:crypto'
import { generateKeyPair, privateKeyFromRaw, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { decryptBody, encryptBody } from '../../../src/compat/crypto.ts'

const encoder = new TextEncoder()

/** node:crypto's version of the Go node's construction: wire = nonce(12) ‖ ciphertext ‖ tag(16). */
function nodeShared (own: PrivateKey, peerPoint: Uint8Array): Buffer {
  const ecdh = createECDH('secp256k1')
  ecdh.setPrivateKey(own.raw)
  return ecdh.computeSecret(peerPoint)
}

function nodeEncrypt (own: PrivateKey, peerPoint: Uint8Array, plaintext: Uint8Array, nonce = randomBytes(12)): Buffer {
  const cipher = createCipheriv('aes-256-gcm', nodeShared(own, peerPoint), nonce)
  return Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
}

function nodeDecrypt (own: PrivateKey, peerPoint: Uint8Array, sealed: Uint8Array): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', nodeShared(own, peerPoint), sealed.subarray(0, 12))
  decipher.setAuthTag(sealed.subarray(sealed.length - 16))
  return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()])
}

const alice = await generateKeyPair('secp256k1')
const bob = await generateKeyPair('secp256k1')
const message = encoder.encode('{"messages":[{"role":"user","content":"Hello"}]}')

function assertDecryptError (fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => err instanceof AicnError && err.code === ErrorCode.DECRYPT)
}

test('the shared key is the X coordinate node:crypto computes', () => {
  const ours = secp256k1.getSharedSecret(alice.raw, bob.publicKey.raw, true).subarray(1)
  assert.equal(Buffer.from(ours).toString('hex'), nodeShared(alice, bob.publicKey.raw).toString('hex'))
  assert.equal(ours.byteLength, 32)
})

test('what we encrypt, node:crypto\'s construction decrypts', () => {
  const sealed = encryptBody(alice, bob.publicKey, message)
  assert.equal(sealed.byteLength, 12 + message.byteLength + 16)
  assert.deepEqual(new Uint8Array(nodeDecrypt(bob, alice.publicKey.raw, sealed)), message)
})

test('what node:crypto\'s construction encrypts, we decrypt with the header\'s 37-byte key protobuf', () => {
  const sealed = nodeEncrypt(alice, bob.publicKey.raw, message)
  const nodePubKey = publicKeyToProtobuf(alice.publicKey)
  assert.equal(nodePubKey.byteLength, 37)
  assert.deepEqual(decryptBody(bob, nodePubKey, sealed), message)
})

test('a fixed vector: fixed keys and nonce give node:crypto\'s bytes, pinned', () => {
  const a = privateKeyFromRaw(Buffer.from('0101010101010101010101010101010101010101010101010101010101010101', 'hex'))
  const b = privateKeyFromRaw(Buffer.from('0202020202020202020202020202020202020202020202020202020202020202', 'hex'))
  const nonce = Buffer.from('000102030405060708090a0b', 'hex')
  const plaintext = encoder.encode('"Hello"')
  const expected = nodeEncrypt(a, b.publicKey.raw, plaintext, nonce).toString('hex')
  const ours = Buffer.from(encryptBody(a, b.publicKey, plaintext, { nonce })).toString('hex')
  assert.equal(ours, expected)
  // Pinned so that a change in either implementation shows up here.
  assert.equal(ours, FIXED_VECTOR)
  assert.deepEqual(decryptBody(b, publicKeyToProtobuf(a.publicKey), Buffer.from(FIXED_VECTOR, 'hex')), plaintext)
})
const FIXED_VECTOR = '000102030405060708090a0b78aeff0507d42e2bdac1daf0e3c3797508650a5c30ff01'

test('the peer key may be a libp2p key, a compressed or an uncompressed point', () => {
  const nonce = randomBytes(12)
  const viaKey = encryptBody(alice, bob.publicKey, message, { nonce })
  const viaCompressed = encryptBody(alice, bob.publicKey.raw, message, { nonce })
  const uncompressed = secp256k1.Point.fromBytes(bob.publicKey.raw).toBytes(false)
  assert.equal(uncompressed.byteLength, 65)
  const viaUncompressed = encryptBody(alice, uncompressed, message, { nonce })
  assert.deepEqual(viaCompressed, viaKey)
  assert.deepEqual(viaUncompressed, viaKey)
})

test('an empty body encrypts to nonce and tag alone', () => {
  const sealed = encryptBody(alice, bob.publicKey, new Uint8Array(0))
  assert.equal(sealed.byteLength, 28)
  assert.equal(decryptBody(bob, publicKeyToProtobuf(alice.publicKey), sealed).byteLength, 0)
})

test('random nonces: the same body encrypts differently each time', () => {
  assert.notDeepEqual(encryptBody(alice, bob.publicKey, message), encryptBody(alice, bob.publicKey, message))
})

test('tampering with nonce, ciphertext or tag, or the wrong key, fails with DECRYPT', () => {
  const sealed = encryptBody(alice, bob.publicKey, message)
  const key = publicKeyToProtobuf(alice.publicKey)
  for (const at of [0, 11, 12, 12 + message.byteLength - 1, sealed.byteLength - 1]) {
    const bad = Uint8Array.from(sealed)
    bad[at] ^= 0x01
    assertDecryptError(() => decryptBody(bob, key, bad))
  }
  assertDecryptError(() => decryptBody(bob, publicKeyToProtobuf(bob.publicKey), sealed))
  assertDecryptError(() => decryptBody(alice, key, sealed))
})

test('short input and keys that are not secp256k1 are refused', async () => {
  const key = publicKeyToProtobuf(alice.publicKey)
  assertDecryptError(() => decryptBody(bob, key, new Uint8Array(27)))
  assertDecryptError(() => decryptBody(bob, new Uint8Array([1, 2, 3]), encryptBody(alice, bob.publicKey, message)))
  const ed = await generateKeyPair('Ed25519')
  assertDecryptError(() => decryptBody(bob, publicKeyToProtobuf(ed.publicKey), encryptBody(alice, bob.publicKey, message)))
  assert.throws(() => encryptBody(alice, ed.publicKey, message), (err: unknown) => err instanceof AicnError && err.code === ErrorCode.ENCRYPT)
  assert.throws(() => encryptBody(ed, bob.publicKey, message), (err: unknown) => err instanceof AicnError && err.code === ErrorCode.ENCRYPT)
  assert.throws(() => encryptBody(alice, new Uint8Array(33), message), (err: unknown) => err instanceof AicnError && err.code === ErrorCode.ENCRYPT)
  assert.throws(() => encryptBody(alice, bob.publicKey.raw.subarray(1), message), (err: unknown) => err instanceof AicnError && err.code === ErrorCode.ENCRYPT)
})
