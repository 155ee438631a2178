// `aicn keys …`: manage the gateway's access keys. When the node is running, its admin API does the work
// (the daemon holds the database lock); otherwise the database is opened directly.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { UsageError } from '../errors.ts'
import { loadConfig } from '../config/index.ts'
import { openGatewayDb } from '../gateway/store.ts'
import { describeKey } from '../http/routes/keys.ts'
import { apiFilePath } from './paths.ts'
import type { Output } from './daemon.ts'

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

export async function runKeys (configPath: string, command: KeysCommand, out: Output): Promise<void> {
  const result = await viaDaemon(configPath, command) ?? await offline(configPath, command)
  if (command.action === 'create') {
    const created = result as { secret: string, key: { id: string } }
    out.line(`Created key ${created.key.id}. Its secret is shown only this once:`)
    out.line(created.secret)
    return
  }
  out.line(JSON.stringify(result, null, 2))
}

/** The running daemon's answer, or undefined when no daemon runs for this config. */
async function viaDaemon (configPath: string, command: KeysCommand): Promise<unknown> {
  let api: string
  try {
    api = (await readFile(apiFilePath(configPath), 'utf8')).trim()
  } catch {
    return undefined
  }
  let response: Response
  try {
    response = await fetch(api + PATHS[command.action], {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(requestBody(command)),
      signal: AbortSignal.timeout(10_000)
    })
  } catch {
    return undefined // a stale api file from a node that is not running
  }
  const body = await response.json() as { code: number, message: string, data?: unknown }
  if (body.code !== 0) throw new UsageError(body.message)
  return body.data
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
