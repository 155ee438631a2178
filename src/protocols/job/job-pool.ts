// Idle /aicn/job/1.1.0 streams, per peer, kept for the next job to the same node: opening a libp2p stream
// (yamux SYN, multistream-select, a peer-store update on both sides, and the close later) costs about as
// much CPU as a small job itself.
import type { Stream } from '@libp2p/interface'
import type { FrameReader } from './job-frames.ts'

/** A job stream with its reader, which stays attached between jobs. */
export interface Channel {
  readonly stream: Stream
  readonly reader: FrameReader
}

interface Parked { channel: Channel, since: number, onClose: () => void }

export interface StreamPoolOptions {
  /** idle streams kept per peer (more are closed) */
  maxIdlePerPeer?: number
  /** an idle stream is closed after this long (the worker's own limit is 5 minutes) */
  idleMs?: number
}

export class StreamPool {
  /** per peer, oldest first; take() uses the newest, so that few streams stay busy and the rest expire */
  private readonly idle = new Map<string, Parked[]>()
  private readonly maxIdlePerPeer: number
  private readonly idleMs: number
  private timer?: NodeJS.Timeout

  constructor (options: StreamPoolOptions = {}) {
    this.maxIdlePerPeer = options.maxIdlePerPeer ?? 32
    this.idleMs = options.idleMs ?? 30_000
  }

  /** An idle stream to `peer` that is still usable, if there is one. */
  take (peer: string): Channel | undefined {
    const parked = this.idle.get(peer)
    if (parked === undefined) return undefined
    let found: Channel | undefined
    while (found === undefined && parked.length > 0) {
      const entry = parked.pop() as Parked
      entry.channel.stream.removeEventListener('close', entry.onClose)
      if (entry.channel.reader.isIdle()) found = entry.channel
      else retire(entry.channel)
    }
    if (parked.length === 0) this.idle.delete(peer)
    return found
  }

  /** Keeps a stream whose job is over for the next job to `peer`, or closes it. */
  put (peer: string, channel: Channel): void {
    let parked = this.idle.get(peer)
    if (parked === undefined) {
      parked = []
      this.idle.set(peer, parked)
    }
    if (parked.length >= this.maxIdlePerPeer || !channel.reader.isIdle()) {
      retire(channel)
      return
    }
    // A stream that closes while it waits (its connection went, the worker reset it) leaves at once.
    const entry: Parked = { channel, since: Date.now(), onClose: () => { this.remove(peer, entry) } }
    channel.stream.addEventListener('close', entry.onClose, { once: true })
    parked.push(entry)
    this.timer ??= setInterval(() => { this.sweep() }, Math.max(1_000, this.idleMs / 3)).unref()
  }

  /** How many idle streams there are, all peers together. */
  get size (): number {
    let size = 0
    for (const parked of this.idle.values()) size += parked.length
    return size
  }

  /** Closes every idle stream (the node stops). */
  closeAll (): void {
    for (const parked of this.idle.values()) for (const entry of parked) this.retire(entry)
    this.idle.clear()
    clearInterval(this.timer)
    this.timer = undefined
  }

  private sweep (): void {
    const cutoff = Date.now() - this.idleMs
    for (const [peer, parked] of this.idle) {
      const firstKept = parked.findIndex(({ since, channel }) => since > cutoff && channel.reader.isIdle())
      const gone = firstKept === -1 ? parked.splice(0) : parked.splice(0, firstKept)
      for (const entry of gone) this.retire(entry)
      if (parked.length === 0) this.idle.delete(peer)
    }
    if (this.idle.size === 0) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  private remove (peer: string, entry: Parked): void {
    const parked = this.idle.get(peer)
    const index = parked?.indexOf(entry) ?? -1
    if (parked === undefined || index === -1) return
    parked.splice(index, 1)
    if (parked.length === 0) this.idle.delete(peer)
    entry.channel.reader.dispose()
  }

  private retire (entry: Parked): void {
    entry.channel.stream.removeEventListener('close', entry.onClose)
    retire(entry.channel)
  }
}

/** Closes our side; the worker, reading the end of the stream between jobs, closes its side too. */
function retire ({ stream, reader }: Channel): void {
  reader.dispose()
  if (stream.status !== 'open') return
  stream.close().catch((err: Error) => { stream.abort(err) })
}
