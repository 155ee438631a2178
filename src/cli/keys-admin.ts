// `aicn keys …`: manage the gateway's access keys. When the node is running, its admin API does the work
// (the daemon holds the database lock); otherwise the database is opened directly.
import { join } from 'node:path'
import { UsageError } from '../core/errors.ts'
import { loadConfig } from '../config/index.ts'
import { openGatewayDb } from '../gateway/store.ts'
import { describeKey } from '../api/routes/keys.ts'
import { adminCall } from './client.ts'
import type { Output } from './daemon.ts'
import { table } from './table.ts'

export type KeysCommand =
  | { action: 'create', name: string, models?: string[], rpm?: number, concurrency?: number, daily?: number, balanceUsd?: number }
  | { action: 'list' }
  | { action: 'topup', id: string, usd: number }
  | { action: 'revoke', id: string }
  | { action: 'usage', id?: string }

const PATHS: Record<KeysCommand['action'], string> = {
  create: '/api/v0/keys/create',
  list: '/api/v0/keys/list',
  topup: '/api/v0/keys/topup',
  revoke: '/api/v0/keys/revoke',
  usage: '/api/v0/usage'
}

interface KeyView { id: string, name: string, prefix: string, models: string[], rpm: number, concurrency: number, daily: number, balanceUsd: number | null, revoked: boolean, created: string }
interface UsageRow { keyId: string, model: string, requests: number, promptTokens: number, completionTokens: number, costMicroUsd: number }

export async function runKeys (configPath: string, command: KeysCommand, out: Output, options: { json?: boolean } = {}): Promise<void> {
  // A running node holds the database: its admin API does the work (src/cli/client.ts); else offline.
  const result = (await adminCall(configPath, PATHS[command.action], requestBody(command)))?.data ?? await offline(configPath, command)
  if (command.action === 'create') {
    const created = result as { secret: string, key: { id: string } }
    out.line(`Created key ${created.key.id}. Its secret is shown only this once:`)
    out.line(created.secret)
    return
  }
  if (command.action === 'list') {
    // One balance, in USD (the API also carries balanceMicroUsd, its exact integer).
    const keys = (result as Array<KeyView & { balanceMicroUsd?: unknown }>).map(({ balanceMicroUsd: _micro, ...key }) => key)
    if (options.json === true) { out.line(JSON.stringify(keys, null, 2)); return }
    if (keys.length === 0) { out.line('No keys yet; "aicn keys create --name NAME" makes one.'); return }
    const limit = (n: number): string => n === 0 ? '-' : String(n)
    for (const line of table(['ID', 'NAME', 'PREFIX', 'BALANCE', 'RPM', 'AT ONCE', 'DAILY', 'MODELS', 'STATE', 'CREATED'],
      keys.map((k) => [k.id, k.name, k.prefix, k.balanceUsd === null ? 'unmetered' : `$${k.balanceUsd.toFixed(6).replace(/0{1,4}$/, '')}`, limit(k.rpm), limit(k.concurrency), limit(k.daily), k.models.length === 0 ? 'all' : k.models.join(','), k.revoked ? 'revoked' : 'active', k.created.slice(0, 19).replace('T', ' ')]))) out.line(line)
    return
  }
  if (command.action === 'usage') {
    const rows = result as UsageRow[]
    if (options.json === true) { out.line(JSON.stringify(rows, null, 2)); return }
    if (rows.length === 0) { out.line('No usage recorded yet.'); return }
    for (const line of table(['KEY', 'MODEL', 'REQUESTS', 'TOKENS IN', 'TOKENS OUT', 'COST'],
      rows.map((r) => [r.keyId === '' ? '(no key)' : r.keyId, r.model, r.requests, r.promptTokens, r.completionTokens, `$${(r.costMicroUsd / 1e6).toFixed(6)}`]))) out.line(line)
    return
  }
  out.line(JSON.stringify(result, null, 2))
}

function requestBody (command: KeysCommand): Record<string, unknown> {
  switch (command.action) {
    case 'create': return { name: command.name, models: command.models, rpm: command.rpm, concurrency: command.concurrency, daily: command.daily, balance_usd: command.balanceUsd }
    case 'topup': return { id: command.id, usd: command.usd }
    case 'revoke': return { id: command.id }
    case 'usage': return command.id === undefined ? {} : { id: command.id }
    case 'list': return {}
  }
}

async function offline (configPath: string, command: KeysCommand): Promise<unknown> {
  const config = await loadConfig(configPath)
  const db = await openGatewayDb(join(config.App.Datastore, 'gateway.db'))
  try {
    const find = async (id: string): Promise<string> => {
      const key = await db.keys.get(id)
      if (key === undefined) throw new UsageError(`no key "${id}"; "aicn keys list" shows them`)
      return key.id
    }
    switch (command.action) {
      case 'create': {
        const created = await db.keys.create(command)
        return { secret: created.secret, key: describeKey(created.record) }
      }
      case 'list': return (await db.keys.list()).map(describeKey)
      case 'topup': return describeKey(await db.keys.topup(await find(command.id), command.usd))
      case 'revoke': return describeKey(await db.keys.revoke(await find(command.id)))
      case 'usage': return await db.usage.summary({ keyId: command.id === undefined ? undefined : await find(command.id) })
    }
  } finally {
    await db.close()
  }
}
