// The private network's cipher (src/p2p/patches/pnet-memory.ts): large updates go through in pieces with the
// same bytes, and the shared WebAssembly memory stays small however many connections send large buffers
// (without the fix, this test's second case ends in "WebAssembly.Memory.grow(): Maximum memory size exceeded").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { CIPHER_PIECE_BYTES, installBoundedPnetCipher, pnetCipher } from '../../../src/p2p/patches/pnet-memory.ts'

installBoundedPnetCipher()
const XSalsa20 = pnetCipher()
const key = randomBytes(32)
const nonce = randomBytes(24)

test('a large update gives the same bytes as the same input in small pieces, and decrypts', () => {
  const input = randomBytes(5 * 1024 * 1024 + 77)
  const whole = XSalsa20(nonce, key).update(input)
  const pieces = XSalsa20(nonce, key)
  const split = new Uint8Array(input.length)
  for (let at = 0; at < input.length; at += 1000 + (at % 7)) {
    const end = Math.min(input.length, at + 1000 + (at % 7))
    split.set(pieces.update(input.subarray(at, end)), at)
  }
  assert.deepEqual(Buffer.from(whole), Buffer.from(split))
  assert.deepEqual(Buffer.from(XSalsa20(nonce, key).update(whole)), input)
})

test('many connections sending large buffers keep the WebAssembly memory small', () => {
  const connections = Array.from({ length: 20 }, () => XSalsa20(randomBytes(24), key))
  const big = new Uint8Array(8 * 1024 * 1024)
  for (let round = 0; round < 3; round++) for (const c of connections) c.update(big)
  const last = connections.at(-1)! as unknown as { _xor: { _memory: Uint8Array } }
  assert.ok(last._xor._memory.length <= 4 * CIPHER_PIECE_BYTES, `${last._xor._memory.length} bytes`)
})
