// The layers of src/ (eslint/layers.js, docs/architecture.md) against the real import graph: every
// folder has a layer, every import between folders goes down (dynamic imports included, which the lint
// rule does not see), src/core/ imports nothing of ours, and no two folders import each other.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import { PACKAGE_ROOT } from '../../../src/core/package-root.ts'

interface LayerTable { LAYERS: string[][], allowedImports: (folder: string) => string[] }

const SRC = join(PACKAGE_ROOT, 'src')

function sourceFiles (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return sourceFiles(path)
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : []
  })
}

/** Each import of one folder by another: `from` folder, `to` folder, and where. */
function crossFolderImports (): Array<{ from: string, to: string, file: string, spec: string }> {
  const found: Array<{ from: string, to: string, file: string, spec: string }> = []
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8')
    const from = relative(SRC, file).split(sep)[0]
    // static imports and re-exports (`import type` too), and import('…') with a relative path
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2]
      const target = relative(SRC, resolve(dirname(file), spec)).split(sep)
      const to = target.length > 1 ? target[0] : `(src root) ${target[0]}`
      if (to !== from) found.push({ from, to, file: relative(PACKAGE_ROOT, file), spec })
    }
  }
  return found
}

async function layerTable (): Promise<LayerTable> {
  return await import(pathToFileURL(join(PACKAGE_ROOT, 'eslint', 'layers.js')).href) as LayerTable
}

test('every folder of src/ has a layer, and no file sits at the root of src/', async () => {
  const { LAYERS } = await layerTable()
  const known = new Set(LAYERS.flat())
  const entries = readdirSync(SRC)
  const folders = entries.filter((name) => statSync(join(SRC, name)).isDirectory())
  assert.deepEqual(folders.filter((f) => !known.has(f)), [], 'add new folders to eslint/layers.js and docs/architecture.md')
  assert.deepEqual(entries.filter((name) => name.endsWith('.ts')), [])
})

test('imports between folders only go down the layers; src/core imports nothing of ours', async () => {
  const { allowedImports } = await layerTable()
  const wrong = crossFolderImports()
    .filter(({ from, to }) => !allowedImports(from).includes(to))
    .map(({ file, spec }) => `${file} imports ${spec}`)
  assert.deepEqual(wrong, [])
  assert.deepEqual(crossFolderImports().filter(({ from }) => from === 'core'), [])
})

test('no folder of src/ takes part in an import cycle with another', () => {
  const edges = new Map<string, Set<string>>()
  for (const { from, to } of crossFolderImports()) {
    if (!edges.has(from)) edges.set(from, new Set())
    edges.get(from)?.add(to)
  }
  const done = new Set<string>()
  const path: string[] = []
  const visit = (folder: string): void => {
    const at = path.indexOf(folder)
    if (at >= 0) assert.fail(`folder cycle: ${[...path.slice(at), folder].join(' -> ')}`)
    if (done.has(folder)) return
    path.push(folder)
    for (const next of edges.get(folder) ?? []) visit(next)
    path.pop()
    done.add(folder)
  }
  for (const folder of edges.keys()) visit(folder)
})
