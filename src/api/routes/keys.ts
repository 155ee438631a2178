// Admin endpoints for the gateway's access keys and usage (`/api/v0/keys/*`, `/api/v0/usage`). They are
// admin routes (src/api/access.ts): whoever can reach the API from elsewhere must not mint keys.
import { AicnError, ErrorCode } from '../../core/errors.ts'
import type { KeyRecord, KeyStore } from '../../gateway/keys.ts'
import type { UsageLog } from '../../gateway/usage.ts'
import { ok, type Reply } from '../../web/reply.ts'
import type { Route, RouteContext } from '../../web/route.ts'

/** What an admin sees of a key: never the hash. */
export function describeKey (key: KeyRecord): Omit<KeyRecord, 'hash'> & { balanceUsd: number | null } {
  const { hash: _hash, ...rest } = key
  return { ...rest, balanceUsd: key.balanceMicroUsd === null ? null : key.balanceMicroUsd / 1e6 }
}

export function keyRoutes (keys: KeyStore, usage: UsageLog): Route[] {
  const route = (path: string, methods: Array<'GET' | 'POST'>, handler: (rc: RouteContext) => Promise<Reply>): Route => ({ path: `/api/v0${path}`, methods, handler, access: 'admin' })
  const id = (rc: RouteContext): string => rc.params.string('id', { required: true })
  const found = async (idOrPrefix: string): Promise<KeyRecord> => {
    const key = await keys.get(idOrPrefix)
    if (key === undefined) throw new AicnError(ErrorCode.PARAM, `no key "${idOrPrefix}"`, { status: 404 })
    return key
  }
  const optionalInt = (rc: RouteContext, name: string): number | undefined => rc.params.has(name) ? rc.params.int(name, { min: 0 }) : undefined
  return [
    route('/keys/create', ['POST'], async (rc) => {
      const models = rc.params.raw('models')
      if (models !== undefined && (!Array.isArray(models) || !models.every((m) => typeof m === 'string'))) throw new AicnError(ErrorCode.PARAM, 'models must be a list of model names')
      const balance = rc.params.raw('balance_usd')
      if (balance !== undefined && (typeof balance !== 'number' || !(balance >= 0))) throw new AicnError(ErrorCode.PARAM, 'balance_usd must be a number ≥ 0')
      const created = await keys.create({
        name: rc.params.string('name', { required: true, maxLength: 128 }),
        models: models as string[] | undefined,
        rpm: optionalInt(rc, 'rpm'),
        concurrency: optionalInt(rc, 'concurrency'),
        daily: optionalInt(rc, 'daily'),
        balanceUsd: balance as number | undefined
      })
      return ok({ secret: created.secret, key: describeKey(created.record) })
    }),
    route('/keys/list', ['GET', 'POST'], async () => ok((await keys.list()).map(describeKey))),
    route('/keys/topup', ['POST'], async (rc) => {
      const usd = rc.params.raw('usd')
      if (typeof usd !== 'number' || !(usd > 0)) throw new AicnError(ErrorCode.PARAM, 'usd must be a number > 0')
      return ok(describeKey(await keys.topup((await found(id(rc))).id, usd)))
    }),
    route('/keys/revoke', ['POST'], async (rc) => ok(describeKey(await keys.revoke((await found(id(rc))).id)))),
    route('/usage', ['GET', 'POST'], async (rc) => {
      const keyId = rc.params.optionalString('id')
      const resolved = keyId === undefined || keyId === '' ? undefined : (await found(keyId)).id
      return ok(await usage.summary({ keyId: resolved, since: rc.params.optionalString('since') }))
    })
  ]
}
