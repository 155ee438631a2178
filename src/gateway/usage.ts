// The gateway's usage log: one record per request, for summaries ("what did key X spend on which
// model since Monday") and the most recent requests. Balances are not derived from it (keys.ts holds
// them), so its writes are not synced.
//
// Layout (sublevel 'usage' of gateway.db, see store.ts): two entries per record, with keys that sort
// by time so every query is a bounded range scan instead of a full scan:
//   usage!time  '<ISO time>!<seq>'          -> UsageRecord
//   usage!key   '<keyId>!<ISO time>!<seq>'  -> UsageRecord   (keyId '' for keyless requests)
import { randomBytes } from 'node:crypto'
import { Level } from 'level'
import { AicnError, ErrorCode } from '../core/errors.ts'

export interface UsageRecord {
  /** ISO 8601 */
  time: string
  /** '' for keyless requests */
  keyId: string
  project: string
  model: string
  node: string
  promptTokens: number
  completionTokens: number
  costMicroUsd: number
  status: number
  endpoint: string
}

export interface UsageSummary {
  keyId: string
  model: string
  requests: number
  promptTokens: number
  completionTokens: number
  costMicroUsd: number
}

export interface SummaryOptions {
  keyId?: string
  /** ISO 8601, inclusive */
  since?: string
  /** ISO 8601, exclusive */
  until?: string
}

const MAX_RECENT = 10_000
/** After '!' in ASCII: the end of a range of keys that start with 'x!'. */
const AFTER_SEPARATOR = '"'

type GatewayLevel = Level<string, unknown>

export class UsageLog {
  private readonly db: GatewayLevel
  private readonly ownsDb: boolean
  private readonly byTime
  private readonly byKey
  /** orders records written in the same millisecond; the random part keeps a restart's keys apart */
  private seq = 0
  private readonly run = randomBytes(3).toString('hex')

  /** `location` is a LevelDB folder, or an already created database to share (see store.ts). */
  constructor (location: string | GatewayLevel) {
    this.ownsDb = typeof location === 'string'
    this.db = typeof location === 'string' ? new Level<string, unknown>(location, { valueEncoding: 'json' }) : location
    this.byTime = this.db.sublevel<string, UsageRecord>(['usage', 'time'], { valueEncoding: 'json' })
    this.byKey = this.db.sublevel<string, UsageRecord>(['usage', 'key'], { valueEncoding: 'json' })
  }

  async open (): Promise<void> {
    await this.db.open()
  }

  async close (): Promise<void> {
    if (this.ownsDb) await this.db.close()
  }

  async record (r: UsageRecord): Promise<void> {
    const record = normalize(r)
    const suffix = `${record.time}!${(this.seq++).toString(36).padStart(8, '0')}${this.run}`
    await this.db.batch()
      .put(suffix, record, { sublevel: this.byTime })
      .put(`${record.keyId}!${suffix}`, record, { sublevel: this.byKey })
      .write()
  }

  /** Totals per key and model, sorted by key then model. */
  async summary (options: SummaryOptions = {}): Promise<UsageSummary[]> {
    const totals = new Map<string, UsageSummary>()
    for await (const [, r] of this.scan(options, false)) {
      const id = `${r.keyId}\u0000${r.model}`
      let total = totals.get(id)
      if (total === undefined) {
        total = { keyId: r.keyId, model: r.model, requests: 0, promptTokens: 0, completionTokens: 0, costMicroUsd: 0 }
        totals.set(id, total)
      }
      total.requests++
      total.promptTokens += r.promptTokens
      total.completionTokens += r.completionTokens
      total.costMicroUsd += r.costMicroUsd
    }
    return [...totals.values()].sort((a, b) => a.keyId.localeCompare(b.keyId) || a.model.localeCompare(b.model))
  }

  /** The newest records first, at most `limit` (capped at 10,000). */
  async recent (limit: number, keyId?: string): Promise<UsageRecord[]> {
    const n = Math.min(MAX_RECENT, Math.max(0, Math.floor(Number.isFinite(limit) ? limit : 0)))
    if (n === 0) return []
    const entries = await this.scan({ keyId }, true, n).all()
    return entries.map(([, r]) => r)
  }

  /** Deletes records older than `before` (ISO 8601); returns how many. The log is otherwise unbounded. */
  async prune (before: string): Promise<number> {
    const end = isoOf('before', before)
    let removed = 0
    for (;;) {
      const entries = await this.byTime.iterator({ lt: end, limit: 1000 }).all()
      if (entries.length === 0) return removed
      const batch = this.db.batch()
      for (const [suffix, r] of entries) {
        batch.del(suffix, { sublevel: this.byTime })
        batch.del(`${r.keyId}!${suffix}`, { sublevel: this.byKey })
      }
      await batch.write()
      removed += entries.length
    }
  }

  private scan (options: SummaryOptions, reverse: boolean, limit?: number) {
    const since = options.since === undefined ? undefined : isoOf('since', options.since)
    const until = options.until === undefined ? undefined : isoOf('until', options.until)
    // Range options must be absent rather than undefined: level would encode undefined as a key.
    const common = { reverse, ...(limit === undefined ? {} : { limit }) }
    if (options.keyId === undefined) {
      return this.byTime.iterator({ ...common, ...(since === undefined ? {} : { gte: since }), ...(until === undefined ? {} : { lt: until }) })
    }
    const prefix = `${options.keyId}!`
    return this.byKey.iterator({
      ...common,
      gte: prefix + (since ?? ''),
      lt: until === undefined ? `${options.keyId}${AFTER_SEPARATOR}` : prefix + until
    })
  }
}

/** Stores the time in toISOString() form, whatever ISO form it came in, so keys sort by time. */
function normalize (r: UsageRecord): UsageRecord {
  if (typeof r.keyId !== 'string' || r.keyId.includes('!')) throw new AicnError(ErrorCode.PARAM, `bad key id in a usage record: ${String(r.keyId)}`)
  return {
    time: isoOf('time', r.time),
    keyId: r.keyId,
    project: String(r.project ?? ''),
    model: String(r.model ?? ''),
    node: String(r.node ?? ''),
    promptTokens: count(r.promptTokens),
    completionTokens: count(r.completionTokens),
    costMicroUsd: count(r.costMicroUsd),
    status: Number.isInteger(r.status) ? r.status : 0,
    endpoint: String(r.endpoint ?? '')
  }
}

function count (n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.ceil(n) : 0
}

function isoOf (what: string, time: string): string {
  const ms = Date.parse(time)
  if (typeof time !== 'string' || Number.isNaN(ms)) throw new AicnError(ErrorCode.PARAM, `${what}: not an ISO 8601 time: ${String(time)}`)
  return new Date(ms).toISOString()
}
