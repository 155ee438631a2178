import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PACKAGE_ROOT } from './package-root.ts'

export const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version
/** What identify announces as AgentVersion and what RPC headers carry as client_version. */
export const AGENT_VERSION = `aicn/${VERSION}`
