#!/usr/bin/env node
// Runs the compiled tests with node's test runner: unit tests first (fast, in-process), then the
// integration tests, which start real daemons on 127.0.0.1. Node 20's runner takes no globs, so the
// files are listed here. Pass "unit" or "integration" to run one group.
//
// A hang fails the run instead of stalling CI:
// - each group runs with its own --test-timeout. Node 20 applies it to each test file as a whole (the
//   file's subprocess is one test of the runner); later Node versions apply it to each test. A test that
//   sets its own `timeout` keeps it, within the file's limit on Node 20.
// - the whole run has a limit too; past it every process the runner started is killed.
import { readdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'

const GROUPS = {
  // The slowest unit file takes about 20 s on 2 busy cores.
  unit: { timeoutMs: 2 * 60_000 },
  // The slowest integration files (fuzz, faults) take a few minutes; fuzz's own tests allow up to 15.
  integration: { timeoutMs: 15 * 60_000 }
}
/** Everything, both groups: well under CI's 90 minutes, which also cover the install. */
const RUN_LIMIT_MS = Number(process.env.AICN_TEST_RUN_LIMIT_MS ?? 60 * 60_000)

/** Every *.test.js under `dir`, in subfolders too (readdirSync's `recursive` needs Node 20.1). */
function testFiles (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return testFiles(path)
    return entry.name.endsWith('.test.js') ? [path] : []
  })
}

const names = process.argv[2] !== undefined ? [process.argv[2]] : ['unit', 'integration']
for (const name of names) {
  if (GROUPS[name] === undefined) {
    process.stderr.write(`unknown test group "${name}" (one of: ${Object.keys(GROUPS).join(', ')})\n`)
    process.exit(2)
  }
}
const groups = names.map((name) => {
  const dir = join('dist', 'test', name)
  // Unit tests sit in folders that mirror src/ (test/unit/p2p/, test/unit/jobs/, …); integration tests in one.
  const files = existsSync(dir) ? testFiles(dir).sort() : []
  return { name, files, ...GROUPS[name] }
}).filter((group) => group.files.length > 0)
if (groups.length === 0) {
  process.stderr.write('no compiled tests found; run "npm run build" first\n')
  process.exit(1)
}

let current
let timedOut = false
const killCurrent = (signal) => {
  // The runner and the test files' subprocesses (and the daemons they start) share one process group.
  if (current?.pid !== undefined) {
    try { process.kill(-current.pid, signal) } catch {}
  }
}
const guard = setTimeout(() => {
  timedOut = true
  process.stderr.write(`\nthe test run passed its limit of ${Math.round(RUN_LIMIT_MS / 1000)} s: stopping it\n`)
  killCurrent('SIGKILL')
}, RUN_LIMIT_MS)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => { killCurrent(signal); process.exit(130) })
}

let failed = false
for (const group of groups) {
  if (timedOut) break
  // Integration files each start several daemons; running two files at once is all 2 cores can take.
  const args = ['--test', '--test-concurrency=2', `--test-timeout=${group.timeoutMs}`, ...group.files]
  const code = await new Promise((resolve) => {
    current = spawn(process.execPath, args, { stdio: 'inherit', detached: true })
    current.on('exit', (status, signal) => { resolve(status ?? (signal !== null ? 1 : 0)) })
  })
  current = undefined
  if (code !== 0) failed = true
}
clearTimeout(guard)
process.exit(failed || timedOut ? 1 : 0)
