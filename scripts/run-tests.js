#!/usr/bin/env node
// Runs the compiled tests with node's test runner: unit tests first (fast, in-process), then the
// integration tests, which start real daemons on 127.0.0.1. Node 20's runner takes no globs, so the
// files are listed here. Pass "unit" or "integration" to run one group.
import { readdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

const groups = process.argv[2] !== undefined ? [process.argv[2]] : ['unit', 'integration']
const files = groups.flatMap((group) => {
  const dir = join('dist', 'test', group)
  if (!existsSync(dir)) return []
  return readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => join(dir, f))
})
if (files.length === 0) {
  process.stderr.write('no compiled tests found; run "npm run build" first\n')
  process.exit(1)
}
// Integration files each start several daemons; running two files at once is all 2 cores can take.
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit' })
process.exit(result.status ?? 1)
