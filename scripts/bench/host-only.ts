// The libp2p host of an aicn worker with nothing of aicn around it: the floor an idle worker's memory and
// CPU stand on (scripts/bench/startup.ts runs it beside a real worker, docs/benchmarks.md "Start-up and idle").
//
//   node dist/scripts/bench/host-only.js --config <worker.json>
//
// It loads the worker's config as the daemon does, opens the same LevelDB peer store, builds the host with
// src/p2p/host.ts (the same transports, PSK, noise, yamux, identify, ping, kad-dht, gossipsub and patches,
// prometheus metrics on), starts it, subscribes to the topic and then does nothing: no heartbeats, no view,
// no job protocol, no HTTP API, no gateway. It prints "host-only ready" once started and stops on SIGTERM.
import '../../src/core/polyfill.ts'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LevelDatastore } from 'datastore-level'
import { Registry } from 'prom-client'
import { loadConfig } from '../../src/config/load.ts'
import { createHost } from '../../src/p2p/host.ts'
import { identityFromBase64 } from '../../src/p2p/identity.ts'
import { AGENT_VERSION } from '../../src/core/version.ts'

const { values: args } = parseArgs({ options: { config: { type: 'string' } } })
if (args.config === undefined) throw new Error('--config <worker.json> is required')
const config = await loadConfig(args.config)
const peerstorePath = join(config.App.Datastore, 'peerstore')
await mkdir(peerstorePath, { recursive: true })
const datastore = new LevelDatastore(peerstorePath)
await datastore.open()
const host = await createHost({
  config,
  privateKey: identityFromBase64(config.Identity.PrivKey).privateKey,
  datastore,
  agentVersion: AGENT_VERSION,
  metricsRegistry: new Registry()
})
await host.start()
host.services.pubsub.subscribe(config.App.TopicName)
process.stdout.write(`host-only ready ${host.peerId.toString()}\n`)
process.once('SIGTERM', () => {
  void Promise.resolve(host.stop()).then(async () => { await datastore.close() }).finally(() => process.exit(0))
})
