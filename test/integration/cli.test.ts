// The aicn command line, run as a separate process as an operator would.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { CLI, runCli, tempDir, waitFor } from './harness.ts'

const VECTOR_KEY = Buffer.from('CAISINAckM6QODvCrez5I0Q3RZyo9PeV4jDeB1L71AHnSU/H', 'base64')

async function withDir (run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir('aicn-cli-')
  try { await run(dir) } finally { await rm(dir, { recursive: true, force: true }) }
}

test('init writes the config, the key and the datastore, and never overwrites them', async () => {
  await withDir(async (dir) => {
    const result = runCli(['init', 'worker', '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0'])
    assert.equal(result.status, 0, result.stderr)
    const config = JSON.parse(await readFile(join(dir, 'worker.json'), 'utf8'))
    assert.match(result.stdout, new RegExp(`Peer ID: ${config.Identity.PeerID as string}`))
    assert.match(result.stdout, /aicn daemon --config .*worker\.json/)
    assert.equal(config.Routing.Type, 'dhtclient')
    assert.equal(config.Swarm.DisableNatPortMap, true)
    assert.equal(config.App.PreSharedKey, '')
    assert.deepEqual(config.Bootstrap, [])
    assert.equal((await stat(join(dir, 'worker.json'))).mode & 0o777, 0o600)
    assert.equal((await stat(join(dir, 'peer.key'))).mode & 0o777, 0o600)
    assert.equal((await readFile(join(dir, 'peer.key'))).length, 36)
    assert.ok((await stat(join(dir, 'datastore'))).isDirectory())

    const before = await readFile(join(dir, 'worker.json'), 'utf8')
    const again = runCli(['init', 'worker', '--dir', dir])
    assert.equal(again.status, 1)
    assert.match(again.stderr, /^Error: .*already exists/)
    assert.equal(again.stderr.trim().split('\n').length, 1)
    assert.equal(await readFile(join(dir, 'worker.json'), 'utf8'), before)
  })
})

test('init input uses the input template; --network dbc uses the public network\'s key and bootstrap nodes', async () => {
  await withDir(async (dir) => {
    assert.equal(runCli(['init', 'input', '--dir', join(dir, 'in'), '--listen', '/ip4/127.0.0.1/tcp/0']).status, 0)
    const input = JSON.parse(await readFile(join(dir, 'in', 'input.json'), 'utf8'))
    assert.equal(input.Routing.Type, 'dhtserver')
    assert.equal(input.Swarm.RelayService.Enabled, true)
    assert.equal(input.API.Addr, '127.0.0.1:6000')

    assert.equal(runCli(['init', 'worker', '--dir', join(dir, 'dbc'), '--listen', '/ip4/127.0.0.1/tcp/0', '--network', 'dbc']).status, 0)
    const dbc = JSON.parse(await readFile(join(dir, 'dbc', 'worker.json'), 'utf8'))
    assert.equal(dbc.App.PreSharedKey, 'f504f536a912a8cf7d00adacee8ed20270c5040d961d7f3da4fccbcbec0ec48a')
    assert.ok(dbc.Bootstrap.length > 0)
  })
})

test('init rejects bad arguments with one clear line', async () => {
  await withDir(async (dir) => {
    for (const [args, message] of [
      [['init', 'miner', '--dir', dir], /unknown mode "miner"/],
      [['init', 'worker', '--dir', dir, '--psk', 'xyz'], /--psk must be 64 hex/],
      [['init', 'worker', '--dir', dir, '--network', 'moon'], /unknown network "moon"/],
      [['init', 'worker', '--dir', dir, '--bootstrap', '/ip4/1.2.3.4/tcp/1'], /Bootstrap/]
    ] as Array<[string[], RegExp]>) {
      const result = runCli(args)
      assert.equal(result.status, 1, args.join(' '))
      assert.match(result.stderr, message)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    }
  })
})

