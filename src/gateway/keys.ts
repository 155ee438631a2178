// Access keys for the OpenAI-compatible gateway: who may call it, with which limits, and the USD balance
// requests are charged against. Money is integer micro-USD everywhere so sums never drift.
//
// Layout (sublevels of one LevelDB; see store.ts for the shared gateway.db):
//   keys         id -> KeyRecord (the balance lives in the record)
//   hashes       sha256(secret) -> id; the secret itself is never stored
//   reservations reservation id -> { keyId, microUsd }: money taken from a balance for work in progress,
//                kept on disk so a crash between reserve and settle refunds it at the next open()
//
// Every change of one key (reserve, settle, top-up, revoke) runs in a per-key queue, so concurrent
// requests cannot both spend the same balance; money changes are written with `sync` and in one batch.
import { createHash, randomBytes } from 'node:crypto'
import { Level } from 'level'
import { AicnError, ErrorCode } from '../core/errors.ts'

export interface KeyRecord {
  /** short public id, e.g. 'key_3f2a9c01d4e7' */
  id: string
  name: string
  /** sha256 hex of the secret */
  hash: string
  /** 'sk-aicn-' and the first 8 random characters of the secret, for display */
  prefix: string
  /** allow-list of model names; empty = all */
  models: string[]
  /** requests per minute, 0 = unlimited */
  rpm: number
  /** requests in flight, 0 = unlimited */
  concurrency: number
  /** requests (conversations) per UTC day, 0 = unlimited */
  daily: number
  /** null = not metered (no balance limit) */
  balanceMicroUsd: number | null
  revoked: boolean
  /** ISO 8601 */
  created: string
}

export interface CreateKeyOptions {
  name: string
  models?: string[]
  rpm?: number
  concurrency?: number
  daily?: number
  /** absent = not metered */
  balanceUsd?: number
}

export type ReserveResult = { ok: true, reservation: string } | { ok: false, balanceMicroUsd: number }

export const SECRET_PREFIX = 'sk-aicn-'
const SECRET_RANDOM_BYTES = 30 // 40 base64url characters
const DISPLAY_RANDOM_CHARS = 8
const ID_PREFIX = 'key_'
const RESERVATION_PREFIX = 'rsv_'
/** Longest Authorization value we bother to hash; anything longer is not one of our secrets. */
const MAX_SECRET_LENGTH = 256

interface Reservation { keyId: string, microUsd: number, created: string }

type GatewayLevel = Level<string, unknown>

export class KeyStore {
  private readonly db: GatewayLevel
  /** false when the database is shared (openGatewayDb): its owner opens and closes it */
  private readonly ownsDb: boolean
  private readonly keys
  private readonly hashes
  private readonly reservations
  private readonly queue = new KeyedQueue()

  /** `location` is a LevelDB folder, or an already created database to share (see store.ts). */
  constructor (location: string | GatewayLevel) {
    this.ownsDb = typeof location === 'string'
    this.db = typeof location === 'string' ? new Level<string, unknown>(location, { valueEncoding: 'json' }) : location
    this.keys = this.db.sublevel<string, KeyRecord>('keys', { valueEncoding: 'json' })
    this.hashes = this.db.sublevel<string, string>('hashes', { valueEncoding: 'utf8' })
    this.reservations = this.db.sublevel<string, Reservation>('reservations', { valueEncoding: 'json' })
  }

  async open (): Promise<void> {
    await this.db.open()
    await this.releaseReservations()
  }

  async close (): Promise<void> {
    if (this.ownsDb) await this.db.close()
  }

  async create (options: CreateKeyOptions): Promise<{ secret: string, record: KeyRecord }> {
    const record: Omit<KeyRecord, 'id' | 'hash' | 'prefix'> = {
      name: checkName(options.name),
      models: checkModels(options.models ?? []),
      rpm: checkLimit('rpm', options.rpm),
      concurrency: checkLimit('concurrency', options.concurrency),
      daily: checkLimit('daily', options.daily),
      balanceMicroUsd: options.balanceUsd === undefined ? null : usdToMicro(options.balanceUsd),
      revoked: false,
      created: new Date().toISOString()
    }
    const secret = SECRET_PREFIX + randomBytes(SECRET_RANDOM_BYTES).toString('base64url')
    const id = await this.unusedId()
    const full: KeyRecord = {
      id,
      ...record,
      hash: sha256(secret),
      prefix: secret.slice(0, SECRET_PREFIX.length + DISPLAY_RANDOM_CHARS)
    }
    await this.db.batch()
      .put(id, full, { sublevel: this.keys })
      .put(full.hash, id, { sublevel: this.hashes })
      .write({ sync: true })
    return { secret, record: full }
  }

