// What yamux's largest stream window (src/p2p/host.ts, YAMUX_MAX_STREAM_WINDOW) costs bulk transfers: a
// sender in this process and a receiver in a child process (each its own libp2p node on 127.0.0.1, the
// daemons' PSK, noise, yamux with their window-update and decoder patches), one stream, --mib MiB in
// 64 KiB length-prefixed frames (an image answer's shape), for each window size in turn, --runs times
// interleaved. A smaller window bounds what a peer can make a paused stream hold (docs/reliability.md).
//
//   npm run build && node dist/scripts/bench/yamux-window.js [--mib 64] [--runs 3] [--windows 16,4,2,1]
import '../../src/polyfill.ts'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { installYamuxWindowHysteresis } from '../../src/p2p/patches/yamux-window.ts'
import { installQuietLengthPrefixedDecoder } from '../../src/p2p/patches/lp-decoder.ts'
import { swarmKeyFromHex } from '../../src/p2p/psk.ts'
import { intArg } from './lib.ts'

const PROTOCOL = '/aicn-bench/bulk/1.0.0'
const MiB = 1024 * 1024
const FRAME = 64 * 1024
const WATCHDOG_MS = 10 * 60_000

installYamuxWindowHysteresis()
installQuietLengthPrefixedDecoder()

async function node (windowBytes: number, listen: boolean): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: windowBytes } })],
    connectionProtector: preSharedKey({ psk: swarmKeyFromHex('ec'.repeat(32)) })
  })
}

/** The child: one receiver per window size; reads everything, then answers with one byte. */
async function child (windows: number[]): Promise<void> {
  const addrs: string[] = []
  for (const w of windows) {
    const receiver = await node(w * MiB, true)
    await receiver.handle(PROTOCOL, async (stream) => {
      let bytes = 0
      for await (const frame of lp.decode(stream, { maxDataLength: 2 * FRAME })) {
        if (frame.byteLength === 0) break
        bytes += frame.byteLength
      }
      stream.send(lp.encode.single(new TextEncoder().encode(String(bytes))))
      await stream.close().catch(() => {})
    })
    addrs.push(receiver.getMultiaddrs()[0]!.toString())
  }
  process.send?.(addrs)
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { mib: { type: 'string' }, runs: { type: 'string' }, windows: { type: 'string' }, child: { type: 'string' } } })
  const windows = (values.windows ?? '16,4,2,1').split(',').map((w) => intArg(w, 16, 'windows', 64))
  if (values.child !== undefined) { await child(windows); return }
  const total = intArg(values.mib, 64, 'mib', 1024) * MiB
  const runs = intArg(values.runs, 3, 'runs', 20)
  const watchdog = setTimeout(() => { process.stderr.write('watchdog: the run took too long\n'); process.exit(2) }, WATCHDOG_MS)
  const proc = fork(fileURLToPath(import.meta.url), ['--child', '1', '--windows', windows.join(',')], { stdio: 'inherit' })
  try {
    const addrs = await new Promise<string[]>((resolve, reject) => { proc.once('message', (m) => { resolve(m as string[]) }); proc.once('exit', () => { reject(new Error('the receiver exited')) }) })
    const results = new Map<number, number[]>(windows.map((w) => [w, []]))
    const payload = new Uint8Array(FRAME).fill(7)
    for (let run = 0; run < runs; run++) {
      for (const [i, w] of windows.entries()) {
        const sender = await node(w * MiB, false)
        try {
          const stream = await sender.dialProtocol(multiaddr(addrs[i]!), PROTOCOL)
          const started = performance.now()
          for (let sent = 0; sent < total; sent += FRAME) {
            if (!stream.send(lp.encode.single(payload))) await new Promise((resolve) => { stream.addEventListener('drain', resolve, { once: true }) })
          }
          stream.send(lp.encode.single(new Uint8Array(0)))
          for await (const answer of lp.decode(stream)) { if (Number(new TextDecoder().decode(answer.subarray())) !== total) throw new Error('short transfer'); break }
          const ms = performance.now() - started
          results.get(w)!.push(total / MiB / (ms / 1000))
          await stream.close().catch(() => {})
        } finally {
          await sender.stop()
        }
      }
    }
    const lines = [`Node ${process.version}; ${total / MiB} MiB in ${FRAME / 1024} KiB frames, one stream, sender and receiver in two processes; ${runs} runs interleaved`, '', '| max stream window | MiB/s per run | median |', '|---|---|---|']
    for (const w of windows) {
      const r = results.get(w)!
      const sorted = [...r].sort((a, b) => a - b)
      lines.push(`| ${w} MiB | ${r.map((x) => x.toFixed(0)).join(', ')} | ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} |`)
    }
    process.stdout.write(lines.join('\n') + '\n')
  } finally {
    clearTimeout(watchdog)
    proc.kill()
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
