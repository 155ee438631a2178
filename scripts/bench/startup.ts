// Start-up and idle cost of one daemon, against a bare node:http server measured in the same run.
//
//   npm run build && node dist/scripts/bench/startup.js [--runs 7] [--rest-seconds 30] [--profile DIR]
//
// Start-up: the time from spawn() until GET /api/v0/id answers 200 (polled every 2 ms on a fresh
// connection), for `aicn daemon` (a worker from `aicn init worker`, no bootstrap peers) and for a bare
// `node -e` HTTP server on 127.0.0.1, the two alternating run by run; then the median of each and their
// ratio. Idle: a worker with no peers, and a worker connected to one input node, each after a 10 s settle:
// CPU (/proc/<pid>/stat) over --rest-seconds and VmRSS at the end, beside two floors measured the same way
// in the same run: a bare node:http server, and the worker's libp2p host alone (./host-only.ts: the same
// config, peer store and libp2p services, connected to the same input node, nothing of aicn around it).
// --profile runs the connected worker with --cpu-prof and prints where its idle time goes.
import '../../src/core/polyfill.ts'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises'
import { request } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { CLI, REPO_ROOT, TestNode } from '../../test/integration/harness.ts'
import { cpuMs, loadAverage, log, nodes, onCleanup, runBench, summarize } from './network.ts'
import { intArg, rssMb } from './lib.ts'

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '7' }, 'rest-seconds': { type: 'string', default: '30' }, profile: { type: 'string' } } })
const RUNS = intArg(args.runs, 7, 'runs', 50)
const REST_MS = intArg(args['rest-seconds'], 30, 'rest-seconds', 600) * 1000
const PSK = 'd7'.repeat(32)

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { const { port } = server.address() as AddressInfo; server.close(() => { resolve(port) }) })
  })
}

function get (url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: 1000 }, (res) => { res.resume(); res.on('end', () => { resolve(res.statusCode ?? 0) }) })
    req.on('error', () => { resolve(0) })
    req.on('timeout', () => { req.destroy(); resolve(0) })
    req.end()
  })
}

const children = new Set<ChildProcess>()
onCleanup(async () => { for (const c of children) { try { c.kill('SIGKILL') } catch {} } })

/** SIGTERM (SIGKILL after 15 s) and wait for its exit. */
async function stopChild (child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  child.kill('SIGTERM')
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(killer)
  children.delete(child)
}

/** Spawns `argv`, polls `url` until it answers 200 (at most 30 s); ms from spawn, then stops the process. */
async function timeToAnswer (argv: string[], url: string): Promise<number> {
  const t0 = performance.now()
  const child = spawn(process.execPath, argv, { stdio: 'ignore' })
  children.add(child)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  let ms = NaN
  while (performance.now() - t0 < 30_000 && child.exitCode === null) {
    if (await get(url) === 200) { ms = performance.now() - t0; break }
    await sleep(2)
  }
  await stopChild(child, exited)
  return ms
}

async function idleOf (pid: number | undefined): Promise<{ cpuPct: number, rss: number }> {
  await sleep(10_000)
  const c0 = cpuMs(pid)
  const t0 = performance.now()
  await sleep(REST_MS)
  const cpu = cpuMs(pid) - c0
  return { cpuPct: cpu / ((performance.now() - t0) / 1000) / 10, rss: rssMb(pid) }
}

/** Spawns `argv`, waits for `ready` on its stdout (at most 30 s), measures it at rest, then stops it. */
async function idleOfProcess (argv: string[], ready: string): Promise<{ cpuPct: number, rss: number }> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(child)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${argv.join(' ')}: no "${ready}" within 30 s`)) }, 30_000)
    child.stdout!.on('data', (d: Buffer) => { output += d.toString(); if (output.includes(ready)) { clearTimeout(timer); resolve() } })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${argv.join(' ')} exited with ${code}: ${output}`)) })
  })
  const idle = await idleOf(child.pid)
  await stopChild(child, exited)
  return idle
}

