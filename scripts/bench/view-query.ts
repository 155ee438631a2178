// Benchmark of the network view's queries (src/registry/view.ts) on a synthetic network.
//
//   node --expose-gc --import tsx scripts/bench/view-query.ts
//
// For 1,000 and 10,000 nodes, each serving 1–3 projects out of 20 with 1–5 models out of 50, it
// measures update(), candidates(), projects(), models() and nodes() per call (median and p99 over a
// bounded number of calls), the heap the view holds, and how long a warm restart (open() of a
// persisted view) takes. Prints a Markdown table for docs/benchmarks.md. Seeded, so runs are comparable.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NetworkView } from '../../src/registry/view.ts'
import type { NodeEntry } from '../../src/registry/view-types.ts'

const PROJECTS = 20
const MODELS = 50
const CALLS = 10_000
const NODES_CALLS = 1_000
const WARMUP = 1_000
const SIZES = [1_000, 10_000]
const ROUTING_FRESH_MS = 9 * 60_000

/** mulberry32: a small seeded generator, so every run builds the same network. */
function random (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const rand = random(42)
const int = (min: number, max: number): number => min + Math.floor(rand() * (max - min + 1))
const pick = <T>(items: T[]): T => items[Math.floor(rand() * items.length)]!
const projectNames = Array.from({ length: PROJECTS }, (_, i) => `project-${String(i).padStart(2, '0')}`)
const modelNames = Array.from({ length: MODELS }, (_, i) => `model-${String(i).padStart(2, '0')}`)
const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

function distinct<T> (items: T[], count: number): T[] {
  const chosen = new Set<T>()
  while (chosen.size < count) chosen.add(pick(items))
  return [...chosen]
}

/** A heartbeat shaped like a real one: a 53-character secp256k1 peer id, 64-char cids. */
function syntheticEntry (now: number): NodeEntry {
  const nodeId = '16Uiu2HAm' + Array.from({ length: 44 }, () => pick([...BASE58])).join('')
  const projects = distinct(projectNames, int(1, 3)).map((project) => ({
    project,
    models: distinct(modelNames, int(1, 5)).map((model) => ({
      model,
      cid: Array.from({ length: 64 }, () => int(0, 15).toString(16)).join(''),
      type: 0,
      busy: int(0, 9),
      available: rand() < 0.9
    }))
  }))
  return { nodeId, projects, nodeType: 0x04, version: 'aicn/0.1.0', lastHeard: now - int(0, 5 * 60_000) }
}

function gc (): void {
  (globalThis as { gc?: () => void }).gc?.()
}

interface Stats { median: number, p99: number }

/** Per-call latency in microseconds over `calls` calls of `run(i)`, after a warm-up. */
function measure (calls: number, run: (i: number) => unknown): Stats {
  for (let i = 0; i < WARMUP; i++) run(i)
  const times = new Float64Array(calls)
  for (let i = 0; i < calls; i++) {
    const start = process.hrtime.bigint()
    run(i)
    times[i] = Number(process.hrtime.bigint() - start) / 1000
  }
  times.sort()
  return { median: times[Math.floor(calls / 2)]!, p99: times[Math.floor(calls * 0.99)]! }
}

const us = (s: Stats): string => `${s.median.toFixed(1)} / ${s.p99.toFixed(1)}`
const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1)

async function run (size: number): Promise<string[]> {
  const now = Date.now()
  const entries = Array.from({ length: size }, () => syntheticEntry(now))
  const queries = Array.from({ length: CALLS }, () => ({ project: pick(projectNames), model: pick(modelNames) }))

  gc()
  const heapBefore = process.memoryUsage().heapUsed
  const view = new NetworkView({ routingFreshMs: ROUTING_FRESH_MS })
  for (const entry of entries) view.update(entry)
  gc()
  const heapView = process.memoryUsage().heapUsed - heapBefore

  // Re-announcements of known nodes with new busy counts: the steady-state cost of a heartbeat.
  const update = measure(CALLS, (i) => {
    const entry = entries[i % size]!
    view.update({ ...entry, lastHeard: now, projects: entry.projects.map((p) => ({ ...p, models: p.models.map((m) => ({ ...m, busy: (m.busy + 1) % 10 })) })) })
  })
  let found = 0
  const candidates = measure(CALLS, (i) => { found += view.candidates(queries[i]!.project, queries[i]!.model).length })
  const perQuery = found / (CALLS + WARMUP)
  const projects = measure(CALLS, () => view.projects(100))
  const models = measure(CALLS, (i) => view.models(queries[i]!.project, 100))
  const nodes = measure(NODES_CALLS, () => view.nodes())

  // Warm restart: persist the view, then time open() of a new one on the same database.
  const dir = await mkdtemp(join(tmpdir(), 'aicn-bench-view-'))
  try {
    const persisted = new NetworkView({ path: join(dir, 'view.db'), routingFreshMs: ROUTING_FRESH_MS })
    await persisted.open()
    for (const entry of entries) persisted.update(entry)
    await persisted.close()
    const reopened = new NetworkView({ path: join(dir, 'view.db'), routingFreshMs: ROUTING_FRESH_MS })
    const start = performance.now()
    await reopened.open()
    const openMs = performance.now() - start
    if (reopened.size() !== size) throw new Error(`reopened view has ${reopened.size()} entries, expected ${size}`)
    await reopened.close()
    return [
      `| ${size.toLocaleString('en')} | ${us(candidates)} (${perQuery.toFixed(0)} nodes each) | ${us(projects)} | ${us(models)} | ${us(nodes)} | ${us(update)} | ${mb(heapView)} | ${openMs.toFixed(0)} |`
    ]
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if ((globalThis as { gc?: unknown }).gc === undefined) process.stderr.write('note: run with --expose-gc for a steadier heap figure\n')
const lines = [
  `Node ${process.version}, ${CALLS.toLocaleString('en')} calls each (nodes(): ${NODES_CALLS.toLocaleString('en')}), times in µs as median / p99.`,
  '',
  '| nodes | candidates() | projects(100) | models(p, 100) | nodes() | update() | view heap MB | open() ms |',
  '|---|---|---|---|---|---|---|---|'
]
for (const size of SIZES) lines.push(...await run(size))
process.stdout.write(lines.join('\n') + '\n')