  /** The key a secret belongs to, revoked ones included (the caller refuses those with 401). */
  async authenticate (secret: string): Promise<KeyRecord | undefined> {
    if (typeof secret !== 'string' || secret.length === 0 || secret.length > MAX_SECRET_LENGTH) return undefined
    const hash = sha256(secret)
    const id = await this.hashes.get(hash)
    if (id === undefined) return undefined
    const record = await this.keys.get(id)
    return record?.hash === hash ? record : undefined
  }

  /** By exact id or display prefix, or by an unambiguous start of either (for the CLI). Throws when
   * a partial value matches several keys, so an admin never revokes the wrong one. */
  async get (idOrPrefix: string): Promise<KeyRecord | undefined> {
    const wanted = idOrPrefix.trim()
    if (wanted === '') return undefined
    const direct = await this.keys.get(wanted)
    if (direct !== undefined) return direct
    const all = await this.list()
    const exact = all.filter((r) => r.prefix === wanted)
    if (exact.length === 1) return exact[0]
    const partial = all.filter((r) =>
      (wanted.length > ID_PREFIX.length && r.id.startsWith(wanted)) ||
      (wanted.length > SECRET_PREFIX.length && r.prefix.startsWith(wanted)))
    if (partial.length > 1) {
      throw new AicnError(ErrorCode.PARAM, `"${wanted}" matches several keys (${partial.map((r) => r.id).join(', ')}); give more characters`)
    }
    return partial[0]
  }

  /** All keys, oldest first. */
  async list (): Promise<KeyRecord[]> {
    const out = await this.keys.values().all()
    return out.sort((a, b) => a.created.localeCompare(b.created) || a.id.localeCompare(b.id))
  }

  /** Adds to the balance; a not-metered key becomes metered with exactly that balance. */
  async topup (id: string, usd: number): Promise<KeyRecord> {
    const amount = usdToMicro(usd)
    const keyId = await this.resolveId(id)
    return await this.queue.run(keyId, async () => {
      const record = await this.mustGet(keyId)
      const balance = (record.balanceMicroUsd ?? 0) + amount
      if (!Number.isSafeInteger(balance)) throw new AicnError(ErrorCode.PARAM, 'balance would be too large')
      const updated = { ...record, balanceMicroUsd: balance }
      await this.db.batch().put(keyId, updated, { sublevel: this.keys }).write({ sync: true })
      return updated
    })
  }

  /** Revoked keys stay stored (and authenticate) so usage and the reason for a 401 stay explainable. */
  async revoke (id: string): Promise<KeyRecord> {
    const keyId = await this.resolveId(id)
    return await this.queue.run(keyId, async () => {
      const record = await this.mustGet(keyId)
      if (record.revoked) return record
      const updated = { ...record, revoked: true }
      await this.db.batch().put(keyId, updated, { sublevel: this.keys }).write({ sync: true })
      return updated
    })
  }

  /** Takes an estimated cost from the balance before work starts; refuses when the balance cannot
   * cover it, or is already used up (≤ 0) even for a zero estimate. Keys that are not metered always
   * succeed with a reservation that settles to nothing. */
  async reserve (id: string, microUsd: number): Promise<ReserveResult> {
    const amount = checkMicro('reservation', microUsd)
    return await this.queue.run(id, async () => {
      const record = await this.mustGet(id)
      const reservation = RESERVATION_PREFIX + randomBytes(12).toString('hex')
      if (record.balanceMicroUsd === null) return { ok: true, reservation }
      if (record.balanceMicroUsd <= 0 || record.balanceMicroUsd < amount) return { ok: false, balanceMicroUsd: record.balanceMicroUsd }
      const entry: Reservation = { keyId: id, microUsd: amount, created: new Date().toISOString() }
      await this.db.batch()
        .put(id, { ...record, balanceMicroUsd: record.balanceMicroUsd - amount }, { sublevel: this.keys })
        .put(reservation, entry, { sublevel: this.reservations })
        .write({ sync: true })
      return { ok: true, reservation }
    })
  }

