// Connection history (the Go node's conns.db): every peer we were connected to, with addresses it can
// be dialled on, so a restarted node finds its network again without waiting for the DHT. Unlike the Go
// node we store the peer's identified listen addresses (never the ephemeral port of an inbound
// connection), and a failed redial of an unknown record can never write an empty address.
import { Level } from 'level'
import type { Logger } from '../core/logger.ts'

export interface HistoryRecord {
  /** dialable multiaddrs without the /p2p suffix, best first */
  Addresses: string[]
  /** Unix seconds of the last successful connection */
  LastConnectTime: number
  ConsecutiveFailures: number
}

/** After this many failed redials in a row, a record older than MAX_AGE_SECONDS is forgotten. */
export const MAX_FAILURES = 10
export const MAX_AGE_SECONDS = 30 * 24 * 3600

export class ConnectionHistory {
  private readonly db: Level<string, HistoryRecord>
  private readonly log: Logger

  constructor (path: string, log: Logger) {
    this.db = new Level<string, HistoryRecord>(path, { valueEncoding: 'json' })
    this.log = log
  }

  async open (): Promise<void> {
    await this.db.open()
  }

  async close (): Promise<void> {
    await this.db.close()
  }

  /** Records a successful connection; addresses that are empty leave the stored ones in place. */
  async connected (peerId: string, addresses: string[], now = Date.now()): Promise<void> {
    const previous = await this.get(peerId)
    const merged = addresses.length > 0 ? dedupe(addresses) : previous?.Addresses ?? []
    if (merged.length === 0) return
    await this.db.put(peerId, { Addresses: merged, LastConnectTime: Math.floor(now / 1000), ConsecutiveFailures: 0 })
  }

  /** Counts a failed redial; forgets the peer after MAX_FAILURES when it was last seen long ago. */
  async failed (peerId: string, now = Date.now()): Promise<'kept' | 'forgotten'> {
    const record = await this.get(peerId)
    if (record == null) return 'forgotten'
    const failures = record.ConsecutiveFailures + 1
    const age = Math.floor(now / 1000) - record.LastConnectTime
    if (failures >= MAX_FAILURES && age > MAX_AGE_SECONDS) {
      await this.db.del(peerId)
      return 'forgotten'
    }
    await this.db.put(peerId, { ...record, ConsecutiveFailures: Math.min(failures, MAX_FAILURES) })
    return 'kept'
  }

  async get (peerId: string): Promise<HistoryRecord | undefined> {
    return await this.db.get(peerId)
  }

  async entries (): Promise<Array<[string, HistoryRecord]>> {
    const out: Array<[string, HistoryRecord]> = []
    for await (const [key, value] of this.db.iterator()) {
      if (isValidRecord(value)) out.push([key, value])
      else this.log.warn({ peer: key }, 'ignoring a malformed connection history record')
    }
    return out
  }
}

function dedupe (addresses: string[]): string[] {
  return [...new Set(addresses)]
}

function isValidRecord (value: unknown): value is HistoryRecord {
  const r = value as HistoryRecord
  return r != null && Array.isArray(r.Addresses) && r.Addresses.every((a) => typeof a === 'string') &&
    typeof r.LastConnectTime === 'number' && typeof r.ConsecutiveFailures === 'number'
}
