// Atomic config writes. The file holds the node's private key and is rewritten at runtime (model
// registration, bootstrap add/rm), so a crash or a concurrent write must never leave it truncated,
// half-old/half-new or world-readable: write a private temp file beside it, fsync, rename, fsync the
// directory. Writes to one path run one after another, so the last call's content wins.
import { randomBytes } from 'node:crypto'
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { ConfigError } from '../core/errors.ts'
import { normalizeConfig } from './load.ts'
import type { Config } from './types.ts'

const FILE_MODE = 0o600

/** The tail of the write queue per absolute path; removed when the queue drains. */
const queues = new Map<string, Promise<void>>()

/** The exact text saveConfig writes: canonical key names and order, 2-space indent, final newline. */
export function serializeConfig (config: Config): string {
  // Re-normalizing drops keys that are not part of the config and checks the JSON types, so that
  // a caller's stray property or wrong type never reaches the file.
  return `${JSON.stringify(normalizeConfig(config), null, 2)}\n`
}

/**
 * Writes the config atomically with mode 0600. The content is taken when the call is made, so later
 * changes to `config` do not leak into a queued write. Rejects with a ConfigError naming the file;
 * the previous file is then untouched and no temp file is left behind.
 */
export async function saveConfig (path: string, config: Config): Promise<void> {
  const file = resolve(path)
  const text = serializeConfig(config)
  const previous = queues.get(file) ?? Promise.resolve()
  // A failed earlier write must not block this one: each call reports only its own outcome.
  const current = previous.catch(() => {}).then(async () => { await writeAtomic(file, text) })
  queues.set(file, current)
  try {
    await current
  } finally {
    if (queues.get(file) === current) queues.delete(file)
  }
}

async function writeAtomic (file: string, text: string): Promise<void> {
  const dir = dirname(file)
  const temp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    const handle = await open(temp, 'wx', FILE_MODE)
    try {
      await handle.writeFile(text, 'utf8')
      // The umask cannot widen the mode, but a chmod makes 0600 explicit whatever the umask.
      await handle.chmod(FILE_MODE)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, file)
  } catch (err) {
    await unlink(temp).catch(() => {})
    throw new ConfigError(`cannot save config file ${file}: ${(err as Error).message}`, { cause: err })
  }
  await syncDirectory(dir)
}

/** Makes the rename durable. Some platforms and file systems cannot fsync a directory; the rename
 * has happened by then, so that is not worth failing the save for. */
async function syncDirectory (dir: string): Promise<void> {
  let handle: FileHandle | undefined
  try {
    handle = await open(dir, 'r')
    await handle.sync()
  } catch {
    // see above
  } finally {
    await handle?.close().catch(() => {})
  }
}

/** Removes the temp files that a process killed mid-save (kill -9, power loss) left beside the config:
 * `.<name>.<pid>.<random>.tmp` of processes that no longer run, or of this very process id (a leftover of
 * an earlier process that had it). Returns how many were removed. Called when the daemon starts. */
export async function removeStaleTemps (path: string): Promise<number> {
  const file = resolve(path)
  const prefix = `.${basename(file)}.`
  let removed = 0
  const names = await readdir(dirname(file)).catch(() => [] as string[])
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue
    const pid = Number(name.slice(prefix.length).split('.')[0])
    if (!Number.isSafeInteger(pid) || (pid !== process.pid && isRunning(pid))) continue
    await unlink(join(dirname(file), name)).then(() => { removed++ }, () => {})
  }
  return removed
}

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
