// Names a wrong pre-shared key, and only on evidence. With a different PSK, pnet (XSalsa20) turns
// everything the other side sends into noise, and libp2p then fails with whatever the noise happens to
// mean: "Message length too long - 15844 > 1024", ECONNRESET, a timeout, depending on where the garbage
// lands. The Go node warns about it; so do we (issue 15). After the nonce exchange, the first bytes each
// side sends are multistream-select's header (varint 19, "/multistream/1.0.0\n"): when the first decrypted
// bytes are anything else, the keys differ, and we hang up at once (the library would wait for a length
// the noise announced, up to its upgrade timeout). So a dialer with another key sees its listener hang up
// right after the first encrypted bytes, without a byte back: the second kind of evidence. A dial that
// times out, or that we abandon ourselves, is evidence of nothing (a busy peer looks the same), and is
// reported as what it is (explainDialError, classifyDialError). The check only listens to the protected
// stream; it reads nothing.
import { preSharedKey } from '@libp2p/pnet'
import type { ConnectionProtector, MessageStream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

const HEADER = new Uint8Array([19, ...new TextEncoder().encode('/multistream/1.0.0\n')])
/** Remote addresses remembered, so that a failed dial can be explained; oldest dropped first. */
const MAX_REMEMBERED = 256
/** A mismatch explains a dial failure for this long. */
const REMEMBER_MS = 60_000
/** A peer that hangs up within this long of the nonce exchange, before one valid byte, was reading our
 * first bytes as noise (an aicn listener with another key hangs up as soon as it reads them). Later, it
 * is more likely the peer's own upgrade timeout under load (10 s in libp2p, INBOUND_UPGRADE_TIMEOUT in
 * libp2p/dist/src/connection-manager/constants.defaults.js), which says nothing about keys. */
export const REJECTED_WITHIN_MS = 5_000

export interface PskMismatch {
  remoteAddr: string
  direction: 'inbound' | 'outbound'
  /** false when the same address was reported within the last minute (log it once) */
  fresh?: boolean
}

/** Remote addresses (ip:port, from the multiaddr) that recently spoke with another PSK. */
export class PskMismatches {
  private readonly seen = new Map<string, number>()
  /** Outbound connections whose peer sent its pnet nonce and then hung up without one valid byte, and
   * when. Likely another key, but a peer may hang up for its own reasons (connection limits), so they are
   * not logged, only used to explain a failed dial to that very address. Our own aborts (a timeout, a
   * lost dial race) are not recorded. */
  private readonly rejected = new Map<string, number>()
  private readonly listeners = new Set<(m: PskMismatch) => void>()

  onMismatch (listener: (m: PskMismatch) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  record (mismatch: PskMismatch): void {
    const key = hostPort(mismatch.remoteAddr)
    const fresh = !this.seenRecently(mismatch.remoteAddr)
    remember(this.seen, key)
    for (const listener of this.listeners) listener({ ...mismatch, fresh })
  }

  /** The peer at `addr` hung up on an outbound connection right after our first encrypted bytes. */
  rejectedAfterNonce (addr: string): void {
    remember(this.rejected, hostPort(addr))
  }

  /** `addr` just spoke with our key: whatever was noted about it is out of date. */
  matched (addr: string): void {
    const key = hostPort(addr)
    this.seen.delete(key)
    this.rejected.delete(key)
  }

  /** True when `addr` (a multiaddr's text) spoke with another PSK within the last minute. */
  seenRecently (addr: string): boolean {
    return recent(this.seen, hostPort(addr))
  }

  /** True when the peer at `addr` hung up after our nonce, without a valid byte, within the last minute. */
  rejectedRecently (addr: string): boolean {
    return recent(this.rejected, hostPort(addr))
  }
}

/** Notes `key` as the newest entry of a bounded map (oldest dropped first). */
function remember (map: Map<string, number>, key: string): void {
  map.delete(key)
  map.set(key, Date.now())
  while (map.size > MAX_REMEMBERED) map.delete(map.keys().next().value as string)
}

function recent (map: Map<string, number>, key: string): boolean {
  const at = map.get(key)
  return at !== undefined && Date.now() - at < REMEMBER_MS
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
        // A listener with another key reads our first bytes as noise and hangs up (an aicn node at once,
        // below) without sending anything: for a dial, the peer closing before one valid byte is the sign.
        const nonceAt = Date.now()
        let verdict: 'pending' | 'ok' | 'bad' | 'closed' = 'pending'
        const settle = (now: 'ok' | 'bad' | 'closed', rejected = false): void => {
          if (verdict !== 'pending') return
          verdict = now
          if (now === 'bad') {
            mismatches.record({ remoteAddr: remote, direction })
            // Nothing this connection brings can be read: hang up now rather than at the upgrade timeout,
            // which also tells a dialer with another key what happened. After the current chunk is delivered.
            queueMicrotask(() => { connection.abort(new PskMismatchError()) })
          }
          if (now === 'closed' && rejected && direction === 'outbound') mismatches.rejectedAfterNonce(remote)
          if (now === 'ok') mismatches.matched(remote)
        }
        checkFirstBytes(boxed as unknown as DataSink, () => { settle('bad') }, () => { settle('ok') })
        connection.addEventListener('close', (evt) => { settle('closed', isRejection(evt, Date.now() - nonceAt)) }, { once: true })
        return boxed
      }
    } as ConnectionProtector
  }
}

