// `aicn init <input|worker>`: a fresh identity, a datastore folder and a config from the template.
import { access, mkdir, readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { PACKAGE_ROOT } from '../core/package-root.ts'
import { UsageError } from '../core/errors.ts'
import { createConfigTemplate, GO_NODE_PSK, saveConfig, validateConfig } from '../config/index.ts'
import { generateIdentity, writeKeyFile, type Identity } from '../p2p/identity.ts'
import { PSK_HEX_PATTERN } from '../p2p/psk.ts'

export interface InitOptions {
  mode: string
  dir: string
  listen?: string[]
  api?: string
  web?: string
  bootstrap?: string[]
  psk?: string
  network?: string
}

export interface InitResult { configPath: string, keyPath: string, datastore: string, identity: Identity }

const FIRST_TCP_PORT = 7001
const PORT_STEP = 1000
/** The web listener's first choice (src/config/defaults.ts DEFAULT_WEB_ADDR), then 6081, 6082…, so that
 * several nodes initialised on one machine each get their own. */
const FIRST_WEB_PORT = 6080

export async function initNode (options: InitOptions): Promise<InitResult> {
  if (options.mode !== 'input' && options.mode !== 'worker') {
    throw new UsageError(`unknown mode "${options.mode}": use "aicn init worker" (next to GPUs) or "aicn init input" (public entry node)`)
  }
  const dir = resolve(options.dir)
  const configPath = join(dir, `${options.mode}.json`)
  const keyPath = join(dir, 'peer.key')
  const datastore = join(dir, 'datastore')
  for (const path of [configPath, keyPath]) {
    if (await exists(path)) throw new UsageError(`${path} already exists; choose another --dir or move the old file away`)
  }

  const network = await networkDefaults(options.network)
  const psk = options.psk ?? network.psk
  if (psk !== undefined && !PSK_HEX_PATTERN.test(psk)) throw new UsageError('--psk must be 64 hex characters (make one with "aicn psk")')

  const identity = await generateIdentity()
  const listen = options.listen !== undefined && options.listen.length > 0 ? options.listen : defaultListen(await freePort(FIRST_TCP_PORT))
  const config = createConfigTemplate(options.mode, {
    peerId: identity.peerId,
    privKey: identity.privKeyBase64,
    datastore,
    listen,
    apiAddr: options.api,
    webAddr: options.web ?? `127.0.0.1:${await freePort(FIRST_WEB_PORT, 1)}`,
    bootstrap: [...(options.bootstrap ?? []), ...network.bootstrap],
    psk
  })
  await validateConfig(config, { checkDatastore: false }).catch((err: Error) => { throw new UsageError(err.message) })

  await mkdir(dir, { recursive: true })
  await mkdir(datastore, { recursive: true, mode: 0o755 })
  await writeKeyFile(keyPath, identity)
  await saveConfig(configPath, config)
  return { configPath, keyPath, datastore, identity }
}

function defaultListen (port: number): string[] {
  return [`/ip4/0.0.0.0/tcp/${port}`, `/ip6/::/tcp/${port}`]
}

interface NetworkDefaults { bootstrap: string[], psk?: string }

/** `--network dbc` joins the public DeepBrainChain network: its bootstrap nodes and published key. */
async function networkDefaults (network: string | undefined): Promise<NetworkDefaults> {
  if (network === undefined) return { bootstrap: [] }
  const known = JSON.parse(await readFile(join(PACKAGE_ROOT, 'bootstrap-nodes.json'), 'utf8')) as Record<string, unknown>
  const list = known[network]
  if (!Array.isArray(list)) {
    throw new UsageError(`unknown network "${network}"; known: ${Object.keys(known).filter((k) => !k.startsWith('_')).join(', ')}`)
  }
  return { bootstrap: list as string[], psk: network === 'dbc' ? GO_NODE_PSK : undefined }
}

/** The first TCP port from `start` (in steps of 1000 for libp2p, as the Go node) that is free on all interfaces. */
async function freePort (start: number, step = PORT_STEP): Promise<number> {
  for (let port = start; port < Math.min(65536, start + 100 * step); port += step) {
    if (await canListen(port)) return port
  }
  throw new UsageError(step === PORT_STEP ? 'no free TCP port found for libp2p; pass --listen /ip4/0.0.0.0/tcp/PORT' : 'no free port found for the web listener; pass --web 127.0.0.1:PORT')
}

async function canListen (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen(port, () => { server.close(() => { resolve(true) }) })
  })
}

async function exists (path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false)
}
