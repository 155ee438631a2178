// The `aicn` command line. Errors are one line saying what is wrong and how to fix it; --debug adds
// the stack trace.
import '../core/polyfill.ts'
import { Command, CommanderError } from 'commander'
import { ConfigError, UsageError } from '../core/errors.ts'
import { VERSION } from '../core/version.ts'
import type { Output } from './daemon.ts'
import { defaultDir, findConfig } from './paths.ts'
import { parseDuration } from '../core/duration.ts'

// Each command loads its own modules when it runs (`aicn init` need not load libp2p, `aicn daemon` need
// not load the CLI's clients): loading is most of a command's time (docs/benchmarks.md "Start-up and idle").
const daemon = async (): Promise<typeof import('./daemon.ts')> => await import('./daemon.ts')
const init = async (): Promise<typeof import('./init.ts')> => await import('./init.ts')
const keyFiles = async (): Promise<typeof import('./keys.ts')> => await import('./keys.ts')
const keysAdmin = async (): Promise<typeof import('./keys-admin.ts')> => await import('./keys-admin.ts')
const status = async (): Promise<typeof import('./status.ts')> => await import('./status.ts')
const modelsCli = async (): Promise<typeof import('./models.ts')> => await import('./models.ts')
const wait = async (): Promise<typeof import('./wait.ts')> => await import('./wait.ts')

// The CLI is the one place that prints for people (eslint.config.js allows console here only).
const out: Output = { line: (text) => { console.log(text) } }

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

