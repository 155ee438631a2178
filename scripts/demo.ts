// `npm run demo`: a small aicn network on 127.0.0.1 — one input node and two workers, each worker with a
// fake OpenAI-compatible model server — then prints curl commands to try. Ctrl-C stops everything.
// Nothing leaves this machine: every address is loopback, and the network has its own fresh key.
//
// Cleanup (issue 15): every daemon is tracked from the moment it is spawned, and Ctrl-C, SIGTERM or any
// failure — during start-up too — stops all of them, waits for them to exit, closes the model servers and
// removes the folder. test/integration/demo.test.ts checks it by process tree. AICN_DEMO_FAIL_AT=<step>
// (input, worker-1, worker-2, ready) fails on purpose at that step, for that test.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFakeModelServer, type FakeModelServer } from './fake-model.ts'
import { PACKAGE_ROOT } from '../src/core/package-root.ts'

const CLI = join(PACKAGE_ROOT, 'bin', 'aicn.js')
const PROJECT = 'DecentralGPT'
const MODEL = 'Llama3-70B'

interface Daemon { name: string, child: ChildProcess, api: string, web: string, peerId: string, addr: string }

/** Every daemon process spawned, running or not: cleanup must not miss one that failed half-way. */
const children: ChildProcess[] = []
let stopping = false

function failAt (step: string): void {
  if (process.env.AICN_DEMO_FAIL_AT === step) throw new Error(`failing on purpose at "${step}" (AICN_DEMO_FAIL_AT)`)
}

/** SIGTERM each daemon, SIGKILL after 10 s, and wait until all have exited. */
async function stopChildren (): Promise<void> {
  await Promise.all(children.map(async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
    await exited
    clearTimeout(timer)
  }))
}

