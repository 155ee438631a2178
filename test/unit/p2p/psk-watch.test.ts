// The wrong-PSK check names another key only on evidence (src/p2p/psk-watch.ts): the peer's bytes did not
// decrypt, or the peer hung up right after our first encrypted bytes; a timeout is reported as a timeout.
// The last tests run two real pnet protectors over an in-memory connection pair (@libp2p/utils).
import '../../../src/core/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { StreamAbortEvent, StreamCloseEvent, StreamResetEvent, StreamResetError, TimeoutError, type MultiaddrConnection } from '@libp2p/interface'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { swarmKeyFromHex } from '../../../src/p2p/psk.ts'
import { pnetCipher } from '../../../src/p2p/patches/pnet-memory.ts'
import { classifyDialError, explainDialError, isRejection, PskMismatches, REJECTED_WITHIN_MS, watchedPreSharedKey, type PskMismatch } from '../../../src/p2p/psk-watch.ts'

const ADDR = '/ip4/127.0.0.1/tcp/7001'
const TIMEOUT_MESSAGE = 'The operation was aborted due to timeout'

test('a timeout is a timeout, even after the peer hung up on an earlier dial', () => {
  const mismatches = new PskMismatches()
  assert.equal(classifyDialError(`${ADDR}/p2p/x`, TIMEOUT_MESSAGE, mismatches), 'timeout')
  assert.equal(classifyDialError(`${ADDR}/p2p/x`, 'Dial timed out', mismatches), 'timeout')
  mismatches.rejectedAfterNonce(ADDR)
  assert.equal(classifyDialError(`${ADDR}/p2p/x`, TIMEOUT_MESSAGE, mismatches), 'timeout')
  const text = explainDialError(`${ADDR}/p2p/x`, TIMEOUT_MESSAGE, mismatches)
  assert.match(text, /timed out/)
  assert.doesNotMatch(text, /pre-shared key/)
})

test('another key is named when the peer hung up on our first bytes, or its own bytes were noise', () => {
  const rejected = new PskMismatches()
  rejected.rejectedAfterNonce(ADDR)
  assert.equal(classifyDialError(`${ADDR}/p2p/x`, 'stream reset', rejected), 'psk-mismatch')
  assert.match(explainDialError(`${ADDR}/p2p/x`, 'stream reset', rejected), /pre-shared key differs/)
  assert.equal(classifyDialError('/ip4/127.0.0.1/tcp/7002', 'stream reset', rejected), 'other', 'another address')
  rejected.matched(ADDR)
  assert.equal(classifyDialError(`${ADDR}/p2p/x`, 'stream reset', rejected), 'other', 'a later good connection clears it')

  const noise = new PskMismatches()
  noise.record({ remoteAddr: ADDR, direction: 'outbound' })
  assert.equal(classifyDialError(`${ADDR}/p2p/x`, TIMEOUT_MESSAGE, noise), 'psk-mismatch', 'proof, however the dial ended')
})

test('unreachable and broken handshakes say nothing about keys unless something was seen', () => {
  const mismatches = new PskMismatches()
  assert.equal(classifyDialError(ADDR, 'connect ECONNREFUSED 127.0.0.1:7001', mismatches), 'unreachable')
  mismatches.rejectedAfterNonce(ADDR)
  assert.equal(classifyDialError(ADDR, 'connect ECONNREFUSED 127.0.0.1:7001', mismatches), 'unreachable')
  assert.equal(classifyDialError('/ip4/10.0.0.9/tcp/1', 'read ECONNRESET', mismatches), 'handshake')
  assert.equal(explainDialError(ADDR, 'anything', undefined), 'anything', 'no PSK configured: the message as it is')
})

test('only the peer hanging up soon after the nonce counts as a rejection', () => {
  const soon = REJECTED_WITHIN_MS - 1
  assert.equal(isRejection(new StreamCloseEvent(), soon), true, 'the transport ended: the peer\'s FIN')
  assert.equal(isRejection(new StreamResetEvent(new StreamResetError()), soon), true, 'reset by the peer')
  assert.equal(isRejection(new StreamAbortEvent(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), soon), true, 'tcp aborts on the socket\'s reset')
  assert.equal(isRejection(new StreamAbortEvent(new TimeoutError('The operation was aborted due to timeout')), soon), false, 'our own timeout')
  assert.equal(isRejection(new StreamAbortEvent(new DOMException('aborted', 'AbortError')), soon), false, 'our own abort (a lost dial race)')
  assert.equal(isRejection(new StreamCloseEvent(), REJECTED_WITHIN_MS), false, 'late: the peer\'s own upgrade timeout, under load')
})