test('peerkey prints the keys and peer id of a key file, or creates one', async () => {
  await withDir(async (dir) => {
    const file = join(dir, 'vector.key')
    await writeFile(file, VECTOR_KEY)
    const loaded = runCli(['peerkey', file])
    assert.equal(loaded.status, 0)
    assert.match(loaded.stdout, /^Load peer key success$/m)
    assert.match(loaded.stdout, /^Encode private key: CAISINAckM6QODvCrez5I0Q3RZyo9PeV4jDeB1L71AHnSU\/H$/m)
    assert.match(loaded.stdout, /^Encode public key: CAISIQ/m)
    assert.match(loaded.stdout, /^Transform Peer ID: 16Uiu2HAmJnGqxBqtWGkymSsy5WDKJY5A5NctcUduENADDptQFF4Y$/m)

    const fresh = join(dir, 'fresh.key')
    const created = runCli(['peerkey', fresh])
    assert.match(created.stdout, /^Generate peer key success at /m)
    assert.equal((await readFile(fresh)).length, 36)

    await writeFile(join(dir, 'bad.key'), 'nope')
    const bad = runCli(['peerkey', join(dir, 'bad.key')])
    assert.equal(bad.status, 1)
    assert.match(bad.stderr, /bad\.key is not a valid key file/)
  })
})

test('psk and version', () => {
  const psk = runCli(['psk'])
  assert.match(psk.stdout, /^Generate Pre-Shared key: [0-9a-f]{64}\n$/)
  assert.match(runCli(['version']).stdout, /^\d+\.\d+\.\d+\n$/)
})

test('a broken config stops the daemon with one line naming the key; --debug adds nothing for config errors', async () => {
  await withDir(async (dir) => {
    assert.equal(runCli(['init', 'worker', '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0']).status, 0)
    const file = join(dir, 'worker.json')
    const config = JSON.parse(await readFile(file, 'utf8'))
    config.Swarm.ConnMgr.Type = 'fancy'
    await writeFile(file, JSON.stringify(config))
    const result = runCli(['daemon', '--config', file])
    assert.equal(result.status, 1)
    assert.match(result.stderr, /^Error: .*Swarm\.ConnMgr\.Type: must be "basic" or "none"/)
    assert.ok(!result.stderr.includes('    at '))

    const missing = runCli(['daemon', '--config', join(dir, 'nope.json')])
    assert.equal(missing.status, 1)
    assert.match(missing.stderr, /not found/)
  })
})

test('start without --config runs the config under $AICN_PATH', async () => {
  await withDir(async (dir) => {
    assert.equal(runCli(['init', 'worker', '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0']).status, 0)
    const child = spawn(process.execPath, [CLI, 'start'], { env: { ...process.env, AICN_PATH: dir }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    try {
      await waitFor(() => output.includes('Daemon is ready'), 30_000, 'the daemon')
      const api = (await readFile(join(dir, 'api'), 'utf8')).trim()
      const id = await (await fetch(`${api}/api/v0/id`)).json() as { peer_id: string }
      const config = JSON.parse(await readFile(join(dir, 'worker.json'), 'utf8'))
      assert.equal(id.peer_id, config.Identity.PeerID)
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGINT')
      await exited
    }
  })
})

test('the first start creates a worker under $AICN_PATH with the API on 127.0.0.1:6000', async () => {
  await withDir(async (dir) => {
    const child = spawn(process.execPath, [CLI, 'start'], { env: { ...process.env, AICN_PATH: dir }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    const exited = new Promise((resolve) => child.once('exit', resolve))
    try {
      await waitFor(() => output.includes('Daemon is ready') || child.exitCode !== null, 30_000, 'the daemon')
      assert.match(output, /First run: created a worker node in /)
      const config = JSON.parse(await readFile(join(dir, 'worker.json'), 'utf8'))
      assert.equal(config.API.Addr, '127.0.0.1:6000')
      if (child.exitCode === null) {
        assert.equal((await readFile(join(dir, 'api'), 'utf8')).trim(), 'http://127.0.0.1:6000')
      } else {
        // Something else on this machine holds port 6000: the daemon must say so in one line.
        assert.match(output, /127\.0\.0\.1:6000 is already in use/)
      }
    } finally {
      child.kill('SIGINT')
      await exited
    }
  })
})
