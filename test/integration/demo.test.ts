// `npm run demo` leaves nothing behind (issue 15): after SIGTERM once it runs, SIGINT during start-up, or
// a failure half-way (a daemon dying by itself included), every process it started has exited and its folder is gone. Checked by process
// tree (/proc: every descendant seen while it ran), not by its own word. The first run also holds
// 127.0.0.1:6000 (unless something else already does): the demo must come up on other ports.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { REPO_ROOT, waitFor } from './harness.ts'

const DEMO = join(REPO_ROOT, 'dist', 'scripts', 'demo.js')

/** Parent pid of every process, from /proc/<pid>/stat (field 4, after the command in parentheses). */
function parents (): Map<number, number> {
  const map = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      map.set(Number(entry), ppid)
    } catch {} // gone meanwhile
  }
  return map
}

function descendants (root: number): number[] {
  const map = parents()
  const found: number[] = []
  const queue = [root]
  while (queue.length > 0 && found.length < 1000) {
    const pid = queue.shift() as number
    for (const [child, parent] of map) if (parent === pid) { found.push(child); queue.push(child) }
  }
  return found
}

/** Alive and not a zombie. */
function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

interface DemoRun { child: ChildProcess, output: () => string, seen: Set<number>, exited: Promise<number | null>, folder: () => string | undefined }

function runDemo (env: Record<string, string> = {}): DemoRun {
  const child = spawn(process.execPath, [DEMO], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const seen = new Set<number>()
  // Every process the demo starts, recorded while it runs (a daemon that lives 1 s is caught too).
  const timer = setInterval(() => { for (const pid of descendants(child.pid as number)) seen.add(pid) }, 50)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => { clearInterval(timer); resolve(code ?? (signal === null ? null : 128)) }))
  return { child, output: () => output, seen, exited, folder: () => /demo files in (\S+)/.exec(output)?.[1] }
}

async function assertNothingLeft (run: DemoRun): Promise<void> {
  const code = await Promise.race([run.exited, new Promise<'hang'>((resolve) => setTimeout(() => { resolve('hang') }, 40_000).unref())])
  assert.notEqual(code, 'hang', `the demo did not exit:\n${run.output()}`)
  // Daemons are children of the demo, which waits for each to exit before it does; none may be left.
  await waitFor(() => [...run.seen].every((pid) => !alive(pid)), 5_000, 'every process the demo started to be gone')
  const folder = run.folder()
  assert.ok(folder !== undefined, run.output())
  assert.equal(existsSync(folder), false, `${folder} is still there`)
}

describe('the demo cleans up', () => {
  const runs: DemoRun[] = []
  let blocker: Server | undefined

  after(async () => {
    for (const run of runs) if (run.child.exitCode === null) run.child.kill('SIGKILL')
    for (const run of runs) for (const pid of run.seen) if (alive(pid)) process.kill(pid, 'SIGKILL')
    await new Promise<void>((resolve) => { if (blocker === undefined) resolve(); else blocker.close(() => { resolve() }) })
  })

  test('runs with 6000 busy, and SIGTERM stops every daemon and removes the folder', async () => {
    blocker = await new Promise<Server | undefined>((resolve) => {
      const server = createServer()
      server.once('error', () => { resolve(undefined) }) // busy already: the same situation
      server.listen(6000, '127.0.0.1', () => { resolve(server) })
    })
    const run = runDemo()
    runs.push(run)
    await waitFor(() => run.output().includes('aicn demo network is running') || run.child.exitCode !== null, 60_000, 'the demo network')
    assert.match(run.output(), /aicn demo network is running/, run.output())
    assert.doesNotMatch(run.output(), /http:\/\/127\.0\.0\.1:6000/, 'the input node did not get 6000')
    assert.ok(descendants(run.child.pid as number).length >= 3, 'three daemons run')
    run.child.kill('SIGTERM')
    await assertNothingLeft(run)
  })

  test('SIGINT during start-up stops what has started', async () => {
    const run = runDemo()
    runs.push(run)
    await waitFor(() => run.seen.size >= 1 || run.child.exitCode !== null, 30_000, 'a first daemon')
    run.child.kill('SIGINT')
    await assertNothingLeft(run)
  })

  test('a daemon that dies while the demo runs: the demo says which, stops the rest and exits 1', async () => {
    const run = runDemo()
    runs.push(run)
    await waitFor(() => run.output().includes('aicn demo network is running') || run.child.exitCode !== null, 60_000, 'the demo network')
    assert.match(run.output(), /aicn demo network is running/, run.output())
    // The demo's own children are the daemons (the model servers run inside the demo process).
    const daemons = descendants(run.child.pid as number).filter((pid) => parents().get(pid) === run.child.pid)
    assert.equal(daemons.length, 3, 'three daemons run')
    process.kill(daemons[1], 'SIGKILL')
    assert.equal(await run.exited, 1)
    assert.match(run.output(), /demo failed: (input|worker-1|worker-2) exited by itself \(SIGKILL\); stopping the rest/)
    await assertNothingLeft(run)
  })

  test('a failure half-way stops every daemon and removes the folder', async () => {
    const run = runDemo({ AICN_DEMO_FAIL_AT: 'worker-2' })
    runs.push(run)
    assert.equal(await run.exited, 1)
    assert.match(run.output(), /demo failed: failing on purpose/)
    assert.ok(run.seen.size >= 3, `the demo had started its daemons (saw ${run.seen.size} processes)`)
    await assertNothingLeft(run)
  })
})
