// What the js-libp2p stack costs per message when no process boundary is crossed: two libp2p nodes in this
// one process (TCP on 127.0.0.1, the daemons' PSK, noise, yamux with their window-update and decoder
// patches, prometheus metrics on), a 600-byte echo on one kept stream, sequential round trips. Each round
// trip is two sends and two receives through the whole stack, both ends' CPU counted.
//
//   npm run build && node dist/scripts/bench/libp2p-echo.js [--rounds 10000] [--runs 3]
//
// Compare with the jobs benchmark's "32-byte echo on a stream kept open", which crosses from the benchmark
// process to a daemon and back (docs/benchmarks.md, "Where the time goes").
import '../../src/core/polyfill.ts'
import { parseArgs } from 'node:util'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import { Registry } from 'prom-client'
import { installYamuxWindowHysteresis } from '../../src/p2p/patches/yamux-window.ts'
import { installQuietLengthPrefixedDecoder } from '../../src/p2p/patches/lp-decoder.ts'
import { swarmKeyFromHex } from '../../src/p2p/psk.ts'
import { f1, intArg, summarize } from './lib.ts'

const { values: args } = parseArgs({ options: { rounds: { type: 'string' }, runs: { type: 'string' } } })
const ROUNDS = intArg(args.rounds, 10_000, 'rounds', 1_000_000)
const RUNS = intArg(args.runs, 3, 'runs', 100)
const WARMUP = 5_000
const MESSAGE = new Uint8Array(600).fill(7)
const WATCHDOG_MS = 10 * 60_000

installYamuxWindowHysteresis()
installQuietLengthPrefixedDecoder()

async function node (): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk: swarmKeyFromHex('ec'.repeat(32)) }),
    metrics: prometheusMetrics({ registry: new Registry() })
  })
}

/** One round trip: send, and resolve when the echo is back. */
async function roundTrip (stream: Stream): Promise<void> {
  await new Promise<void>((resolve) => {
    const onMessage = (): void => {
      stream.removeEventListener('message', onMessage)
      resolve()
    }
    stream.addEventListener('message', onMessage)
    stream.send(MESSAGE)
  })
}

const watchdog = setTimeout(() => { process.stderr.write('watchdog: the run took too long\n'); process.exit(2) }, WATCHDOG_MS)
const a = await node()
const b = await node()
try {
  await b.handle('/aicn-bench/echo/1.0.0', (stream) => {
    stream.addEventListener('message', (evt: StreamMessageEvent) => { stream.send(evt.data) })
  })
  const stream = await a.dialProtocol(b.getMultiaddrs()[0]!, '/aicn-bench/echo/1.0.0')
  for (let i = 0; i < WARMUP; i++) await roundTrip(stream)
  const lines = [`Node ${process.version}; ${ROUNDS} round trips of ${MESSAGE.byteLength} bytes per run after ${WARMUP} warm-up`, '', '| run | CPU µs per round trip (both ends) | wall p50 µs | wall p99 µs |', '|---|---|---|---|']
  for (let run = 1; run <= RUNS; run++) {
    const samples: number[] = []
    const cpu = process.cpuUsage()
    for (let i = 0; i < ROUNDS; i++) {
      const started = performance.now()
      await roundTrip(stream)
      samples.push((performance.now() - started) * 1000)
    }
    const used = process.cpuUsage(cpu)
    const wall = summarize(samples)
    lines.push(`| ${run} | ${f1((used.user + used.system) / ROUNDS)} | ${f1(wall.p50)} | ${f1(wall.p99)} |`)
  }
  process.stdout.write(lines.join('\n') + '\n')
} finally {
  clearTimeout(watchdog)
  await a.stop()
  await b.stop()
}
