// Length-prefixed decoding without an exception per message.
//
// @libp2p/utils 7.4's LengthPrefixedDecoder (noise uses it for every encrypted frame it receives) cuts frames
// in a loop that ends when the length decoder throws a RangeError for want of bytes. After the last whole
// frame the buffer is usually empty, so every received chunk costs one Error with its stack trace: about
// 15 µs, a twentieth of a whole job's CPU on each node. This is the same loop, stopping before it asks
// for a length while fewer bytes are buffered than the shortest prefix. A partial prefix still reaches
// the length decoder, which throws as before.
import { InvalidParametersError } from '@libp2p/interface'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

interface DecoderFields {
  buffer: Uint8ArrayList
  maxBufferSize: number
  maxDataLength: number
  lengthDecoder: (data: Uint8ArrayList) => number
  encodingLength: (length: number) => number
}

let installed = false

export function installQuietLengthPrefixedDecoder (): void {
  if (installed) return
  installed = true
  const prototype = LengthPrefixedDecoder.prototype as unknown as { decode: (this: DecoderFields, buf: Uint8Array | Uint8ArrayList) => Generator<Uint8ArrayList> }
  prototype.decode = function * (this: DecoderFields, buf: Uint8Array | Uint8ArrayList): Generator<Uint8ArrayList> {
    this.buffer.append(buf)
    if (this.buffer.byteLength > this.maxBufferSize) {
      throw new InvalidParametersError(`Buffer length limit exceeded - ${this.buffer.byteLength}/${this.maxBufferSize}`)
    }
    // The shortest prefix: 1 byte for a varint, 2 for noise's uint16.
    const shortestPrefix = this.encodingLength(0)
    while (this.buffer.byteLength >= shortestPrefix) {
      let dataLength: number
      try {
        dataLength = this.lengthDecoder(this.buffer)
      } catch (err) {
        if (err instanceof RangeError) break // a prefix not yet whole
        throw err
      }
      if (dataLength < 0 || dataLength > this.maxDataLength) throw new InvalidMessageLengthError('Invalid message length')
      const lengthLength = this.encodingLength(dataLength)
      const chunkLength = lengthLength + dataLength
      if (this.buffer.byteLength < chunkLength) break
      const frame = this.buffer.sublist(lengthLength, chunkLength)
      this.buffer.consume(chunkLength)
      if (frame.byteLength > 0) yield frame
    }
  }
}

/** @libp2p/utils' own error of this name and code (not exported from its index). */
class InvalidMessageLengthError extends Error {
  override name = 'InvalidMessageLengthError'
  code = 'ERR_INVALID_MSG_LENGTH'
}
