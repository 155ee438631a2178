// Idle cost of a network: CPU each daemon spends at rest, its connections, and (optionally) a V8 CPU
// profile of the first input node and the first worker, to see where an idle node's time goes as N grows.
//
//   npm run build && node dist/scripts/bench/idle.js [--nodes 5,20] [--heartbeat 180s] [--rest-seconds 60]
//        [--profile DIR] [--inputs 1|2]
//
// Same network as scale.ts (./network.ts): input nodes first, workers in batches of 5 bootstrapping to
// every input node, one pre-shared key, 127.0.0.1 only, no models. After every node hears every other and
// a settle time of 10 s, it reads /proc/<pid>/stat of every daemon at t0 and t0 + --rest-seconds and
// prints ms of CPU per second per daemon (input nodes and workers apart) and the connection counts.
// With --profile, the profiled daemons run with --cpu-prof and are stopped with SIGTERM at the end, so
// Node writes a .cpuprofile into DIR; the script prints the top functions by self time.
import '../../src/core/polyfill.ts'
import { readdir, mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import type { TestNode } from '../../test/integration/harness.ts'
import { topFunctions } from './profile-top.ts'
import { call, cpuMs, destroyAll, loadAverage, log, runBench, startNetwork, summarize, waitAllHearAll } from './network.ts'

const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '5,20' },
    heartbeat: { type: 'string', default: '180s' },
    'busy-interval': { type: 'string' },
    'rest-seconds': { type: 'string', default: '60' },
    inputs: { type: 'string' },
    profile: { type: 'string' }
  }
})
const SIZES = args.nodes.split(',').map(Number)
const REST_MS = Number(args['rest-seconds']) * 1000
const PSK = 'bf'.repeat(32)

async function runIdle (size: number): Promise<string> {
  const name = `N=${size}`
  const inputsWanted = args.inputs !== undefined ? Number(args.inputs) : size >= 20 ? 2 : 1
  const profileDir = args.profile === undefined ? undefined : resolve(args.profile, `n${size}`)
  if (profileDir !== undefined) await mkdir(profileDir, { recursive: true })
  const net: TestNode[] = []
  const edit = (config: any): void => {
    config.App.PeersCollect.HeartbeatInterval = args.heartbeat
    if (args['busy-interval'] !== undefined) config.App.PeersCollect.BusyInterval = args['busy-interval']
  }
  try {
    const started = performance.now()
    const { inputs, workers } = await startNetwork({
      name,
      size,
      inputs: inputsWanted,
      psk: PSK,
      edit,
      // Profile the first input node and the first worker.
      nodeArgs: (i) => profileDir !== undefined && (i === 0 || i === inputsWanted) ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : undefined,
      batch: 5,
      timeoutMs: Math.max(180_000, size * 8_000)
    }, net)
    const { converged, seconds, heard } = await waitAllHearAll(net, name, 180_000)
    log(`${name}: started in ${((performance.now() - started) / 1000).toFixed(0)} s; ${converged ? `all hear all after ${seconds.toFixed(1)} s more` : `NOT converged: ${heard.join(',')}`}`)
    await sleep(10_000)
    const before = net.map((n) => cpuMs(n.pid))
    const t0 = performance.now()
    await sleep(REST_MS)
    const after = net.map((n) => cpuMs(n.pid))
    const secs = (performance.now() - t0) / 1000
    const perSec = net.map((_, i) => (after[i]! - before[i]!) / secs)
    const conns = await Promise.all(net.map(async (n) => { try { return ((await call(n, '/api/v0/swarm/peers', undefined, 5_000)).body as unknown[]).length } catch { return -1 } }))
    const w = summarize(perSec.slice(inputs.length))
    const c = summarize(conns.slice(inputs.length))
    const lines = [
      `${name} (${inputs.length} + ${workers.length}), heartbeat ${args.heartbeat}: CPU ms/s at rest: inputs ${perSec.slice(0, inputs.length).map((x) => x.toFixed(1)).join(', ')}; workers mean ${w.mean.toFixed(1)} (min ${w.min.toFixed(1)}, max ${w.max.toFixed(1)}); all daemons ${(perSec.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} cores`,
      `  connections: inputs ${conns.slice(0, inputs.length).join(', ')}; workers mean ${c.mean.toFixed(1)} (min ${c.min}, max ${c.max})`
    ]
    // SIGTERM lets Node write the profile.
    if (profileDir !== undefined) await Promise.all([inputs[0]!, workers[0]!].map(async (n) => await n.stop()))
    return lines.join('\n')
  } finally {
    await destroyAll(net)
  }
}

async function main (): Promise<void> {
  const out: string[] = [`load average before: ${await loadAverage()}`]
  for (const size of SIZES) out.push(await runIdle(size))
  out.push(`load average after: ${await loadAverage()}`)
  if (args.profile !== undefined) {
    for (const size of SIZES) {
      const dir = resolve(args.profile, `n${size}`)
      for (const f of (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.cpuprofile'))) {
        out.push(`profile ${join(dir, f)}:`, ...(await topFunctions(join(dir, f), 25)))
      }
    }
  }
  process.stdout.write(out.join('\n') + '\n')
}

await runBench('aicn-bench-idle-', 30 * 60_000, main)