function program (): Command {
  const cli = new Command('aicn')
    .description('AI computing node: a libp2p daemon that joins GPU machines into one AI computing network')
    .version(VERSION, '-v, --version')
    .addHelpText('after', '\nAdd --debug anywhere to print stack traces on errors.')
    .exitOverride()
    .configureOutput({ writeErr: (text) => { process.stderr.write(text) } })

  cli.command('init')
    .description('create a config, a peer key and a datastore folder for a new node')
    .argument('<mode>', '"worker" (next to model servers) or "input" (public entry node)')
    .option('--dir <dir>', 'folder for the files (default: $AICN_PATH or ~/.aicn)')
    .option('--listen <multiaddr>', 'libp2p listen address (repeatable)', collect)
    .option('--api <host:port>', 'HTTP API address for the Go node\'s clients (default 127.0.0.1:6000)')
    .option('--web <host:port>', 'browser-safe HTTP address for browsers, fetch and SDKs, or "off" (default 127.0.0.1:6080, or the next free port)')
    .option('--bootstrap <multiaddr>', 'bootstrap peer, ending in /p2p/<id> (repeatable)', collect)
    .option('--psk <hex>', 'pre-shared key of a private network (64 hex characters)')
    .option('--network <name>', 'join a known public network from bootstrap-nodes.json, e.g. "dbc"')
    .action(async (mode: string, opts: { dir?: string, listen?: string[], api?: string, web?: string, bootstrap?: string[], psk?: string, network?: string }) => {
      const result = await (await init()).initNode({ mode, dir: opts.dir ?? defaultDir(), ...opts })
      out.line(`Generate peer key success at ${result.keyPath}`)
      out.line('Important notice: please keep this key file; it is the node\'s identity.')
      out.line(`Peer ID: ${result.identity.peerId}`)
      out.line(`Create datastore directory at ${result.datastore}`)
      out.line(`Generate configuration success at ${result.configPath}`)
      out.line(`Run "aicn daemon --config ${result.configPath}" to start the node`)
    })

  for (const name of ['daemon', 'start']) {
    cli.command(name)
      .description(name === 'daemon' ? 'run the node' : 'run the node (same as daemon)')
      .option('--config <file>', 'config file (default: worker.json or input.json in $AICN_PATH or ~/.aicn, created on first run)')
      .option('--background', 'start the node in the background, logging to daemon.log next to the config, and return once it is ready')
      .action(async (opts: { config?: string, background?: boolean }) => {
        const { resolveConfigPath, runDaemon } = await daemon()
        if (opts.background === true) await (await wait()).runBackground(await resolveConfigPath(opts, out), process.argv[1] ?? '', out)
        else await runDaemon(opts, out)
      })
  }

  const configOption = '--config <file>'
  const configHelp = 'the node\'s config file (default: worker.json or input.json in $AICN_PATH or ~/.aicn)'

  cli.command('wait')
    .description('wait until the node is ready (for scripts: "aicn daemon ... &" then "aicn wait")')
    .option(configOption, configHelp)
    .option('--timeout <duration>', 'give up after this long, e.g. 30s', '60s')
    .action(async (opts: { config?: string, timeout: string }) => { await (await wait()).runWait(await findConfig(opts.config), durationMs(opts.timeout), out) })

  cli.command('status')
    .description('one screen on the running node: listeners, peers, models and their health, jobs and errors in the last minute')
    .option(configOption, configHelp)
    .option('--json', 'print the status as JSON')
    .action(async (opts: { config?: string, json?: boolean }) => { await (await status()).runStatus(await findConfig(opts.config), out, { json: opts.json }) })

  const models = cli.command('models').description('the model servers beside this node (through the running node)')
  models.command('register')
    .description('register a model server; the node probes it and tells the network')
    .requiredOption('--project <name>', 'project, e.g. DecentralGPT')
    .requiredOption('--model <name>', 'model name, e.g. Llama3-70B')
    .requiredOption('--api <url>', 'the model server\'s endpoint, e.g. http://127.0.0.1:8000/v1/chat/completions')
    .option('--type <type>', 'chat, text-to-image, image-edit, embeddings or completion (or 0-4)', 'chat')
    .option('--cid <cid>', 'a container id, to register several copies of one model', '')
    .option(configOption, configHelp)
    .action(async (opts: { project: string, model: string, api: string, type: string, cid: string, config?: string }) => {
      await (await modelsCli()).runModelsRegister(await findConfig(opts.config), opts, out)
    })
  models.command('list')
    .description('the models registered on this node and their health')
    .option('--json', 'print JSON')
    .option(configOption, configHelp)
    .action(async (opts: { json?: boolean, config?: string }) => { await (await modelsCli()).runModelsList(await findConfig(opts.config), out, { json: opts.json }) })
  models.command('unregister')
    .description('remove a model registration')
    .requiredOption('--project <name>', 'project')
    .requiredOption('--model <name>', 'model name')
    .option('--cid <cid>', 'the container id it was registered with', '')
    .option(configOption, configHelp)
    .action(async (opts: { project: string, model: string, cid: string, config?: string }) => {
      await (await modelsCli()).runModelsUnregister(await findConfig(opts.config), opts, out)
    })

  cli.command('peerkey')
    .description('load a peer key file, or create a secp256k1 one, and print its keys and peer ID')
    .argument('<file>')
    .action(async (file: string) => { await (await keyFiles()).runPeerKey(file, out) })

  const keys = cli.command('keys').description('manage the gateway\'s access keys (through the running node, or directly when it is stopped)')
  const number = (name: string) => (value: string): number => {
    const n = Number(value)
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number ≥ 0, not "${value}"`)
    return n
  }
  keys.command('create')
    .description('create a key; its secret is printed once')
    .option(configOption, configHelp)
    .requiredOption('--name <name>', 'a label for the key')
    .option('--models <list>', 'comma-separated models the key may use (default: all)')
    .option('--rpm <n>', 'requests per minute (default: unlimited)', number('rpm'))
    .option('--concurrency <n>', 'requests at once (default: unlimited)', number('concurrency'))
    .option('--daily <n>', 'requests per day (default: unlimited)', number('daily'))
    .option('--balance <usd>', 'prepaid balance in USD, charged per token (default: not metered)', number('balance'))
    .action(async (opts: { config?: string, name: string, models?: string, rpm?: number, concurrency?: number, daily?: number, balance?: number }) => {
      await (await keysAdmin()).runKeys(await findConfig(opts.config), {
        action: 'create', name: opts.name, models: opts.models?.split(',').map((m) => m.trim()).filter((m) => m !== ''), rpm: opts.rpm, concurrency: opts.concurrency, daily: opts.daily, balanceUsd: opts.balance
      }, out)
    })
  keys.command('list').description('list the keys').option(configOption, configHelp).option('--json', 'print JSON')
    .action(async (opts: { config?: string, json?: boolean }) => { await (await keysAdmin()).runKeys(await findConfig(opts.config), { action: 'list' }, out, { json: opts.json }) })
  keys.command('topup').description('add USD to a key\'s balance').argument('<id>').argument('<usd>', 'amount in USD', number('usd')).option(configOption, configHelp)
    .action(async (id: string, usd: number, opts: { config?: string }) => { await (await keysAdmin()).runKeys(await findConfig(opts.config), { action: 'topup', id, usd }, out) })
  keys.command('revoke').description('revoke a key').argument('<id>').option(configOption, configHelp)
    .action(async (id: string, opts: { config?: string }) => { await (await keysAdmin()).runKeys(await findConfig(opts.config), { action: 'revoke', id }, out) })
  keys.command('usage').description('usage per key and model').option('--id <id>', 'only this key').option(configOption, configHelp).option('--json', 'print JSON')
    .action(async (opts: { config?: string, id?: string, json?: boolean }) => { await (await keysAdmin()).runKeys(await findConfig(opts.config), { action: 'usage', id: opts.id }, out, { json: opts.json }) })

  cli.command('psk')
    .description('print a fresh pre-shared key for a private network')
    .action(async () => { (await keyFiles()).runPsk(out) })

  cli.command('version')
    .description('print the version')
    .action(() => { out.line(VERSION) })

  return cli
}

/** "30s", "1m" → ms; a usage error otherwise. */
function durationMs (text: string): number {
  try {
    return parseDuration(text)
  } catch {
    throw new UsageError(`--timeout must be a duration like 30s or 2m, not "${text}"`)
  }
}

async function main (argv: string[]): Promise<void> {
  const debug = argv.includes('--debug')
  try {
    const args = argv.filter((arg) => arg !== '--debug')
    // Bare `aicn`: the help, and success (asking what there is is not an error).
    if (args.length <= 2) {
      program().outputHelp()
      return
    }
    await program().parseAsync(args)
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode
      return
    }
    const known = err instanceof UsageError || err instanceof ConfigError
    process.stderr.write(`Error: ${(err as Error).message}\n`)
    if (debug && !known) process.stderr.write(`${(err as Error).stack ?? ''}\n`)
    process.exitCode = 1
  }
}

await main(process.argv)
