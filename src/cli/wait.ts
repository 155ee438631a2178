// `aicn wait` and `aicn daemon --background`: scripts (and the README's blocks, pasted whole) need the
// node ready before their next line. Ready means what `Daemon is ready` means: the daemon wrote its
// `api` file (src/cli/daemon.ts) and the API answers. Polls every 100 ms until a deadline.
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { readFile, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { UsageError } from '../errors.ts'
import { callApi, daemonUrl } from './client.ts'
import type { Output } from './daemon.ts'
import { apiFilePath } from './paths.ts'

export interface Ready { api: string, web: string }

/** Resolves when the node of `configPath` answers; `since`: ignore an api file older than this (ms since
 * epoch); `exited`: stop waiting when the daemon we started is gone. */
export async function waitReady (configPath: string, timeoutMs: number, options: { since?: number, exited?: () => boolean } = {}): Promise<Ready> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (options.exited?.() === true) throw new UsageError('the daemon exited before it was ready')
    const api = await daemonUrl(configPath)
    const mtime = api === undefined ? undefined : (await stat(apiFilePath(configPath)).catch(() => undefined))?.mtimeMs
    const fresh = options.since === undefined || (mtime !== undefined && mtime >= options.since - 1000)
    if (api !== undefined && fresh) {
      // Ready is what the daemon's clients need: the API answers. The web URL is a courtesy (admin only).
      const id = await callApi(api, '/api/v0/id', undefined, 2_000).catch(() => undefined)
      // While the node starts, its early listener answers the id without protocols (src/http/early.ts).
      const protocols = (id?.body as { protocols?: unknown } | undefined)?.protocols
      if (id?.status === 200 && Array.isArray(protocols) && protocols.length > 0) {
        const overview = await callApi(api, '/api/v0/node/overview', undefined, 2_000).catch(() => undefined)
        const body = overview?.body as { data?: { listeners?: { web?: string } } } | undefined
        return { api, web: body?.data?.listeners?.web ?? '' }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new UsageError(`the node of ${configPath} was not ready within ${Math.round(timeoutMs / 1000)} s`)
}

export async function runWait (configPath: string, timeoutMs: number, out: Output): Promise<void> {
  const ready = await waitReady(configPath, timeoutMs)
  out.line(`Ready: ${ready.api}${ready.web === '' ? '' : ` (web ${ready.web})`}`)
}

/** Starts the daemon detached, logging to daemon.log next to the config, and returns once it is ready. */
export async function runBackground (configPath: string, cli: string, out: Output, timeoutMs = 60_000): Promise<void> {
  const running = await daemonUrl(configPath)
  if (running !== undefined && await callApi(running, '/api/v0/id', undefined, 2_000).then(() => true, () => false)) {
    throw new UsageError(`a node already runs with ${configPath} (${running}); "aicn status --config ${configPath}" shows it`)
  }
  await rm(apiFilePath(configPath), { force: true }) // stale, from a node that was killed
  const logPath = join(dirname(configPath), 'daemon.log')
  const fd = openSync(logPath, 'a')
  const since = Date.now()
  const child = spawn(process.execPath, [cli, 'daemon', '--config', configPath], { detached: true, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  let exitCode: number | null = null
  child.once('exit', (code) => { exitCode = code ?? 1 })
  try {
    const ready = await waitReady(configPath, timeoutMs, { since, exited: () => exitCode !== null })
    child.unref()
    out.line(`Daemon is ready (PID ${child.pid ?? '?'}): API ${ready.api}${ready.web === '' ? '' : `, web ${ready.web}`}`)
    out.line(`Logs: ${logPath}; stop it with "kill ${child.pid ?? ''}"`)
  } catch (err) {
    if (exitCode === null) child.kill('SIGTERM')
    const tail = (await readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join('\n')
    throw new UsageError(`${(err as Error).message}; the last lines of ${logPath}:\n${tail}`)
  }
}