async function main (): Promise<void> {
  const out = [`load average before: ${await loadAverage()}`]
  // Start-up.
  const worker = await TestNode.create({ mode: 'worker', psk: PSK })
  const apiPort = await freePort()
  const config = JSON.parse(await readFile(worker.configPath, 'utf8'))
  config.API.Addr = `127.0.0.1:${apiPort}`
  await writeFile(worker.configPath, JSON.stringify(config, null, 2))
  const barePort = await freePort()
  const bare = `require('node:http').createServer((q, s) => { s.setHeader('content-type', 'application/json'); s.end('{}') }).listen(${barePort}, '127.0.0.1')`
  const bareMs: number[] = []
  const aicnMs: number[] = []
  for (let r = 0; r < RUNS; r++) {
    bareMs.push(await timeToAnswer(['-e', bare], `http://127.0.0.1:${barePort}/`))
    aicnMs.push(await timeToAnswer([CLI, 'daemon', '--config', worker.configPath], `http://127.0.0.1:${apiPort}/api/v0/id`))
    log(`run ${r + 1}: bare ${bareMs.at(-1)!.toFixed(0)} ms, aicn ${aicnMs.at(-1)!.toFixed(0)} ms`)
  }
  const b = summarize(bareMs)
  const a = summarize(aicnMs)
  out.push(`start-up, spawn → first 200 (${RUNS} runs each, alternating): bare node:http median ${b.median.toFixed(0)} ms (min ${b.min.toFixed(0)}, max ${b.max.toFixed(0)}); aicn worker median ${a.median.toFixed(0)} ms (min ${a.min.toFixed(0)}, max ${a.max.toFixed(0)}); ratio ${(a.median / b.median).toFixed(2)}`)

  // Idle: a lone worker, then a worker connected to an input node.
  const lone = await TestNode.start({ mode: 'worker', psk: PSK })
  nodes.add(lone)
  const loneIdle = await idleOf(lone.pid)
  await lone.destroy()
  nodes.delete(lone)
  out.push(`idle, worker with no peers: ${loneIdle.cpuPct.toFixed(3)} % of a core over ${REST_MS / 1000} s, RSS ${loneIdle.rss.toFixed(0)} MB`)
  const input = await TestNode.start({ mode: 'input', psk: PSK })
  nodes.add(input)
  const profileDir = args.profile === undefined ? undefined : resolve(args.profile)
  if (profileDir !== undefined) await mkdir(profileDir, { recursive: true })
  const connected = await TestNode.start({ mode: 'worker', psk: PSK, bootstrap: [await input.addr()], nodeArgs: profileDir === undefined ? undefined : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] })
  nodes.add(connected)
  const connIdle = await idleOf(connected.pid)
  const inputRss = rssMb(input.pid)
  out.push(`idle, worker connected to one input node: ${connIdle.cpuPct.toFixed(3)} % of a core over ${REST_MS / 1000} s, RSS ${connIdle.rss.toFixed(0)} MB (the input node: RSS ${inputRss.toFixed(0)} MB)`)
  // The floors, measured the same way: a bare server, and the worker's libp2p host alone on the same input node.
  const bareIdle = await idleOfProcess(['-e', `${bare}; console.log('bare ready')`], 'bare ready')
  out.push(`idle, bare node:http server: ${bareIdle.cpuPct.toFixed(3)} % of a core, RSS ${bareIdle.rss.toFixed(0)} MB`)
  const hostOnly = await TestNode.create({ mode: 'worker', psk: PSK, bootstrap: [await input.addr()] })
  const hostIdle = await idleOfProcess([join(REPO_ROOT, 'dist/scripts/bench/host-only.js'), '--config', hostOnly.configPath], 'host-only ready')
  out.push(`idle, the worker's libp2p host alone (host-only.ts) on the same input node: ${hostIdle.cpuPct.toFixed(3)} % of a core, RSS ${hostIdle.rss.toFixed(0)} MB`)
  if (profileDir !== undefined) {
    await connected.stop()
    const { topFunctions } = await import('./profile-top.ts')
    for (const f of (await readdir(profileDir)).filter((f) => f.endsWith('.cpuprofile'))) out.push(`profile ${join(profileDir, f)}:`, ...(await topFunctions(join(profileDir, f), 30)))
  }
  out.push(`load average after: ${await loadAverage()}`)
  out.push(`startup: bare_ms=${b.median.toFixed(0)} aicn_ms=${a.median.toFixed(0)} ratio=${(a.median / b.median).toFixed(2)} idle_worker_cpu_pct=${connIdle.cpuPct.toFixed(3)} idle_worker_rss_mb=${connIdle.rss.toFixed(0)} lone_worker_cpu_pct=${loneIdle.cpuPct.toFixed(3)} lone_worker_rss_mb=${loneIdle.rss.toFixed(0)} bare_rss_mb=${bareIdle.rss.toFixed(0)} host_only_rss_mb=${hostIdle.rss.toFixed(0)} host_only_cpu_pct=${hostIdle.cpuPct.toFixed(3)}`)
  process.stdout.write(out.join('\n') + '\n')
}

await runBench('aicn-bench-startup-', 20 * 60_000, main)
