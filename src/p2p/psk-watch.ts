// Names a wrong pre-shared key. With a different PSK, pnet (XSalsa20) turns everything the other side
// sends into noise, and libp2p then fails with whatever the noise happens to mean: "Message length too
// long - 15844 > 1024", ECONNRESET, a timeout, depending on where the garbage lands. The Go
// node warns about it; so do we (issue 15). After the nonce exchange, the first bytes each side sends
// are multistream-select's header (varint 19, "/multistream/1.0.0\n"): when the first decrypted bytes are
// anything else, the keys differ. The check only listens to the protected stream; it reads nothing.
import { preSharedKey } from '@libp2p/pnet'
import type { ConnectionProtector, MessageStream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

const HEADER = new Uint8Array([19, ...new TextEncoder().encode('/multistream/1.0.0\n')])
/** Remote addresses remembered, so that a failed dial can be explained; oldest dropped first. */
const MAX_REMEMBERED = 256
/** A mismatch explains a dial failure for this long. */
const REMEMBER_MS = 60_000

export interface PskMismatch {
  remoteAddr: string
  direction: 'inbound' | 'outbound'
  /** false when the same address was reported within the last minute (log it once) */
  fresh?: boolean
}

/** Remote addresses (ip:port, from the multiaddr) that recently spoke with another PSK. */
export class PskMismatches {
  private readonly seen = new Map<string, number>()
  /** Outbound connections past the nonce exchange whose peer has not yet sent a valid first byte. */
  private readonly awaiting = new Map<string, number>()
  /** Outbound connections that closed that way, and when: not proof (a dial race closes the losers
   * early too), so they are not logged, only used to explain a failed dial to that very address. */
  private readonly silent = new Map<string, number>()
  private readonly listeners = new Set<(m: PskMismatch) => void>()

  onMismatch (listener: (m: PskMismatch) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  record (mismatch: PskMismatch): void {
    const key = hostPort(mismatch.remoteAddr)
    const fresh = !this.seenRecently(mismatch.remoteAddr)
    this.seen.delete(key)
    this.seen.set(key, Date.now())
    while (this.seen.size > MAX_REMEMBERED) this.seen.delete(this.seen.keys().next().value as string)
    for (const listener of this.listeners) listener({ ...mismatch, fresh })
  }

  /** Tracks an outbound connection whose peer sent its pnet nonce but nothing valid yet. */
  awaitingHeader (addr: string, waiting: boolean): void {
    const key = hostPort(addr)
    const count = (this.awaiting.get(key) ?? 0) + (waiting ? 1 : -1)
    if (count <= 0) this.awaiting.delete(key)
    else if (this.awaiting.size < MAX_REMEMBERED || this.awaiting.has(key)) this.awaiting.set(key, count)
  }

  /** An outbound connection to `addr` closed before its peer sent one valid byte. */
  closedSilent (addr: string): void {
    const key = hostPort(addr)
    this.silent.delete(key)
    this.silent.set(key, Date.now())
    while (this.silent.size > MAX_REMEMBERED) this.silent.delete(this.silent.keys().next().value as string)
  }

  /** `addr` just spoke with our key: whatever was noted about it is out of date. */
  matched (addr: string): void {
    const key = hostPort(addr)
    this.seen.delete(key)
    this.silent.delete(key)
  }

  /** A dial to `addr` failed: was it the key? The peer spoke pnet (it sent a nonce) and then rejected
   * or never answered our first bytes; or it sent us bytes our key could not read. */
  explains (addr: string): boolean {
    const key = hostPort(addr)
    const silentAt = this.silent.get(key)
    return this.seenRecently(addr) || this.awaiting.has(key) || (silentAt !== undefined && Date.now() - silentAt < REMEMBER_MS)
  }

  /** True when `addr` (a multiaddr's text) spoke with another PSK within the last minute. */
  seenRecently (addr: string): boolean {
    const at = this.seen.get(hostPort(addr))
    return at !== undefined && Date.now() - at < REMEMBER_MS
  }
}

/** "/ip4/1.2.3.4/tcp/7001/p2p/…" → "/ip4/1.2.3.4/tcp/7001": what identifies the remote end. */
function hostPort (addr: string): string {
  const match = /^(\/(?:ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d+)/.exec(addr)
  return match?.[1] ?? addr.slice(0, 200)
}

/** @libp2p/pnet's protector, plus the check above on every connection it protects. */
export function watchedPreSharedKey (psk: Uint8Array, mismatches: PskMismatches): () => ConnectionProtector {
  const inner = preSharedKey({ psk })
  return () => {
    const protector = inner()
    return {
      [Symbol.toStringTag]: '@libp2p/pnet',
      async protect (connection: MessageStream, options) {
        const boxed = await protector.protect(connection, options)
        const remote = (connection as { remoteAddr?: { toString: () => string } }).remoteAddr?.toString() ?? 'unknown'
        const direction = (connection as { direction?: string }).direction === 'outbound' ? 'outbound' : 'inbound'
        // A listener with another key reads our first bytes as noise and hangs up (or waits for a length
        // it will never get) without sending anything: for a dial, silence until the end is the sign.
        let verdict: 'pending' | 'ok' | 'bad' | 'silent' = 'pending'
        if (direction === 'outbound') mismatches.awaitingHeader(remote, true)
        const settle = (now: 'ok' | 'bad' | 'silent'): void => {
          if (verdict !== 'pending') return
          verdict = now
          if (direction === 'outbound') mismatches.awaitingHeader(remote, false)
          if (now === 'bad') mismatches.record({ remoteAddr: remote, direction })
          if (now === 'silent') mismatches.closedSilent(remote)
          if (now === 'ok') mismatches.matched(remote)
        }
        checkFirstBytes(boxed as unknown as DataSink, () => { settle('bad') }, () => { settle('ok') })
        connection.addEventListener('close', () => { if (direction === 'outbound') settle('silent') }, { once: true })
        return boxed
      }
    } as ConnectionProtector
  }
}

/** A stream whose decrypted bytes pass through onData (libp2p's AbstractMessageStream; pnet's
 * BoxMessageStream calls this.onData with each chunk it decrypted). */
export interface DataSink { onData: (data: Uint8Array | Uint8ArrayList) => void }

/** Calls onMismatch once if the first bytes are not multistream-select's header, onMatch once they are.
 * It looks at the bytes on their way in, through onData, and never adds a 'message' listener: the
 * stream buffers its data only while nobody listens, so a listener of ours would make it hand the first
 * bytes out before libp2p's upgrader is reading, and they would be lost (connections then hang). */
export function checkFirstBytes (stream: DataSink, onMismatch: () => void, onMatch: () => void = () => {}): void {
  const own = Object.prototype.hasOwnProperty.call(stream, 'onData')
  const original = stream.onData
  let offset = 0
  let done = false
  const finish = (): void => {
    done = true
    if (own) stream.onData = original
    else delete (stream as Partial<DataSink>).onData
  }
  stream.onData = function (data) {
    if (!done) {
      const chunks = data instanceof Uint8Array ? [data] : [...data]
      outer: for (const chunk of chunks) {
        for (const byte of chunk) {
          if (byte !== HEADER[offset]) {
            finish()
            onMismatch()
            break outer
          }
          offset++
          if (offset === HEADER.length) {
            finish()
            onMatch()
            break outer
          }
        }
      }
    }
    original.call(stream, data)
  }
}

/** The error of a failed dial, naming the PSK when the peer's differs (or probably does). */
export function explainDialError (addr: string, message: string, mismatches: PskMismatches | undefined): string {
  if (mismatches === undefined) return message
  // Nobody answered at all: that is not about keys, whatever was seen at this address before.
  if (/ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|no valid addresses/i.test(message) && !mismatches.seenRecently(addr)) return message
  if (mismatches.explains(addr)) {
    return 'the peer is in another private network: its pre-shared key differs from this node\'s (App.PreSharedKey); use the same key on both nodes'
  }
  // The other side may have dropped us before sending anything we could check.
  if (/Message length too long|EncryptionFailed|invalid varint|Unexpected end|ECONNRESET|protocol selection/i.test(message)) {
    return `${message} (the connection broke during the handshake: does the peer use the same pre-shared key, App.PreSharedKey?)`
  }
  return message
}
