// Writes to the peer store of an idle worker connected to one input node (docs/benchmarks.md "Start-up
// and idle"). Both daemons run with scripts/bench/count-datastore-writes.ts preloaded, which counts the
// puts reaching their LevelDB datastore by key prefix (/peers is libp2p's peer store).
//
//   npm run build && node dist/scripts/bench/peer-store-writes.js [--rest-seconds 60]
//
// After the worker has connected and a 10 s settle, the counts at t0 and t0 + --rest-seconds; prints the
// difference for each daemon.
import '../../src/core/polyfill.ts'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { TestNode } from '../../test/integration/harness.ts'
import { loadAverage, nodes, runBench } from './network.ts'
import { intArg } from './lib.ts'

const { values: args } = parseArgs({ options: { 'rest-seconds': { type: 'string', default: '60' } } })
const REST_MS = intArg(args['rest-seconds'], 60, 'rest-seconds', 600) * 1000
const PSK = 'd7'.repeat(32)
const COUNTER = fileURLToPath(new URL('./count-datastore-writes.js', import.meta.url))

async function countsOf (node: TestNode): Promise<Record<string, number>> {
  try {
    return JSON.parse(await readFile(`${process.env.AICN_WRITE_COUNT_FILE ?? ''}.${node.pid}`, 'utf8')) as Record<string, number>
  } catch {
    return {}
  }
}

function diff (a: Record<string, number>, b: Record<string, number>): string {
  const kinds = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()
  return kinds.map((k) => `${k}: ${(b[k] ?? 0) - (a[k] ?? 0)}`).join(', ') || 'none'
}

async function main (): Promise<void> {
  process.env.AICN_WRITE_COUNT_FILE = join(process.env.TMPDIR ?? '/tmp', 'writes')
  const out = [`load average before: ${await loadAverage()}`]
  const nodeArgs = ['--import', COUNTER]
  const input = await TestNode.start({ mode: 'input', psk: PSK, nodeArgs })
  nodes.add(input)
  const worker = await TestNode.start({ mode: 'worker', psk: PSK, bootstrap: [await input.addr()], nodeArgs })
  nodes.add(worker)
  await sleep(10_000)
  const w0 = await countsOf(worker)
  const i0 = await countsOf(input)
  await sleep(REST_MS)
  // the counters write once a second
  await sleep(1_100)
  out.push(`datastore puts over ${REST_MS / 1000} s at rest, worker connected to one input node: worker ${diff(w0, await countsOf(worker))}; input node ${diff(i0, await countsOf(input))}`)
  out.push(`load average after: ${await loadAverage()}`)
  process.stdout.write(out.join('\n') + '\n')
}

await runBench('aicn-bench-peer-store-', 10 * 60_000, main)
