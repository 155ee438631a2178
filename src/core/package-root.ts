// The folder holding aicn's package.json, found by walking up from this file so that it is the same
// whether the code runs from src/ (tsx) or from the compiled dist/src/.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findPackageRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const file = join(dir, 'package.json')
    if (existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'aicn') return dir
    dir = dirname(dir)
  }
  throw new Error('cannot find the aicn package.json above ' + fileURLToPath(import.meta.url))
}

export const PACKAGE_ROOT = findPackageRoot()