function cli (args: string[]): string {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`aicn ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

async function startDaemon (name: string, dir: string, mode: 'input' | 'worker', listeners: { api: string, web: string }, options: { psk: string, bootstrap?: string }): Promise<Daemon> {
  const args = ['init', mode, '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', listeners.api, '--web', listeners.web, '--psk', options.psk]
  if (options.bootstrap !== undefined) args.push('--bootstrap', options.bootstrap)
  cli(args)
  if (stopping) throw new Error('stopping')
  const child = spawn(process.execPath, [CLI, 'daemon', '--config', join(dir, `${mode}.json`)], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let output = ''
  // Bounded: only the start-up lines matter, and a chatty daemon must not fill the demo's memory.
  const keep = (d: Buffer): void => { if (output.length < 64 * 1024) output += d.toString() }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  try {
    const deadline = Date.now() + 30_000
    while (!output.includes('Daemon is ready')) {
      if (stopping) throw new Error('stopping')
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start:\n${output}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const api = (await readFile(join(dir, 'api'), 'utf8')).trim()
    // fetch refuses port 6000 (a WHATWG "bad port"), so this script talks to the web listener.
    const web = /^Web listener .* on (http:\/\/\S+)$/m.exec(output)?.[1]
    if (web === undefined) throw new Error(`${name} has no web listener:\n${output}`)
    const id = await (await fetch(`${web}/api/v0/id`, { signal: AbortSignal.timeout(10_000) })).json() as { peer_id: string, addresses: string[] }
    failAt(name)
    return { name, child, api, web, peerId: id.peer_id, addr: `${id.addresses[0]}/p2p/${id.peer_id}` }
  } catch (err) {
    // A daemon that started but is of no use (e.g. it took a port we cannot talk to) must not outlive
    // this call: its folder may be removed next.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
      await exited
      clearTimeout(timer)
    }
    throw err
  }
}

async function post (url: string, body: unknown): Promise<unknown> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return await response.json()
}

async function main (): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'aicn-demo-'))
  const daemons: Daemon[] = []
  const models: FakeModelServer[] = []
  let cleaned: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    cleaned ??= (async () => {
      stopping = true
      await stopChildren()
      await Promise.all(models.map(async (m) => { await m.close() }))
      await rm(root, { recursive: true, force: true })
    })()
    await cleaned
  }
  // From the first moment: a signal during start-up stops what has started so far, then exits.
  let signalled: (() => void) | undefined
  const stopped = new Promise<void>((resolve) => { signalled = resolve })
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return
    process.stdout.write(`${signal}: stopping the demo network…\n`)
    signalled?.()
    void stop().finally(() => { process.exit(signal === 'SIGINT' ? 130 : 143) })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
  process.stdout.write(`demo files in ${root}\n`)
  try {
    const psk = cli(['psk']).trim().split(' ').pop() ?? ''
    // The input node takes the usual ports (6000 for curl, 6080 for browsers and SDKs) when they are free.
    let input: Daemon
    try {
      input = await startDaemon('input', join(root, 'input'), 'input', { api: '127.0.0.1:6000', web: '127.0.0.1:6080' }, { psk })
    } catch (err) {
      if (stopping || process.env.AICN_DEMO_FAIL_AT === 'input') throw err
      // 6000 or 6080 is taken (another node, another demo): any free ports will do. startDaemon has
      // stopped the daemon it spawned before its folder goes.
      process.stdout.write('127.0.0.1:6000 or :6080 is busy; the input node takes free ports instead\n')
      await rm(join(root, 'input'), { recursive: true, force: true })
      input = await startDaemon('input', join(root, 'input-2'), 'input', { api: '127.0.0.1:0', web: '127.0.0.1:0' }, { psk })
    }
    daemons.push(input)
    for (const name of ['worker-1', 'worker-2']) {
      const model = await startFakeModelServer({ model: MODEL, tokens: `Hi! I am ${name}'s model, streaming token by token.`.split(/(?= )/), tokenDelayMs: 80 })
      models.push(model)
      const worker = await startDaemon(name, join(root, name), 'worker', { api: '127.0.0.1:0', web: '127.0.0.1:0' }, { psk, bootstrap: input.addr })
      daemons.push(worker)
      await post(`${worker.web}/api/v0/ai/model/register`, { project: PROJECT, model: MODEL, api: `${model.url}/v1/chat/completions`, type: 0 })
    }
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline && !stopping) {
      const peers = await post(`${input.web}/api/v0/ai/projects/peers`, { project: PROJECT, model: MODEL }) as { data?: unknown[] }
      if ((peers.data?.length ?? 0) >= 2) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }

    failAt('ready')
    const chat = (extra: string): string => `'{"project":"${PROJECT}","model":"${MODEL}","messages":[{"role":"user","content":"Hello"}]${extra}}'`
    process.stdout.write([
      '',
      `aicn demo network is running on 127.0.0.1 (files in ${root}):`,
      ...daemons.map((d) => `  ${d.name.padEnd(9)} ${d.api}  ${d.web}  ${d.peerId}`),
      '',
      'Try these (Ctrl-C stops the demo):',
      '',
      `  curl -s ${input.api}/api/v0/ai/projects/peers -d '{"project":"${PROJECT}","model":"${MODEL}"}'`,
      `  curl -s ${input.api}/api/v0/chat/completion/proxy -d ${chat('')}`,
      `  curl -N ${input.api}/api/v0/chat/completion/proxy -d ${chat(',"stream":true')}`,
      `  curl -s ${input.api}/api/v0/chat/completion -d ${chat(`,"node_id":"${daemons[1].peerId}"`)}`,
      `  curl -s ${input.api}/api/v0/host/info -d '{"node_id":"${daemons[2].peerId}"}'`,
      '',
      'The OpenAI SDK (and browsers) use the web listener:',
      '',
      `  new OpenAI({ baseURL: '${input.web}/v1', apiKey: 'none' })`,
      '',
      `The console: open ${input.web} in a browser.`,
      ''
    ].join('\n') + '\n')

    // Until a signal, or until one of the daemons exits by itself: the demo is no use without it.
    const died = new Promise<Daemon>((resolve) => {
      for (const d of daemons) d.child.once('exit', () => { resolve(d) })
    })
    const dead = await Promise.race([stopped.then(() => undefined), died])
    if (dead !== undefined && !stopping) {
      throw new Error(`${dead.name} exited by itself (${dead.child.signalCode ?? `code ${dead.child.exitCode ?? '?'}`}); stopping the rest`)
    }
  } catch (err) {
    if (!stopping) process.stderr.write(`demo failed: ${(err as Error).message}\n`)
    process.exitCode = 1
  } finally {
    await stop()
  }
  // A signal handler may be finishing the same cleanup; it exits the process itself.
}

await main()
