// LevelDB persistence of the network view, so a restarted node starts with a warm view instead of an
// empty one for a whole heartbeat interval, when it
// could route no job. Key = node id, value = the NodeEntry as
// JSON. Writes are write-behind: the view never waits for the disk. Each node has at most one pending
// operation (a newer heartbeat replaces the pending one), and all pending operations go to the disk in
// one batch, so a burst of busy-counter heartbeats costs one write per node, not one per heartbeat.
import { Level } from 'level'
import type { Logger } from '../core/logger.ts'
import type { NodeEntry } from './view-types.ts'

/** A record as read from the disk: `value` is undefined when it is not valid JSON. */
export interface StoredRecord { key: string, value: unknown }

export interface StoreStats { batches: number, puts: number, dels: number, failures: number }

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed' | 'failed'

export class ViewStore {
  readonly stats: StoreStats = { batches: 0, puts: 0, dels: 0, failures: 0 }
  private readonly db: Level<string, NodeEntry>
  private readonly log: Logger
  private state: State = 'new'
  /** node id → the entry to write, or null to delete it */
  private pending = new Map<string, NodeEntry | null>()
  private flushing?: Promise<void>

  constructor (path: string, log: Logger) {
    this.db = new Level<string, NodeEntry>(path, { valueEncoding: 'json' })
    this.log = log
  }

  /**
   * Opens the database and returns every record in it. Writes scheduled before this are kept and go to
   * the disk afterwards; the first batch is only started from a later macrotask (see `drain`), so the
   * caller can merge the records synchronously after awaiting this and still see them as pending.
   */
  async open (): Promise<StoredRecord[]> {
    if (this.state !== 'new') throw new Error(`view store cannot be opened when ${this.state}`)
    this.state = 'opening'
    const records: StoredRecord[] = []
    try {
      await this.db.open()
      // Read raw strings: a record that is not JSON must be skippable, not break the whole iteration.
      for await (const [key, raw] of this.db.iterator<string, string>({ valueEncoding: 'utf8' })) {
        records.push({ key, value: parseJson(raw) })
      }
    } catch (err) {
      this.state = 'failed'
      this.pending.clear()
      await this.db.close().catch(() => {})
      throw err
    }
    this.state = 'open'
    this.kick()
    return records
  }

  /** Schedules writing the entry (replacing any pending operation for that node). */
  put (entry: NodeEntry): void {
    this.schedule(entry.nodeId, entry)
  }

  /** Schedules deleting the node's record. */
  del (nodeId: string): void {
    this.schedule(nodeId, null)
  }

  isPending (nodeId: string): boolean {
    return this.pending.has(nodeId)
  }

  /** Writes everything still pending, then closes the database. Safe to call more than once. */
  async close (): Promise<void> {
    if (this.state === 'new' || this.state === 'failed') {
      this.state = 'closed'
      this.pending.clear()
      return
    }
    if (this.state === 'closing' || this.state === 'closed') return
    this.state = 'closing'
    while (this.flushing !== undefined || this.pending.size > 0) {
      this.flushing ??= this.drain()
      await this.flushing
    }
    await this.db.close().catch((err: Error) => { this.log.warn({ err: err.message }, 'closing the network view database failed') })
    this.state = 'closed'
  }

  private schedule (nodeId: string, value: NodeEntry | null): void {
    // After close (or a failed open) the view carries on in memory only.
    if (this.state === 'closed' || this.state === 'failed') return
    this.pending.set(nodeId, value)
    this.kick()
  }

  private kick (): void {
    if (this.state === 'open' && this.flushing === undefined && this.pending.size > 0) this.flushing = this.drain()
  }

  /** Writes pending operations in batches until none are left. Never rejects: failures are logged. */
  private async drain (): Promise<void> {
    // Let the current burst of synchronous updates finish first, so they coalesce into one batch.
    await new Promise<void>((resolve) => { setImmediate(resolve) })
    try {
      while (this.pending.size > 0 && (this.state === 'open' || this.state === 'closing')) {
        const batch = this.pending
        this.pending = new Map()
        const ops = [...batch].map(([key, value]) => value === null
          ? { type: 'del' as const, key }
          : { type: 'put' as const, key, value })
        try {
          await this.db.batch(ops)
          this.stats.batches++
          for (const op of ops) {
            if (op.type === 'put') this.stats.puts++
            else this.stats.dels++
          }
        } catch (err) {
          // Not retried: the node's next heartbeat writes its entry again.
          this.stats.failures++
          this.log.warn({ err: (err as Error).message, operations: ops.length }, 'writing the network view to disk failed')
        }
      }
    } finally {
      this.flushing = undefined
    }
  }
}

function parseJson (raw: string): unknown {
  try {
    return JSON.parse(raw)
  } catch {
    return undefined
  }
}