/** Both ends of an in-memory connection protected by pnet, the dialer with `dialKey`, the listener with `listenKey`. */
async function protectedPair (dialKey: Uint8Array, listenKey: Uint8Array): Promise<{ dialer: PskMismatches, listener: PskMismatches, outbound: MultiaddrConnection, inbound: MultiaddrConnection, send: (bytes: Uint8Array) => void, listenerSend: (bytes: Uint8Array) => void, dialerReceived: Promise<void>, inboundClosed: Promise<void> }> {
  const [outbound, inbound] = multiaddrConnectionPair()
  const dialer = new PskMismatches()
  const listener = new PskMismatches()
  const inboundClosed = new Promise<void>((resolve) => { inbound.addEventListener('close', () => { resolve() }, { once: true }) })
  const [a, b] = await Promise.all([
    watchedPreSharedKey(dialKey, dialer)().protect(outbound),
    watchedPreSharedKey(listenKey, listener)().protect(inbound)
  ])
  // the header's bytes decrypted by the dialer's pnet, after the check saw them
  let got = 0
  const dialerReceived = new Promise<void>((resolve) => {
    a.addEventListener('message', (evt) => { got += evt.data.byteLength; if (got >= HEADER.length) resolve() })
  })
  return { dialer, listener, outbound, inbound, send: (bytes) => { a.send(bytes) }, listenerSend: (bytes) => { b.send(bytes) }, dialerReceived, inboundClosed }
}

const KEY_A = swarmKeyFromHex('ab'.repeat(32))
const KEY_B = swarmKeyFromHex('cd'.repeat(32))
const HEADER = new Uint8Array([19, ...new TextEncoder().encode('/multistream/1.0.0\n')])

test('a listener with another key hangs up on our first bytes, and the dialer names the key', async () => {
  const { dialer, listener, outbound, send, inboundClosed } = await protectedPair(KEY_A, KEY_B)
  const warned: PskMismatch[] = []
  listener.onMismatch((m) => { warned.push(m) })
  const outboundClosed = new Promise<void>((resolve) => { outbound.addEventListener('close', () => { resolve() }, { once: true }) })
  send(HEADER)
  await inboundClosed
  await outboundClosed
  assert.deepEqual(warned.map((m) => m.direction), ['inbound'], 'the listener saw noise')
  const addr = outbound.remoteAddr.toString()
  assert.equal(dialer.rejectedRecently(addr), true)
  assert.match(explainDialError(addr, 'stream reset', dialer), /pre-shared key differs/)
})

test('a dial we abandon (a timeout) with the same key on both sides names no key', async () => {
  const { dialer, outbound, send } = await protectedPair(KEY_A, KEY_A)
  send(HEADER)
  // The listener is busy and never answers: our dial times out and aborts the connection.
  outbound.abort(new TimeoutError('The operation was aborted due to timeout'))
  const addr = outbound.remoteAddr.toString()
  assert.equal(dialer.rejectedRecently(addr), false)
  assert.equal(classifyDialError(addr, TIMEOUT_MESSAGE, dialer), 'timeout')
})

test('the listener\'s header, even split, clears what was noted about it', async () => {
  const { dialer, outbound, listenerSend, dialerReceived } = await protectedPair(KEY_A, KEY_A)
  const addr = outbound.remoteAddr.toString()
  dialer.rejectedAfterNonce(addr)
  listenerSend(HEADER.subarray(0, 5))
  listenerSend(HEADER.subarray(5))
  await dialerReceived
  assert.equal(dialer.rejectedRecently(addr), false)
})

test('the header that came in one read with the peer\'s nonce is checked too (a busy node reads both at once)', async () => {
  const [outbound, inbound] = multiaddrConnectionPair()
  const dialer = new PskMismatches()
  const warned: PskMismatch[] = []
  dialer.onMismatch((m) => { warned.push(m) })
  // A listener by hand: its nonce and its first encrypted bytes in a single send, before the dialer reads.
  const nonce = crypto.getRandomValues(new Uint8Array(24))
  const first = new Uint8Array([...HEADER, 7, ...new TextEncoder().encode('/noise\n')])
  const sealed = pnetCipher()(nonce, Buffer.from('ab'.repeat(32), 'hex')).update(first)
  inbound.send(new Uint8Array([...nonce, ...sealed]))
  const addr = outbound.remoteAddr.toString()
  dialer.rejectedAfterNonce(addr)
  const boxed = await watchedPreSharedKey(KEY_A, dialer)().protect(outbound)
  let got = 0
  await new Promise<void>((resolve) => {
    boxed.addEventListener('message', (evt) => { got += evt.data.byteLength; if (got >= first.length) resolve() })
  })
  assert.deepEqual(warned, [], 'no mismatch')
  assert.equal(outbound.status, 'open', 'not hung up on')
  assert.equal(dialer.rejectedRecently(addr), false, 'the header was seen: the peer matched')
})
