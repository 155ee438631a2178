// `npm run demo`: a small aicn network on 127.0.0.1 — one input node and two workers, each worker with a
// fake OpenAI-compatible model server — then prints curl commands to try. Ctrl-C stops everything.
// Nothing leaves this machine: every address is loopback, and the network has its own fresh key.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFakeModelServer, type FakeModelServer } from './fake-model.ts'
import { PACKAGE_ROOT } from '../src/package-root.ts'

const CLI = join(PACKAGE_ROOT, 'bin', 'aicn.js')
const PROJECT = 'DecentralGPT'
const MODEL = 'Llama3-70B'

interface Daemon { name: string, child: ChildProcess, api: string, web: string, peerId: string, addr: string }

function cli (args: string[]): string {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`aicn ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

async function startDaemon (name: string, dir: string, mode: 'input' | 'worker', listeners: { api: string, web: string }, options: { psk: string, bootstrap?: string }): Promise<Daemon> {
  const args = ['init', mode, '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', listeners.api, '--web', listeners.web, '--psk', options.psk]
  if (options.bootstrap !== undefined) args.push('--bootstrap', options.bootstrap)
  cli(args)
  const child = spawn(process.execPath, [CLI, 'daemon', '--config', join(dir, `${mode}.json`)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  const deadline = Date.now() + 30_000
  while (!output.includes('Daemon is ready')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${name} did not start:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const api = (await readFile(join(dir, 'api'), 'utf8')).trim()
  // fetch refuses port 6000 (a WHATWG "bad port"), so this script talks to the web listener.
  const web = /^Web listener .* on (http:\/\/\S+)$/m.exec(output)?.[1] ?? api
  const id = await (await fetch(`${web}/api/v0/id`)).json() as { peer_id: string, addresses: string[] }
  return { name, child, api, web, peerId: id.peer_id, addr: `${id.addresses[0]}/p2p/${id.peer_id}` }
}

async function post (url: string, body: unknown): Promise<unknown> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return await response.json()
}

async function main (): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'aicn-demo-'))
  const daemons: Daemon[] = []
  const models: FakeModelServer[] = []
  const stop = async (): Promise<void> => {
    for (const d of daemons) d.child.kill('SIGTERM')
    await Promise.all(daemons.map(async (d) => { if (d.child.exitCode === null) await new Promise((resolve) => d.child.once('exit', resolve)) }))
    await Promise.all(models.map(async (m) => { await m.close() }))
    await rm(root, { recursive: true, force: true })
  }
  try {
    const psk = cli(['psk']).trim().split(' ').pop() ?? ''
    // The input node takes the usual ports (6000 for curl, 6080 for browsers and SDKs) when they are free.
    let input: Daemon
    try {
      input = await startDaemon('input', join(root, 'input'), 'input', { api: '127.0.0.1:6000', web: '127.0.0.1:6080' }, { psk })
    } catch {
      await rm(join(root, 'input'), { recursive: true, force: true })
      input = await startDaemon('input', join(root, 'input'), 'input', { api: '127.0.0.1:0', web: '127.0.0.1:0' }, { psk })
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
    while (Date.now() < deadline) {
      const peers = await post(`${input.web}/api/v0/ai/projects/peers`, { project: PROJECT, model: MODEL }) as { data?: unknown[] }
      if ((peers.data?.length ?? 0) >= 2) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }

    const chat = (extra: string): string => `'{"project":"${PROJECT}","model":"${MODEL}","messages":[{"role":"user","content":"Hello"}]${extra}}'`
    process.stdout.write([
      '',
      'aicn demo network is running on 127.0.0.1:',
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
      ''
    ].join('\n') + '\n')

    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve)
      process.once('SIGTERM', resolve)
    })
    process.stdout.write('stopping the demo network…\n')
  } finally {
    await stop()
  }
}

await main()