  /** Replaces the reserved amount with the actual cost, clamped to what was reserved: the reservation is
   * the request's worst case (src/gateway/billing.ts), so a model that reports more than that cannot take
   * the balance below zero, and concurrent requests can never spend more than the balance held. Settling
   * twice, or settling an unknown or not-metered reservation, does nothing. */
  async settle (reservation: string, actualMicroUsd: number): Promise<void> {
    // Whatever the caller computed, the reservation is released: a cost that is not a sane number counts as
    // the whole reservation (the clamp below), never as an error that would leave the money held.
    const actual = Number.isFinite(actualMicroUsd) && actualMicroUsd >= 0 ? Math.ceil(actualMicroUsd) : Number.MAX_SAFE_INTEGER
    const first = await this.reservations.get(reservation)
    if (first === undefined) return
    await this.queue.run(first.keyId, async () => {
      // Read again inside the queue: a concurrent settle of the same reservation may have won.
      const entry = await this.reservations.get(reservation)
      if (entry === undefined) return
      const batch = this.db.batch().del(reservation, { sublevel: this.reservations })
      const record = await this.keys.get(entry.keyId)
      if (record !== undefined && record.balanceMicroUsd !== null) {
        batch.put(record.id, { ...record, balanceMicroUsd: record.balanceMicroUsd + entry.microUsd - Math.min(actual, entry.microUsd) }, { sublevel: this.keys })
      }
      await batch.write({ sync: true })
    })
  }

  /** Refunds reservations left by a previous run that stopped before settling them: their requests
   * never finished here, so the user is not charged. */
  private async releaseReservations (): Promise<void> {
    const pending = await this.reservations.iterator().all()
    if (pending.length === 0) return
    const refunds = new Map<string, number>()
    for (const [, entry] of pending) refunds.set(entry.keyId, (refunds.get(entry.keyId) ?? 0) + entry.microUsd)
    const batch = this.db.batch()
    for (const [keyId, microUsd] of refunds) {
      const record = await this.keys.get(keyId)
      if (record?.balanceMicroUsd == null) continue
      batch.put(keyId, { ...record, balanceMicroUsd: record.balanceMicroUsd + microUsd }, { sublevel: this.keys })
    }
    for (const [reservation] of pending) batch.del(reservation, { sublevel: this.reservations })
    await batch.write({ sync: true })
  }

  private async resolveId (idOrPrefix: string): Promise<string> {
    const record = await this.get(idOrPrefix)
    if (record === undefined) throw unknownKey(idOrPrefix)
    return record.id
  }

  private async mustGet (id: string): Promise<KeyRecord> {
    const record = await this.keys.get(id)
    if (record === undefined) throw unknownKey(id)
    return record
  }

  private async unusedId (): Promise<string> {
    for (;;) {
      const id = ID_PREFIX + randomBytes(6).toString('hex')
      if (await this.keys.get(id) === undefined) return id
    }
  }
}

/** Runs tasks one after another per key, and tasks for different keys in parallel. */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>()

  async run<T> (key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve()
    let done!: () => void
    const current = new Promise<void>((resolve) => { done = resolve })
    const tail = previous.then(async () => await current)
    this.tails.set(key, tail)
    await previous
    try {
      return await task()
    } finally {
      done()
      // Forget idle keys so the map does not grow with every key ever used.
      if (this.tails.get(key) === tail) this.tails.delete(key)
    }
  }
}

function sha256 (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

function unknownKey (id: string): AicnError {
  return new AicnError(ErrorCode.PARAM, `no access key "${id}"`, { status: 404 })
}

function usdToMicro (usd: number): number {
  if (typeof usd !== 'number' || !Number.isFinite(usd) || usd < 0) {
    throw new AicnError(ErrorCode.PARAM, `amount must be a non-negative number of USD, got ${String(usd)}`)
  }
  const micro = Math.round(usd * 1_000_000)
  if (!Number.isSafeInteger(micro)) throw new AicnError(ErrorCode.PARAM, `amount too large: ${usd} USD`)
  return micro
}

/** Costs arrive from our own code; round fractions up rather than reject them, refuse nonsense. */
function checkMicro (what: string, microUsd: number): number {
  if (typeof microUsd !== 'number' || !Number.isFinite(microUsd) || microUsd < 0 || microUsd > Number.MAX_SAFE_INTEGER) {
    throw new AicnError(ErrorCode.PARAM, `${what} must be a non-negative number of micro-USD, got ${String(microUsd)}`)
  }
  return Math.ceil(microUsd)
}

function checkName (name: string): string {
  const trimmed = typeof name === 'string' ? name.trim() : ''
  if (trimmed === '' || trimmed.length > 200) throw new AicnError(ErrorCode.PARAM, 'a key needs a name of 1 to 200 characters')
  return trimmed
}

function checkModels (models: string[]): string[] {
  if (!Array.isArray(models) || models.some((m) => typeof m !== 'string' || m.trim() === '')) {
    throw new AicnError(ErrorCode.PARAM, 'models must be a list of model names')
  }
  return [...new Set(models.map((m) => m.trim()))]
}

function checkLimit (name: string, value: number | undefined): number {
  if (value === undefined) return 0
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new AicnError(ErrorCode.PARAM, `${name} must be a whole number ≥ 0 (0 = unlimited), got ${String(value)}`)
  }
  return value
}
