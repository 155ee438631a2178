// Starts real aicn daemons as separate processes through the CLI, on 127.0.0.1 only, and talks to
// them over HTTP. Every node gets its own temp folder, removed when the test ends.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)))
export const CLI = join(REPO_ROOT, 'bin', 'aicn.js')

export interface CliResult { status: number | null, stdout: string, stderr: string }

/** Runs a short CLI command to completion. */
export function runCli (args: string[], env: Record<string, string> = {}): CliResult {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

export async function tempDir (prefix = 'aicn-test-'): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix))
}

export interface NodeSpec {
  mode?: 'input' | 'worker'
  bootstrap?: string[]
  psk?: string
  /** changes applied to the generated config before the daemon starts */
  edit?: (config: any) => void
  /** Node options for the daemon process (e.g. --cpu-prof, which NODE_OPTIONS does not allow) */
  nodeArgs?: string[]
}

export interface ApiResult { status: number, body: any, headers: Headers }

export class TestNode {
  readonly dir: string
  readonly configPath: string
  peerId = ''
  /** the API.Addr listener (the Go node's clients) */
  api = ''
  /** the API.WebAddr listener (browsers, fetch-based SDKs); '' when it is off */
  web = ''
  private child?: ChildProcess
  private readonly nodeArgs: string[]
  output = ''

  private constructor (dir: string, configPath: string, nodeArgs: string[] = []) {
    this.dir = dir
    this.configPath = configPath
    this.nodeArgs = nodeArgs
  }

  /** `aicn init` in a fresh folder, then `aicn daemon`; resolves once the API answers. */
  static async start (spec: NodeSpec = {}): Promise<TestNode> {
    const node = await TestNode.create(spec)
    await node.launch()
    return node
  }

  /** `aicn init` in a fresh folder and the config edits, without starting the daemon (see launch()). */
  static async create (spec: NodeSpec = {}): Promise<TestNode> {
    const dir = await tempDir()
    const mode = spec.mode ?? 'worker'
    const args = ['init', mode, '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--web', '127.0.0.1:0']
    for (const b of spec.bootstrap ?? []) args.push('--bootstrap', b)
    if (spec.psk !== undefined) args.push('--psk', spec.psk)
    const init = runCli(args)
    if (init.status !== 0) throw new Error(`aicn init failed: ${init.stderr}`)
    const node = new TestNode(dir, join(dir, `${mode}.json`), spec.nodeArgs)
    const config = JSON.parse(await readFile(node.configPath, 'utf8'))
    node.peerId = config.Identity.PeerID
    if (spec.edit !== undefined) {
      spec.edit(config)
      await writeFile(node.configPath, JSON.stringify(config, null, 2))
    }
    return node
  }

  /** Starts (or restarts) the daemon process on the existing config. */
  async launch (): Promise<void> {
    const child = spawn(process.execPath, [...this.nodeArgs, CLI, 'daemon', '--config', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    this.output = ''
    child.stdout.on('data', (d: Buffer) => { this.output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { this.output += d.toString() })
    await waitFor(async () => this.output.includes('Daemon is ready') || child.exitCode !== null, 30_000, 'daemon start')
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}:\n${this.output}`)
    this.api = (await readFile(join(this.dir, 'api'), 'utf8')).trim()
    this.web = /^Web listener .* on (http:\/\/\S+)$/m.exec(this.output)?.[1] ?? ''
  }

  /** The node's first libp2p address, with /p2p/<id>. */
  async addr (): Promise<string> {
    const id = await this.call('/api/v0/id')
    return `${id.body.addresses[0] as string}/p2p/${this.peerId}`
  }

  async call (path: string, body?: unknown, init: RequestInit = {}): Promise<ApiResult> {
    const response = await fetch(this.api + path, {
      method: body === undefined ? (init.method ?? 'GET') : 'POST',
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
      ...init
    })
    const text = await response.text()
    let parsed: unknown = text
    try { parsed = JSON.parse(text) } catch {}
    return { status: response.status, body: parsed, headers: response.headers }
  }

  get pid (): number | undefined {
    return this.child?.pid
  }

  get running (): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  /** SIGTERM and wait for a clean exit; resolves with the exit code. */
  async stop (): Promise<number | null> {
    const child = this.child
    if (child === undefined || !this.running) return child?.exitCode ?? null
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    const code = await exited
    clearTimeout(timer)
    return code
  }

  async kill (): Promise<void> {
    const child = this.child
    if (child === undefined || !this.running) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }

  async destroy (): Promise<void> {
    if (this.child?.signalCode === 'SIGSTOP') this.child.kill('SIGCONT')
    await this.kill()
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** Polls `check` every 100 ms until it is true; throws after `timeoutMs`. Bounded in time by design. */
export async function waitFor (check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

export async function connectedPeers (node: TestNode): Promise<string[]> {
  const result = await node.call('/api/v0/swarm/peers')
  return (result.body as Array<{ peer: string }>).map((p) => p.peer)
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (for a node that must keep its address across
 * restarts). Drawn below Linux's ephemeral range (32768–60999 by default): a port taken from that range
 * can be handed to any outgoing connection's local end while the node is down, and the restart then fails
 * with EADDRINUSE (seen in CI on the full-restart test in faults.test.ts).
 */
export async function freePort (): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (await canListen(port)) return port
  }
  throw new Error('no free port found below the ephemeral range')
}

async function canListen (port: number): Promise<boolean> {
  const server = createServer()
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => { resolve(false) })
    server.listen(port, '127.0.0.1', () => { resolve(true) })
  })
  if (listening) await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return listening
}
