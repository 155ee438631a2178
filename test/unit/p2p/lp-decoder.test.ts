// Length-prefixed decoding without an exception per message (src/p2p/patches/lp-decoder.ts), on the library's own
// decoder class, with the varint prefix (the default) and with noise's 2-byte prefix.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import { installQuietLengthPrefixedDecoder } from '../../../src/p2p/patches/lp-decoder.ts'

installQuietLengthPrefixedDecoder()

const uint16Decoder = (): LengthPrefixedDecoder => new LengthPrefixedDecoder({
  lengthDecoder: (data: Uint8ArrayList | Uint8Array) => {
    if (data.byteLength < 2) throw new RangeError('Could not decode int16BE')
    return (data.subarray(0, 2)[0] << 8) + data.subarray(0, 2)[1]
  },
  encodingLength: () => 2
})

const texts = (frames: Iterable<Uint8ArrayList>): string[] => [...frames].map((f) => Buffer.from(f.subarray()).toString())

test('whole frames come out, and an emptied buffer raises no RangeError', () => {
  const decoder = new LengthPrefixedDecoder()
  const thrown: unknown[] = []
  const lengthDecoder = (decoder as unknown as { lengthDecoder: (d: Uint8ArrayList) => number }).lengthDecoder
  ;(decoder as unknown as { lengthDecoder: (d: Uint8ArrayList) => number }).lengthDecoder = (d) => {
    try { return lengthDecoder(d) } catch (err) { thrown.push(err); throw err }
  }
  assert.deepEqual(texts(decoder.decode(Uint8Array.from([3, 97, 98, 99, 2, 100, 101]))), ['abc', 'de'])
  assert.deepEqual(thrown, [], 'the length decoder is not asked to read an empty buffer')
})

test('frames split anywhere, even inside a prefix, are put back together', () => {
  for (const make of [() => new LengthPrefixedDecoder(), uint16Decoder]) {
    const decoder = make()
    const wide = make === uint16Decoder
    const frame = (text: string): number[] => [...(wide ? [0, text.length] : [text.length]), ...Buffer.from(text)]
    const bytes = [...frame('hello'), ...frame(''), ...frame('x'.repeat(100)), ...frame('end')]
    const out: string[] = []
    for (const byte of bytes) out.push(...texts(decoder.decode(Uint8Array.from([byte]))))
    assert.deepEqual(out, ['hello', 'x'.repeat(100), 'end'], 'empty frames are skipped, as before')
  }
})

test('limits are kept: an oversized length and an overfull buffer throw', () => {
  const decoder = new LengthPrefixedDecoder({ maxDataLength: 10 })
  assert.throws(() => [...decoder.decode(Uint8Array.from([11, 1]))], { name: 'InvalidMessageLengthError' })
  const small = new LengthPrefixedDecoder({ maxBufferSize: 4 })
  assert.throws(() => [...small.decode(new Uint8Array(5))], { name: 'InvalidParametersError' })
})
