// Keeps libp2p from rewriting a peer's record on disk when nothing in it changed (README.md in this folder).
//
// Why: libp2p's connection (libp2p/dist/src/connection.js, `newStream` and `onIncomingStream`) calls
// `peerStore.merge(remotePeer, { protocols: [protocol] })` for every stream it opens or accepts, so each
// ping of the connection monitor (every 30 s, src/p2p/idle-tuning.ts), each ping of our latency service
// (src/p2p/latency/) and each job stream merges a protocol the record already lists. @libp2p/peer-store's
// `#saveIfDifferent` (dist/src/store.js) then writes the record anyway, stamped with a new `updated` time:
// the bytes on disk change by that timestamp alone, and LevelDB (src/node/storage.ts) appends every one.
//
// This wrapper around the datastore skips a put of a peer record whose every field but `updated` equals
// the stored one, as long as the stored `updated` is less than REFRESH_MS old. The peer store expires a
// record by its `updated` (older than maxPeerAge, 6 h, with no recently observed address), so a record
// still reaches the disk at least every REFRESH_MS while the peer is in use: it expires at most that much
// earlier than the library alone would let it. Every other key, and any record this file cannot read,
// goes straight through.
import type { Batch, Datastore, Key, KeyQuery, Pair, Query } from 'interface-datastore'
import type { AbortOptions } from '@libp2p/interface'

/** The peer store's key prefix (@libp2p/peer-store dist/src/utils/peer-id-to-datastore-key.js). */
export const PEER_RECORD_PREFIX = '/peers/'

/** The field number of `updated` in the peer store's record (@libp2p/peer-store dist/src/pb/peer.js). */
const UPDATED_FIELD = 8

/** How stale the stored `updated` may get before an unchanged record is written again. */
export const REFRESH_MS = 10 * 60_000

/** A record's top-level fields but `updated`, in their order, and `updated` itself. */
interface Parsed { rest: Uint8Array[], updated: number | undefined }

/** Reads a varint at `pos`; undefined when it runs past the end or is longer than 10 bytes (bounded). */
function varint (buf: Uint8Array, pos: number): { value: number, end: number } | undefined {
  let value = 0
  let scale = 1
  for (let i = 0; i < 10 && pos + i < buf.length; i++) {
    const byte = buf[pos + i]
    value += (byte & 0x7f) * scale
    scale *= 128
    if ((byte & 0x80) === 0) return { value, end: pos + i + 1 }
  }
  return undefined
}

/** Splits a protobuf message into its top-level fields; undefined for anything malformed or a wire type
 * (groups) a peer record does not use. Each step moves forward, so the loop ends. */
export function parsePeerRecord (buf: Uint8Array): Parsed | undefined {
  const parsed: Parsed = { rest: [], updated: undefined }
  let pos = 0
  while (pos < buf.length) {
    const tag = varint(buf, pos)
    if (tag === undefined) return undefined
    const field = Math.floor(tag.value / 8)
    const wireType = tag.value % 8
    let end: number
    if (wireType === 0) {
      const v = varint(buf, tag.end)
      if (v === undefined) return undefined
      if (field === UPDATED_FIELD) parsed.updated = v.value
      end = v.end
    } else if (wireType === 1 || wireType === 5) {
      end = tag.end + (wireType === 1 ? 8 : 4)
    } else if (wireType === 2) {
      const len = varint(buf, tag.end)
      if (len === undefined) return undefined
      end = len.end + len.value
    } else {
      return undefined
    }
    if (end > buf.length) return undefined
    if (field !== UPDATED_FIELD) parsed.rest.push(buf.subarray(pos, end))
    pos = end
  }
  return parsed
}

function sameFields (a: Uint8Array[], b: Uint8Array[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i]
    const y = b[i]
    if (x.length !== y.length) return false
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return false
  }
  return true
}

/** Whether writing `next` over `stored` would change nothing but a fresh-enough `updated` time. */
export function onlyTimestampChanged (stored: Uint8Array, next: Uint8Array, refreshMs: number = REFRESH_MS): boolean {
  const a = parsePeerRecord(stored)
  const b = parsePeerRecord(next)
  if (a?.updated === undefined || b?.updated === undefined) return false
  const age = b.updated - a.updated
  return age >= 0 && age < refreshMs && sameFields(a.rest, b.rest)
}

/** Counts kept for tests and the benchmark's record (docs/benchmarks.md "Start-up and idle"). */
export interface PeerRecordWriteStats { written: number, skipped: number }

/** `inner`, but a peer record put that changes only its `updated` time (within `refreshMs`) is not written. */
export class SkipUnchangedPeerRecords implements Datastore {
  readonly stats: PeerRecordWriteStats = { written: 0, skipped: 0 }

  constructor (private readonly inner: Datastore, private readonly refreshMs: number = REFRESH_MS) {}

  async put (key: Key, val: Uint8Array, options?: AbortOptions): Promise<Key> {
    if (key.toString().startsWith(PEER_RECORD_PREFIX)) {
      // The peer store holds its per-peer write lock around its own read and this put
      // (@libp2p/peer-store dist/src/index.js), so no other write of this key runs in between.
      let stored: Uint8Array | undefined
      try {
        stored = await this.inner.get(key, options)
      } catch {
        stored = undefined
      }
      if (stored !== undefined && onlyTimestampChanged(stored, val, this.refreshMs)) {
        this.stats.skipped++
        return key
      }
      this.stats.written++
    }
    return await this.inner.put(key, val, options)
  }

  get (key: Key, options?: AbortOptions): Uint8Array | Promise<Uint8Array> { return this.inner.get(key, options) }
  has (key: Key, options?: AbortOptions): boolean | Promise<boolean> { return this.inner.has(key, options) }
  delete (key: Key, options?: AbortOptions): void | Promise<void> { return this.inner.delete(key, options) }
  putMany (source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): Generator<Key> | AsyncGenerator<Key> { return this.inner.putMany(source, options) }
  getMany (source: Iterable<Key> | AsyncIterable<Key>, options?: AbortOptions): Generator<Pair> | AsyncGenerator<Pair> { return this.inner.getMany(source, options) }
  deleteMany (source: Iterable<Key> | AsyncIterable<Key>, options?: AbortOptions): Generator<Key> | AsyncGenerator<Key> { return this.inner.deleteMany(source, options) }
  batch (): Batch { return this.inner.batch() }
  query (q: Query, options?: AbortOptions): Generator<Pair> | AsyncGenerator<Pair> { return this.inner.query(q, options) }
  queryKeys (q: KeyQuery, options?: AbortOptions): Generator<Key> | AsyncGenerator<Key> { return this.inner.queryKeys(q, options) }
}
