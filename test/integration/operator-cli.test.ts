// The operator's commands (issue 15), as an operator runs them: bare `aicn`, the hint before a build,
// `daemon --background` then `wait`, `status`, `models register|list|unregister` (with the warning for a
// server that does not answer yet), and the key tables. Real daemons on 127.0.0.1.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { CLI, freePort, runCli, tempDir, waitFor, type CliResult } from './harness.ts'

/** Runs the CLI without blocking this process (the fake model server lives here and must answer). */
async function cli (args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 60_000)
  const status = await new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
  clearTimeout(timer)
  return { status, stdout, stderr }
}

describe('operator commands', () => {
  const dirs: string[] = []
  const pids: number[] = []
  const models: FakeModelServer[] = []
  after(async () => {
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} }
    await Promise.all(models.map(async (m) => { await m.close() }))
    await Promise.all(dirs.map(async (d) => { await rm(d, { recursive: true, force: true }) }))
  })

  test('bare aicn prints the help and exits 0; before a build, one line says so', async () => {
    const bare = runCli([])
    assert.equal(bare.status, 0)
    assert.match(bare.stdout, /Usage: aicn/)
    assert.match(bare.stdout, /status/)
    const dir = await tempDir('aicn-nobuild-')
    dirs.push(dir)
    await mkdir(join(dir, 'bin'))
    await copyFile(CLI, join(dir, 'bin', 'aicn.js'))
    const unbuilt = spawn(process.execPath, [join(dir, 'bin', 'aicn.js'), 'version'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    unbuilt.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const code = await new Promise((resolve) => unbuilt.once('exit', resolve))
    assert.equal(code, 1)
    assert.match(stderr, /^Error: aicn is not built yet .*npm run build/)
    assert.equal(stderr.trim().split('\n').length, 1)
  })

  test('daemon --background, wait, status, models and keys', async () => {
    const dir = await tempDir('aicn-ops-')
    dirs.push(dir)
    const init = runCli(['init', 'worker', '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--web', '127.0.0.1:0'])
    assert.equal(init.status, 0, init.stderr)
    const config = join(dir, 'worker.json')

    const stopped = await cli(['status', '--config', config])
    assert.equal(stopped.status, 1)
    assert.match(stopped.stderr, /is not running; start it with/)

    const started = await cli(['daemon', '--background', '--config', config])
    assert.equal(started.status, 0, started.stderr)
    const pid = Number(/PID (\d+)/.exec(started.stdout)?.[1])
    pids.push(pid)
    assert.match(started.stdout, /^Daemon is ready/)
    // Ready means ready: the API answers at once.
    const api = (await readFile(join(dir, 'api'), 'utf8')).trim()
    assert.equal((await fetch(`${/web (http:\S+)/.exec(started.stdout)?.[1] ?? api}/api/v0/id`)).status, 200)
    assert.equal((await cli(['wait', '--config', config, '--timeout', '5s'])).status, 0)
    const twice = await cli(['daemon', '--background', '--config', config])
    assert.equal(twice.status, 1)
    assert.match(twice.stderr, /already runs/)

    const port = await freePort()
    const late = await cli(['models', 'register', '--project', 'Ops', '--model', 'chat-1', '--api', `http://127.0.0.1:${port}/v1/chat/completions`, '--config', config])
    assert.equal(late.status, 0, late.stderr)
    assert.match(late.stdout, /Warning: the model server of chat-1 does not answer yet/)
    const model = await startFakeModelServer({ model: 'emb' })
    models.push(model)
    const up = await cli(['models', 'register', '--project', 'Ops', '--model', 'emb', '--type', 'embeddings', '--api', `${model.url}/v1/embeddings`, '--config', config])
    assert.equal(up.status, 0, up.stderr)
    assert.doesNotMatch(up.stdout, /Warning/)

    const list = await cli(['models', 'list', '--config', config])
    assert.match(list.stdout, /^PROJECT\s+MODEL\s+CID\s+TYPE\s+HEALTH/)
    assert.match(list.stdout, /Ops\s+chat-1\s+-\s+chat\s+DOWN: connect ECONNREFUSED/)
    assert.match(list.stdout, /Ops\s+emb\s+-\s+embeddings\s+up/)
    const status = await cli(['status', '--config', config])
    assert.equal(status.status, 0, status.stderr)
    assert.match(status.stdout, /^Node\s+16Uiu2/)
    assert.match(status.stdout, /Listeners\s+http:\/\/127\.0\.0\.1:\d+\s+web http/)
    assert.match(status.stdout, /Peers\s+0 connected/)
    assert.match(status.stdout, /Jobs\s+0 in the last minute, 0 errors/)
    const json = JSON.parse((await cli(['status', '--json', '--config', config])).stdout)
    assert.equal(json.models.length, 2)

    const gone = await cli(['models', 'unregister', '--project', 'Ops', '--model', 'chat-1', '--config', config])
    assert.equal(gone.status, 0, gone.stderr)
    const again = await cli(['models', 'unregister', '--project', 'Ops', '--model', 'chat-1', '--config', config])
    assert.equal(again.status, 1)
    assert.match(again.stderr, /is not registered/)

    assert.equal((await cli(['keys', 'create', '--name', 'app1', '--balance', '5', '--config', config])).status, 0)
    const keys = await cli(['keys', 'list', '--config', config])
    assert.match(keys.stdout, /^ID\s+NAME\s+PREFIX\s+BALANCE/)
    assert.match(keys.stdout, /app1\s+sk-aicn-\S+\s+\$5\.00\s/)
    const keysJson = JSON.parse((await cli(['keys', 'list', '--json', '--config', config])).stdout)
    assert.equal(keysJson[0].balanceUsd, 5)
    assert.equal('balanceMicroUsd' in keysJson[0], false, 'one balance field')
    assert.match((await cli(['keys', 'usage', '--config', config])).stdout, /No usage recorded yet/)

    process.kill(pid, 'SIGTERM')
    await waitFor(() => { try { process.kill(pid, 0); return false } catch { return true } }, 20_000, 'the daemon to exit')
    const waited = await cli(['wait', '--config', config, '--timeout', '1s'])
    assert.equal(waited.status, 1, 'a stopped node is not ready')
    assert.match(waited.stderr, /was not ready within 1 s/)
  })
})
