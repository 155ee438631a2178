import { homedir } from 'node:os'
import { join, dirname } from 'node:path'

/** Where `aicn init` and a bare `aicn start` keep their files: $AICN_PATH, else ~/.aicn. */
export function defaultDir (): string {
  const fromEnv = process.env.AICN_PATH
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.aicn')
}

/** The file the daemon writes its API URL into: `api` next to the config file. */
export function apiFilePath (configPath: string): string {
  return join(dirname(configPath), 'api')
}
