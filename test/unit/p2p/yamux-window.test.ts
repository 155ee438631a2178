// Yamux window updates with hysteresis (src/p2p/patches/yamux-window.ts), on the library's own stream class.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { YamuxStream, StreamState } from '@chainsafe/libp2p-yamux/stream'
import { installYamuxWindowHysteresis } from '../../../src/p2p/patches/yamux-window.ts'

const WINDOW = 256 * 1024

interface Frame { header: { type: number, flag: number, streamID: number, length: number } }

/** A YamuxStream's window state without a connection: only what sendWindowUpdate() reads. */
function streamWith (state: StreamState, recvWindowCapacity: number): { stream: { sendWindowUpdate: () => void }, sent: Frame['header'][] } {
  const sent: Frame['header'][] = []
  const stream = Object.assign(Object.create(YamuxStream.prototype), {
    state,
    streamId: 1,
    recvWindow: WINDOW,
    recvWindowCapacity,
    maxStreamWindowSize: 16 * 1024 * 1024,
    epochStart: Date.now(),
    getRTT: () => -1,
    sendFrame: (header: Frame['header']) => { sent.push(header); return true }
  })
  return { stream, sent }
}

test('window updates wait until half the receive window is consumed', () => {
  installYamuxWindowHysteresis()
  const small = streamWith(StreamState.Established, WINDOW - 1000)
  small.stream.sendWindowUpdate()
  assert.equal(small.sent.length, 0, 'a small message is not answered with an update')

  const half = streamWith(StreamState.Established, WINDOW / 2)
  half.stream.sendWindowUpdate()
  assert.equal(half.sent.length, 1)
  assert.equal(half.sent[0].length, WINDOW / 2, 'the update gives back everything consumed')
})

test('opening flags still go out at once, and a paused stream sends none', () => {
  installYamuxWindowHysteresis()
  const opening = streamWith(StreamState.SYNReceived, WINDOW - 10)
  opening.stream.sendWindowUpdate()
  assert.equal(opening.sent.length, 1, 'the ACK of a new stream is not held back')
  assert.notEqual(opening.sent[0].flag, 0)

  const paused = streamWith(StreamState.Paused, 0)
  paused.stream.sendWindowUpdate()
  assert.equal(paused.sent.length, 0)
})
