import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../../../src/core/errors.ts'
import { createConfigTemplate, loadConfig, removeStaleTemps, saveConfig, type Config } from '../../../src/config/index.ts'
import { spawn } from 'node:child_process'

const PRIV_KEY = 'CAISINAckM6QODvCrez5I0Q3RZyo9PeV4jDeB1L71AHnSU/H'
const PEER_ID = '16Uiu2HAmJnGqxBqtWGkymSsy5WDKJY5A5NctcUduENADDptQFF4Y'

async function withTempDir (fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-config-save-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function configIn (dir: string): Config {
  return createConfigTemplate('worker', { peerId: PEER_ID, privKey: PRIV_KEY, datastore: dir })
}

test('save writes mode 0600, 2-space JSON with a final newline, and round-trips', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'worker.json')
    const config = configIn(dir)
    config.AIProjects = [{ Project: 'P', Models: [{ Model: 'M', API: 'http://127.0.0.1:8000', Type: 1, CID: 'c' }] }]
    await saveConfig(file, config)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    const text = await readFile(file, 'utf8')
    assert.equal(text, JSON.stringify(config, null, 2) + '\n')
    assert.match(text, /^{\n {2}"Bootstrap": \[\],\n {2}"Addresses": \[\n {4}"/)
    assert.deepEqual(await loadConfig(file), config)
  })
})

test('save writes canonical key names and drops stray properties', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'worker.json')
    const config = configIn(dir) as Config & { Extra?: string }
    config.Extra = 'not a config key'
    await saveConfig(file, config)
    const saved = JSON.parse(await readFile(file, 'utf8'))
    assert.deepEqual(Object.keys(saved), ['Bootstrap', 'Addresses', 'API', 'Identity', 'Swarm', 'Pubsub', 'Routing', 'App', 'Wire', 'Gateway', 'Jobs', 'AIProjects'])
  })
})

test('save replaces an existing file and tightens its mode', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'worker.json')
    await writeFile(file, 'old', { mode: 0o644 })
    await saveConfig(file, configIn(dir))
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    assert.equal((await loadConfig(file)).Identity.PeerID, PEER_ID)
  })
})

test('50 concurrent saves leave one complete content and no temp files; the last call wins', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'worker.json')
    const config = configIn(dir)
    const saves: Array<Promise<void>> = []
    for (let i = 0; i < 50; i++) {
      config.App.PeersCollect.ClientProject = `project-${i}`
      // the content is taken at call time, so mutating config afterwards is safe
      saves.push(saveConfig(file, config))
    }
    await Promise.all(saves)
    const loaded = await loadConfig(file)
    assert.equal(loaded.App.PeersCollect.ClientProject, 'project-49')
    assert.deepEqual(await readdir(dir), ['worker.json'])
  })
})

test('concurrent saves to different paths do not interfere', async () => {
  await withTempDir(async (dir) => {
    await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const config = configIn(dir)
      config.App.TopicName = `topic-${i}`
      await saveConfig(join(dir, `c${i}.json`), config)
    }))
    for (let i = 0; i < 10; i++) {
      assert.equal((await loadConfig(join(dir, `c${i}.json`))).App.TopicName, `topic-${i}`)
    }
    assert.equal((await readdir(dir)).length, 10)
  })
})

test('a save into a missing directory rejects and leaves the old file intact', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'worker.json')
    await saveConfig(file, configIn(dir))
    const before = await readFile(file, 'utf8')

    const missing = join(dir, 'missing', 'worker.json')
    await assert.rejects(saveConfig(missing, configIn(dir)), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.match(err.message, new RegExp(`^cannot save config file ${missing}: `))
      return true
    })
    assert.equal(await readFile(file, 'utf8'), before)
    assert.deepEqual(await readdir(dir), ['worker.json'])
  })
})

test('a failing rename removes the temp file, and the next save to that path still runs', async () => {
  await withTempDir(async (dir) => {
    // A non-empty directory where the file should be: the temp file is written, the rename fails.
    const target = join(dir, 'worker.json')
    await mkdir(join(target, 'inside'), { recursive: true })
    await assert.rejects(saveConfig(target, configIn(dir)), ConfigError)
    assert.deepEqual(await readdir(dir), ['worker.json'])

    await rm(target, { recursive: true })
    await saveConfig(target, configIn(dir))
    assert.equal((await loadConfig(target)).Identity.PeerID, PEER_ID)
  })
})

test('a config with a wrong type is refused before anything is written', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'worker.json')
    await saveConfig(file, configIn(dir))
    const before = await readFile(file, 'utf8')
    const bad = configIn(dir)
    ;(bad.Swarm.ConnMgr as { HighWater: unknown }).HighWater = 'lots'
    await assert.rejects(saveConfig(file, bad), { name: 'ConfigError', message: 'Swarm.ConnMgr.HighWater: must be a number' })
    assert.equal(await readFile(file, 'utf8'), before)
    assert.deepEqual(await readdir(dir), ['worker.json'])
  })
})

test('kill -9 during config saves: the next start removes the temp files it left, and the config is whole', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'worker.json')
    await saveConfig(path, configIn(dir))
    // A separate process saving in a loop (bounded), killed with SIGKILL as soon as a temp file is seen.
    const saveModule = new URL('../../../src/config/index.js', import.meta.url).href
    const script = `const { saveConfig, loadConfig } = await import(${JSON.stringify(saveModule)}); const c = await loadConfig(${JSON.stringify(path)}, { checkDatastore: false }); for (let i = 0; i < 100000; i++) { c.Bootstrap = []; await saveConfig(${JSON.stringify(path)}, c) }`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' })
    const exited = new Promise((resolve) => child.once('exit', resolve))
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline && child.exitCode === null) {
      if ((await readdir(dir)).some((n) => n.endsWith('.tmp'))) break
      await new Promise((resolve) => setImmediate(resolve))
    }
    child.kill('SIGKILL')
    await exited
    // Whatever was left, one live process's temp file must survive the clean-up.
    const live = join(dir, `.worker.json.${process.ppid}.abc.tmp`)
    await writeFile(live, 'in progress')
    await removeStaleTemps(path)
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.tmp')), [`.worker.json.${process.ppid}.abc.tmp`])
    assert.equal((await loadConfig(path, { checkDatastore: false })).Identity.PeerID, PEER_ID)
  })
})
