// The gateway's one LevelDB folder, `<datastore>/gateway.db`, opened once by the node. Its sublevels:
//   keys, hashes, reservations   KeyStore (keys.ts)
//   usage                        UsageLog (usage.ts)
//   daily                        per-key request counts of a UTC day, for the Limiter (limits.ts)
// One folder means one lock, and lets a key's balance and its reservation change in one atomic batch.
import { Level } from 'level'
import { KeyStore } from './keys.ts'
import { UsageLog } from './usage.ts'
import type { DailyStore } from './limits.ts'

export interface GatewayDb {
  keys: KeyStore
  usage: UsageLog
  dailyStore: DailyStore
  close: () => Promise<void>
}

export async function openGatewayDb (path: string): Promise<GatewayDb> {
  const db = new Level<string, unknown>(path, { valueEncoding: 'json' })
  await db.open()
  try {
    const keys = new KeyStore(db)
    await keys.open() // refunds reservations a previous run left unsettled
    const usage = new UsageLog(db)
    await usage.open()
    return { keys, usage, dailyStore: levelDailyStore(db), close: async () => await db.close() }
  } catch (err) {
    await db.close().catch(() => {})
    throw err
  }
}

/** Counts under '<keyId>!<YYYY-MM-DD>'. The first save of a day deletes the key's earlier days, so
 * the sublevel holds about one entry per key. */
export function levelDailyStore (db: Level<string, unknown>): DailyStore {
  const daily = db.sublevel<string, number>('daily', { valueEncoding: 'json' })
  return {
    async load (keyId, day) {
      const count = await daily.get(`${keyId}!${day}`)
      return typeof count === 'number' ? count : 0
    },
    async save (keyId, day, count) {
      await daily.put(`${keyId}!${day}`, count)
      if (count === 1) await daily.clear({ gte: `${keyId}!`, lt: `${keyId}!${day}` })
    }
  }
}
