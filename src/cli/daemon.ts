// `aicn daemon` / `aicn start`: run the node until SIGINT/SIGTERM.
import { rm, writeFile, rename } from 'node:fs/promises'
import { loadConfig } from '../config/index.ts'
import { WEB_OFF } from '../config/defaults.ts'
import { createLogger } from '../core/logger.ts'
import { EarlyApi } from '../api/early.ts'
import { connectionLimitsOf } from '../api/connection-limits.ts'
import { PROTOCOL_VERSION } from '../p2p/protocol-version.ts'
import { AGENT_VERSION } from '../core/version.ts'
import { apiFilePath, defaultDir, findConfig } from './paths.ts'
import { initNode } from './init.ts'

export interface DaemonOptions { config?: string }

export interface Output { line: (text: string) => void }

/** The config to run: --config, else worker.json or input.json in the default folder, created on first run. */
export async function resolveConfigPath (options: DaemonOptions, out: Output): Promise<string> {
  const found = await findConfig(options.config).catch(() => undefined)
  if (found !== undefined) return found
  const dir = defaultDir()
  const created = await initNode({ mode: 'worker', dir })
  out.line(`First run: created a worker node in ${dir} (its key is ${created.keyPath}; keep it safe)`)
  return created.configPath
}

export async function runDaemon (options: DaemonOptions, out: Output): Promise<void> {
  const configPath = await resolveConfigPath(options, out)
  const config = await loadConfig(configPath)
  const log = createLogger({ level: config.App.LogLevel, output: config.App.LogOutput, file: config.App.LogFile, format: config.App.LogFormat })
  // The API listens first and says who we are while the node loads and starts (src/api/early.ts); the
  // node (libp2p and everything else) is loaded only now, not with the CLI.
  const early = new EarlyApi({ peer_id: config.Identity.PeerID, protocol_version: PROTOCOL_VERSION, agent_version: AGENT_VERSION }, { allowedOrigins: config.API.AllowedOrigins, allowedHosts: config.API.AllowedHosts }, connectionLimitsOf(config.API))
  let node
  try {
    await early.listen(config.API.Addr, 'API.Addr', log)
    if (config.API.WebAddr !== WEB_OFF) await early.listen(config.API.WebAddr, 'API.WebAddr', log)
    const { AicnNode } = await import('../node/node.ts')
    node = await AicnNode.start({ configPath, config, log, early })
  } catch (err) {
    await early.close()
    throw err
  }

  const apiFile = apiFilePath(configPath)
  const temp = `${apiFile}.${process.pid}.tmp`
  await writeFile(temp, node.apiUrl)
  await rename(temp, apiFile)
  out.line(`Peer ID: ${node.control.peerId}`)
  out.line(`API server listening on ${node.apiUrl}`)
  if (node.webUrl !== undefined) out.line(`Web listener (browsers, fetch, the OpenAI SDK, the console) on ${node.webUrl}`)
  out.line('Daemon is ready')

  await new Promise<void>((resolve) => {
    let stopping = false
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        out.line(`Received ${signal} again, exiting now`)
        process.exit(1)
      }
      stopping = true
      out.line(`Received ${signal}, shutting down (send it again to force)`)
      void node.stop()
        .catch((err: Error) => { log.error({ err: err.message }, 'shutdown failed') })
        .finally(() => { void rm(apiFile, { force: true }).finally(resolve) })
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
  log.flush()
}
