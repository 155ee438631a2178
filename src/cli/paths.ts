import { access } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, dirname } from 'node:path'
import { UsageError } from '../core/errors.ts'

/** Where `aicn init` and a bare `aicn start` keep their files: $AICN_PATH, else ~/.aicn. */
export function defaultDir (): string {
  const fromEnv = process.env.AICN_PATH
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.aicn')
}

/** The file the daemon writes its API URL into: `api` next to the config file. */
export function apiFilePath (configPath: string): string {
  return join(dirname(configPath), 'api')
}

/** The config a command works on: --config, else worker.json or input.json in the default folder. */
export async function findConfig (given: string | undefined): Promise<string> {
  if (given !== undefined) return given
  for (const name of ['worker.json', 'input.json']) {
    const candidate = join(defaultDir(), name)
    if (await access(candidate).then(() => true, () => false)) return candidate
  }
  throw new UsageError(`no node config in ${defaultDir()}; pass --config FILE or create one with "aicn init worker"`)
}
