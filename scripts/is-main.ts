// Whether a script module was started directly (`node dist/scripts/x.js`) rather than imported by a test.
import { realpathSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'

export function isMainModule (moduleUrl: string): boolean {
  if (process.argv[1] === undefined) return false
  try {
    return realpathSync(resolvePath(process.argv[1])) === realpathSync(fileURLToPath(moduleUrl))
  } catch {
    return false
  }
}
