import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fastMessageId } from '../../../src/p2p/fast-msg-id.ts'

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b)

test('the fast message ID is the author and sequence number: the same message gets the same ID', () => {
  const message = (data: Uint8Array): { from: Uint8Array, seqno: Uint8Array, data: Uint8Array } => ({ from: bytes(1, 2, 3), seqno: bytes(0, 0, 0, 7), data })
  assert.equal(fastMessageId(message(bytes(9))), fastMessageId(message(bytes(8))))
})

test('different authors, sequence numbers or splits between them get different IDs', () => {
  const ids = [
    fastMessageId({ from: bytes(1, 2, 3), seqno: bytes(7) }),
    fastMessageId({ from: bytes(1, 2, 4), seqno: bytes(7) }),
    fastMessageId({ from: bytes(1, 2, 3), seqno: bytes(8) }),
    fastMessageId({ from: bytes(1, 2), seqno: bytes(3, 7) }),
    fastMessageId({ from: bytes(1, 2, 3, 7), seqno: bytes() }),
    fastMessageId({})
  ]
  assert.equal(new Set(ids).size, ids.length)
})