/** A stream whose decrypted bytes pass through onData (libp2p's AbstractMessageStream; pnet's
 * BoxMessageStream calls this.onData with each chunk it decrypted), and that keeps what nobody has read
 * yet in `readBuffer` (protected in @libp2p/utils abstract-message-stream.d.ts, a plain field at run time). */
export interface DataSink { onData: (data: Uint8Array | Uint8ArrayList) => void, readBuffer?: Uint8ArrayList }

/** Calls onMismatch once if the first bytes are not multistream-select's header, onMatch once they are.
 * It looks at the bytes on their way in, through onData, and never adds a 'message' listener: the
 * stream buffers its data only while nobody listens, so a listener of ours would make it hand the first
 * bytes out before libp2p's upgrader is reading, and they would be lost (connections then hang).
 * Bytes that reached the stream before this is called are in its read buffer and are checked first:
 * when the peer's nonce and its first encrypted bytes come in one read (a busy node reads both at once),
 * pnet hands the rest to the new stream during protect() (@libp2p/utils stream-utils.js `unwrap`), before
 * the caller can install this; missing them made the next bytes look like noise. */
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
  const inspect = (chunks: Iterable<Uint8Array>): void => {
    for (const chunk of chunks) {
      for (const byte of chunk) {
        if (byte !== HEADER[offset]) {
          finish()
          onMismatch()
          return
        }
        offset++
        if (offset === HEADER.length) {
          finish()
          onMatch()
          return
        }
      }
    }
  }
  stream.onData = function (data) {
    if (!done) inspect(data instanceof Uint8Array ? [data] : data)
    original.call(stream, data)
  }
  const buffered = stream.readBuffer
  if (buffered !== undefined && buffered.byteLength > 0) inspect(buffered)
}

/** Thrown into a connection whose first decrypted bytes were noise (the keys differ). */
export class PskMismatchError extends Error {
  constructor () {
    super('the peer\'s pre-shared key differs from this node\'s')
    this.name = 'PskMismatchError'
  }
}

/** Whether a connection that closed before its peer sent one valid byte, `msSinceNonce` after the nonce
 * exchange, was the peer hanging up on our first bytes. Its 'close' event (@libp2p/interface events.js)
 * must come from the peer's side: a reset the transport got from the peer (StreamResetEvent, `local`
 * false; or @libp2p/tcp socket-to-conn.js aborting on the socket's ECONNRESET/EPIPE), or a clean end of
 * the transport (a plain StreamCloseEvent: the peer's FIN). Our own aborts, the upgrade's timeout or a
 * lost dial race (@libp2p/tcp tcp.js `maConn.abort(err)`), carry the error that ended the dial. */
export function isRejection (evt: Event, msSinceNonce: number): boolean {
  if (msSinceNonce >= REJECTED_WITHIN_MS) return false
  const { error, local } = evt as { error?: unknown, local?: unknown }
  if (local === false) return true
  if (error === undefined || error === null) return true
  const code = (error as { code?: unknown }).code
  return code === 'ECONNRESET' || code === 'EPIPE'
}

/** Why a dial failed, as far as the evidence goes (explainDialError words it). */
export type DialFailure = 'psk-mismatch' | 'unreachable' | 'timeout' | 'handshake' | 'other'

const UNREACHABLE = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|no valid addresses/i
const TIMEOUT = /timed? ?out|timeout|operation was aborted|\baborted\b/i
const HANDSHAKE = /Message length too long|EncryptionFailed|invalid varint|Unexpected end|ECONNRESET|protocol selection/i

export function classifyDialError (addr: string, message: string, mismatches: PskMismatches): DialFailure {
  // The peer's own bytes did not decrypt with our key: proof, however the dial ended.
  if (mismatches.seenRecently(addr)) return 'psk-mismatch'
  // Nobody answered at all: that is not about keys.
  if (UNREACHABLE.test(message)) return 'unreachable'
  // A dial that ran out of time says nothing about keys: a busy peer (or node) looks the same.
  if (TIMEOUT.test(message)) return 'timeout'
  // The peer spoke pnet (it sent a nonce), then hung up on our first encrypted bytes.
  if (mismatches.rejectedRecently(addr)) return 'psk-mismatch'
  if (HANDSHAKE.test(message)) return 'handshake'
  return 'other'
}

/** The error of a failed dial, naming the PSK when the evidence says the peer's differs. */
export function explainDialError (addr: string, message: string, mismatches: PskMismatches | undefined): string {
  if (mismatches === undefined) return message
  switch (classifyDialError(addr, message, mismatches)) {
    case 'psk-mismatch':
      return 'the peer is in another private network: its pre-shared key differs from this node\'s (App.PreSharedKey); use the same key on both nodes'
    case 'timeout':
      return `${message} (the dial timed out: the peer, or this node, may be overloaded or the path to it slow)`
    case 'handshake':
      // The other side may have dropped us before sending anything we could check (for example a node
      // without a pre-shared key, which has no pnet nonce to send).
      return `${message} (the connection broke during the handshake: does the peer use the same pre-shared key, App.PreSharedKey?)`
    default:
      return message
  }
}
