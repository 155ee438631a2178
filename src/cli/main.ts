// The `aicn` command line. Errors are one line saying what is wrong and how to fix it; --debug adds
// the stack trace.
import '../polyfill.ts'
import { Command, CommanderError } from 'commander'
import { ConfigError, UsageError } from '../errors.ts'
import { VERSION } from '../version.ts'
import { runDaemon, type Output } from './daemon.ts'
import { initNode } from './init.ts'
import { runPeerKey, runPsk } from './keys.ts'
import { defaultDir } from './paths.ts'

// eslint-disable-next-line no-console -- the CLI is the one place that prints for people
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
    .option('--api <host:port>', 'HTTP API address (default 127.0.0.1:6000)')
    .option('--bootstrap <multiaddr>', 'bootstrap peer, ending in /p2p/<id> (repeatable)', collect)
    .option('--psk <hex>', 'pre-shared key of a private network (64 hex characters)')
    .option('--network <name>', 'join a known public network from bootstrap-nodes.json, e.g. "dbc"')
    .action(async (mode: string, opts: { dir?: string, listen?: string[], api?: string, bootstrap?: string[], psk?: string, network?: string }) => {
      const result = await initNode({ mode, dir: opts.dir ?? defaultDir(), ...opts })
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
      .action(async (opts: { config?: string }) => { await runDaemon(opts, out) })
  }

  cli.command('peerkey')
    .description('load a peer key file, or create a secp256k1 one, and print its keys and peer ID')
    .argument('<file>')
    .action(async (file: string) => { await runPeerKey(file, out) })

  cli.command('psk')
    .description('print a fresh pre-shared key for a private network')
    .action(() => { runPsk(out) })

  cli.command('version')
    .description('print the version')
    .action(() => { out.line(VERSION) })

  return cli
}

async function main (argv: string[]): Promise<void> {
  const debug = argv.includes('--debug')
  try {
    await program().parseAsync(argv.filter((arg) => arg !== '--debug'))
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
