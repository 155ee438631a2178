// Keeps the private network's cipher from crashing the node (issue 19, found with the Sybil attack of
// scripts/bench/hostile.ts). @libp2p/pnet encrypts every connection with xsalsa20 1.2.0, whose
// WebAssembly instance is one per process, shared by all connections, with a memory that can grow to
// about 63 MB (986 pages, measured) and never shrinks. Two faults in it:
//
// - update() copies its whole input into that memory: pnet hands it everything the muxer queued for a
//   connection in one piece, so tens of MB queued for one peer (heartbeats of 769 KB relayed to a worker)
//   need tens of MB of WebAssembly memory at once;
// - realloc() grows by the distance between the size needed and the length of the instance's own view of
//   the memory, taken when the connection was made: once another connection has grown the memory, every
//   older connection's next large update grows it again by far more than it needs.
//
// Together they reached the limit ("RangeError: WebAssembly.Memory.grow(): Maximum memory size exceeded",
// thrown on a send path no one catches) and killed an input node within seconds of ten Sybil identities
// publishing large heartbeats. Here updates go through the cipher in pieces of at most 256 KiB (a stream
// cipher gives the same bytes however its input is split; pnet already feeds it TCP reads of any size),
// and realloc grows from the memory's real size, so the memory stays at its first few hundred KiB.
import { createRequire } from 'node:module'

/** The largest piece handed to the cipher at once. */
export const CIPHER_PIECE_BYTES = 256 * 1024

interface Xor { update: (input: Uint8Array, output: Uint8Array) => void }
interface WasmXor extends Xor { _memory: Uint8Array, realloc: (this: WasmXor, size: number) => void }
interface XSalsa20Like { _xor: Xor, update: (input: Uint8Array, output?: Uint8Array) => Uint8Array }
type XSalsa20Factory = ((nonce: Uint8Array, key: Uint8Array) => XSalsa20Like) & { prototype: XSalsa20Like }

let installed = false

/** The xsalsa20 module @libp2p/pnet uses (the same instance, resolved from pnet's own location). */
export function pnetCipher (): XSalsa20Factory {
  const require = createRequire(import.meta.resolve('@libp2p/pnet'))
  return require('xsalsa20') as XSalsa20Factory
}

export function installBoundedPnetCipher (): void {
  if (installed) return
  installed = true
  const XSalsa20 = pnetCipher()
  const prototype = XSalsa20.prototype
  const update = prototype.update
  if (typeof update !== 'function') throw new Error('xsalsa20 changed update(input, output); re-check src/p2p/patches/pnet-memory.ts')
  prototype.update = function (this: XSalsa20Like, input: Uint8Array, output?: Uint8Array): Uint8Array {
    if (input == null || input.length <= CIPHER_PIECE_BYTES) return update.call(this, input, output)
    const out = output ?? new Uint8Array(input.length)
    for (let at = 0; at < input.length; at += CIPHER_PIECE_BYTES) {
      const end = Math.min(at + CIPHER_PIECE_BYTES, input.length)
      update.call(this, input.subarray(at, end), out.subarray(at, end))
    }
    return out
  }
  // The WebAssembly variant's prototype is reachable only through an instance.
  const probe = XSalsa20(new Uint8Array(24), new Uint8Array(32))
  const wasm = Object.getPrototypeOf(probe._xor) as Partial<WasmXor>
  const realloc = wasm.realloc
  if (typeof realloc !== 'function') return // the plain-JS fallback: nothing to grow
  // xsalsa20's realloc(size): memory.grow(ceil(|size - this._memory.length| / 64 KiB)), then a fresh view.
  // A view made before another connection grew the memory is detached (length 0), so it grew by the
  // whole size each time. Asking first for the view's own length grows by 0 pages and refreshes the view;
  // the second call then grows by what is really missing, if anything.
  wasm.realloc = function (this: WasmXor, size: number): void {
    realloc.call(this, this._memory.length)
    if (size >= this._memory.length) realloc.call(this, size)
  }
}
