// docs/metrics.md lists every aicn metric (the README promises it): each `aicn_…` name in src/ has a row in
// its table, and each row names a metric that src/ still defines.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The package root, whether the test runs from test/unit or from dist/test/unit. */
function packageRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir)
  return dir
}

function sources (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [])
}

test('every aicn metric defined in src/ has a row in docs/metrics.md, and every row a metric', () => {
  const root = packageRoot()
  const defined = new Set<string>()
  for (const file of sources(join(root, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/'(aicn_[a-z0-9_]+)'/g)) defined.add(m[1])
  }
  const rows = new Set([...readFileSync(join(root, 'docs', 'metrics.md'), 'utf8').matchAll(/^\| `(aicn_[a-z0-9_]+)` \|/gm)].map((m) => m[1]))
  assert.ok(defined.size >= 20, `found ${defined.size} metric names in src/`)
  assert.deepEqual([...defined].filter((name) => !rows.has(name)).sort(), [], 'defined in src/ but not documented')
  assert.deepEqual([...rows].filter((name) => !defined.has(name)).sort(), [], 'documented but not defined in src/')
})
