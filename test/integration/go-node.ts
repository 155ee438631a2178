// Starts the real Go node (DeepBrainChain/AIComputingNode v0.2.3, ../shared/go-reference/aicn-go beside the
// clone; its README there) as a separate process on 127.0.0.1 and talks to it over its HTTP API. Every node
// gets its own temp folder: `-init` writes its config, key and databases into the current folder, so it runs
// there and never in ../shared, which CI mounts read-only.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { freePort, REPO_ROOT, tempDir, waitFor, type ApiResult } from './harness.ts'

/** The Go binary; AICN_GO_BINARY overrides the path. */
export const GO_BINARY = process.env.AICN_GO_BINARY ?? join(REPO_ROOT, '..', 'shared', 'go-reference', 'aicn-go')

/** Why the Go interop tests cannot run here (they are skipped), or undefined when they can. CI sets
 * AICN_REQUIRE_GO_BINARY=1 (.ci/run): there a missing binary fails the run instead of skipping silently. */
export function goBinaryMissing (): string | undefined {
  if (existsSync(GO_BINARY)) return undefined
  const reason = `the Go node binary is not at ${GO_BINARY} (set AICN_GO_BINARY)`
  if (process.env.AICN_REQUIRE_GO_BINARY === '1') throw new Error(reason)
  return reason
}

export interface GoNodeSpec {
  mode: 'input' | 'worker'
  psk: string
  /** multiaddrs with /p2p/; an input node without any gets its own address (the Go node refuses an empty list) */
  bootstrap?: string[]
  /** the -init templates' router is floodsub */
  router?: 'floodsub' | 'gossipsub'
  /** a Go duration; the template's 180s makes tests slow */
  heartbeatInterval?: string
  /** models in the config (AIProjects), registered at start without a register call */
  projects?: Array<{ Project: string, Models: Array<{ Model: string, API: string, Type: number, CID: string }> }>
}

export class GoNode {
  readonly dir: string
  readonly configPath: string
  readonly logPath: string
  readonly peerId: string
  readonly addr: string
  readonly api: string
  private child?: ChildProcess
  output = ''

  private constructor (dir: string, configPath: string, peerId: string, addr: string, api: string) {
    this.dir = dir
    this.configPath = configPath
    this.logPath = join(dir, 'go.log')
    this.peerId = peerId
    this.addr = addr
    this.api = api
  }

  static async start (spec: GoNodeSpec): Promise<GoNode> {
    const dir = await tempDir('aicn-go-')
    const init = spawnSync(GO_BINARY, ['-init', spec.mode], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
    if (init.status !== 0) throw new Error(`aicn-go -init failed: ${init.stderr}`)
    const configPath = join(dir, `${spec.mode}.json`)
    const config = JSON.parse(await readFile(configPath, 'utf8'))
    const [port, apiPort] = [await freePort(), await freePort()]
    const peerId = config.Identity.PeerID as string
    const addr = `/ip4/127.0.0.1/tcp/${port}/p2p/${peerId}`
    config.Addresses = [`/ip4/127.0.0.1/tcp/${port}`]
    config.API.Addr = `127.0.0.1:${apiPort}`
    config.Bootstrap = spec.bootstrap ?? [addr]
    config.Swarm.DisableNatPortMap = true // no UPnP
    config.App.AutoUpgrade.Enabled = false // no update checks
    config.App.PreSharedKey = spec.psk
    config.App.LogOutput = 'file'
    config.App.LogFile = join(dir, 'go.log')
    if (spec.heartbeatInterval !== undefined) config.App.PeersCollect.HeartbeatInterval = spec.heartbeatInterval
    if (spec.router !== undefined) config.Pubsub.Router = spec.router
    if (spec.projects !== undefined) config.AIProjects = spec.projects
    await writeFile(configPath, JSON.stringify(config, null, 2))

    const node = new GoNode(dir, configPath, peerId, addr, `http://127.0.0.1:${apiPort}`)
    const child = spawn(GO_BINARY, ['-config', configPath], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    node.child = child
    // Bounded: only the last 64 KiB of the console is kept (gin prints every request).
    const keep = (d: Buffer): void => { node.output = (node.output + d.toString()).slice(-65536) }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    await waitFor(async () => child.exitCode !== null || (await node.call('/api/v0/id').then((r) => r.status === 200, () => false)), 30_000, 'the Go node API')
    if (child.exitCode !== null) throw new Error(`aicn-go exited with ${child.exitCode}:\n${node.output}`)
    return node
  }

  async call (path: string, body?: unknown): Promise<ApiResult> {
    const response = await fetch(this.api + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000)
    })
    const text = await response.text()
    let parsed: unknown = text
    try { parsed = JSON.parse(text) } catch {}
    return { status: response.status, body: parsed, headers: response.headers }
  }

  /** The node's log file (App.LogFile). */
  async log (): Promise<string> {
    return await readFile(this.logPath, 'utf8').catch(() => '')
  }

  get running (): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  async stop (): Promise<void> {
    const child = this.child
    if (child === undefined || !this.running) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }

  async destroy (): Promise<void> {
    await this.stop()
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** The Go node's log lines for a peer sending it back its own pubsub message. */
export function selfOriginatedLines (log: string): string[] {
  return log.split('\n').filter((line) => line.includes('self originated message'))
}
