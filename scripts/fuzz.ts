// The fuzzer (issue 7): generated HTTP requests on every API route, and garbage and mutated frames on the
// job and RPC protocols from a rogue peer, against a real pair of daemons on 127.0.0.1 — an input node B
// and a worker W with a fake model. A finding is a crash (a daemon exited), a hang (no answer in time), a
// status the README does not document, an error answer without the JSON error body, an internal error
// (500) caused by input, a stack trace in an answer, or a worker that does not free its streams.
//
// test/integration/fuzz.test.ts runs a bounded number of cases with these generators in CI; this script
// is the long run:
//
//   npm run build && node dist/scripts/fuzz.js [--minutes 10] [--seed N]
//
// It prints counts per route and status and every finding, and exits 1 when there was one.
import '../src/core/polyfill.ts'
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { isMainModule } from './is-main.ts'
import fc from 'fast-check'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import type { Stream } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { job, protocol } from '../src/proto/index.ts'
import { JOB_PROTOCOL } from '../src/protocols/job/index.ts'
import { RPC_PROTOCOL } from '../src/protocols/rpc/index.ts'
import { swarmKeyFromHex } from '../src/p2p/psk.ts'
import { controlRoutes } from '../src/api/routes/control.ts'
import { registryRoutes } from '../src/api/routes/registry.ts'
import { jobRoutes } from '../src/api/routes/jobs.ts'
import { keyRoutes } from '../src/api/routes/keys.ts'
import { Gateway } from '../src/gateway/gateway.ts'
import { DEFAULT_BODY_LIMIT } from '../src/api/body.ts'
import { startFakeModelServer, type FakeModelServer } from './fake-model.ts'
import { TestNode, waitFor } from '../test/integration/harness.ts'

export const FUZZ_PSK = 'f0'.repeat(32)
export const PROJECT = 'FuzzProject'
export const MODEL = 'fuzz-chat'
/** A valid node id that no node here has. It only ever appears at 127.0.0.1:1, which refuses at once:
 * a bare id would send the node on a DHT search, and nothing may leave this machine. */
export const UNKNOWN_NODE = '16Uiu2HAmJnGqxBqtWGkymSsy5WDKJY5A5NctcUduENADDptQFF4Y'
/** How long an HTTP answer may take before it counts as a hang. */
export const HTTP_TIMEOUT_MS = 10_000
/** rendezvous/peers is a DHT lookup the node itself gives up on after 10 s (then 504): allow for that. */
const SLOW_ROUTES = new Map([['/api/v0/rendezvous/peers', 20_000]])
/** How long the worker may take to answer a protocol stream we half-closed. */
export const STREAM_TIMEOUT_MS = 20_000
/** How long a stream we keep open is left before we reset it ourselves (a requester that goes away). */
const OPEN_WAIT_MS = 2_000
/** Streams opened on the worker at once. */
export const STREAM_WAVE = 20

// ---------------------------------------------------------------------------------------------------
// The pair of daemons

export interface FuzzEnv { bId: string, wId: string, project: string, model: string, modelApi: string }

export interface FuzzPair {
  b: TestNode
  w: TestNode
  fake: FakeModelServer
  env: FuzzEnv
  close: () => Promise<void>
}

export async function startFuzzPair (): Promise<FuzzPair> {
  const fake = await startFakeModelServer({ model: MODEL })
  const nodes: TestNode[] = []
  const close = async (): Promise<void> => {
    await Promise.all(nodes.map(async (n) => { await n.destroy() }))
    await fake.close()
  }
  try {
    const b = await TestNode.start({ mode: 'input', psk: FUZZ_PSK })
    nodes.push(b)
    const w = await TestNode.start({ mode: 'worker', psk: FUZZ_PSK, bootstrap: [await b.addr()] })
    nodes.push(w)
    const env: FuzzEnv = { bId: b.peerId, wId: w.peerId, project: PROJECT, model: MODEL, modelApi: `${fake.url}/v1/chat/completions` }
    const pair: FuzzPair = { b, w, fake, env, close }
    await restoreModel(pair)
    await waitFor(async () => (await b.call('/api/v0/ai/projects/peers', { project: PROJECT, model: MODEL })).body?.data?.length === 1, 30_000, 'B to see W\'s model')
    return pair
  } catch (err) {
    await close()
    throw err
  }
}

/** Registers W's model (again): the fuzzer may legitimately have unregistered or replaced it. */
export async function restoreModel (pair: FuzzPair): Promise<void> {
  const result = await pair.w.call('/api/v0/ai/project/register', { project: PROJECT, models: [{ model: MODEL, api: pair.env.modelApi, type: 0 }] })
  if (result.body?.code !== 0) throw new Error(`registering the fuzz model failed: ${JSON.stringify(result.body)}`)
  // The fake model keeps every request it saw; a long run must not turn that into a leak of its own.
  pair.fake.requests.length = 0
}

/** Problems with the daemons themselves: exited, or not answering /api/v0/id. */
export async function checkAlive (pair: FuzzPair): Promise<string[]> {
  const problems: string[] = []
  for (const [name, node] of [['B', pair.b], ['W', pair.w]] as const) {
    if (!node.running) {
      problems.push(`crash: ${name} exited; last output:\n${node.output.slice(-3000)}`)
      continue
    }
    try {
      const response = await fetch(`${node.api}/api/v0/id`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
      await response.arrayBuffer()
      if (response.status !== 200) problems.push(`${name} answers /api/v0/id with ${response.status}`)
    } catch (err) {
      problems.push(`${name} does not answer /api/v0/id: ${(err as Error).message}`)
    }
  }
  return problems
}

/** A plain chat job from B to W; undefined when it worked. */
export async function normalJob (pair: FuzzPair): Promise<string | undefined> {
  try {
    const response = await fetch(`${pair.b.api}/api/v0/chat/completion`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ node_id: pair.w.peerId, project: PROJECT, model: MODEL, messages: [{ role: 'user', content: 'Hello' }] }),
      signal: AbortSignal.timeout(30_000)
    })
    const body = await response.json() as { data?: { choices?: Array<{ message?: { content?: unknown } }> } }
    if (response.status !== 200 || typeof body.data?.choices?.[0]?.message?.content !== 'string') return `a normal job failed: ${response.status} ${JSON.stringify(body)}`
    return undefined
  } catch (err) {
    return `a normal job failed: ${(err as Error).message}`
  }
}

/** Honest jobs through B, one after another, while `attack` runs. */
export async function honestJobsDuring<T> (pair: FuzzPair, attack: () => Promise<T>): Promise<{ result: T, ok: number, failures: string[] }> {
  let running = true
  let ok = 0
  const failures: string[] = []
  const honest = (async () => {
    do {
      const problem = await normalJob(pair)
      if (problem === undefined) ok++
      else failures.push(problem)
    } while (running)
  })()
  try {
    return { result: await attack(), ok, failures }
  } finally {
    running = false
    await honest
  }
}

export async function rssKiB (pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid ?? 0}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN)
}

/** The job and RPC streams a node has open now (libp2p's per-protocol stream gauge, both directions). */
export async function protocolStreams (node: TestNode): Promise<number> {
  const response = await fetch(`${node.api}/metrics`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
  let open = 0
  for (const line of (await response.text()).split('\n')) {
    const match = /^libp2p_protocol_streams_total\{protocol="(?:inbound|outbound) \/aicn\/(?:job|rpc)\/1\.0\.0"\} (\d+)/.exec(line)
    if (match !== null) open += Number(match[1])
  }
  return open
}

// ---------------------------------------------------------------------------------------------------
// Findings and counts

export interface Finding { problem: string, where: string[], input: string, count: number }

/** Findings grouped by kind of problem, with the places it showed up and the first input that showed it. */
export class Findings {
  readonly list: Finding[] = []

  add (where: string, problem: string, input: string): void {
    // Sizes, times and ids differ between occurrences of one problem; statuses (3 digits) do not.
    const kind = (text: string): string => text.replace(/\d{4,}/g, 'N').slice(0, 48)
    const known = this.list.find((f) => kind(f.problem) === kind(problem))
    if (known === undefined) {
      this.list.push({ problem, where: [where], input, count: 1 })
      return
    }
    known.count++
    if (!known.where.includes(where)) known.where.push(where)
  }

  get size (): number {
    return this.list.length
  }

  toString (): string {
    return this.list.map((f) => {
      const places = f.where.length > 8 ? `${f.where.slice(0, 8).join('; ')}; and ${f.where.length - 8} more` : f.where.join('; ')
      return `- ${f.problem} (×${f.count}) on ${places}\n    first input: ${f.input}`
    }).join('\n')
  }
}

/** Counts of outcomes (status codes, "drop", "hang", …) per route. */
export class Tally {
  readonly counts = new Map<string, Map<string, number>>()
  total = 0

  add (route: string, outcome: string): void {
    const row = this.counts.get(route) ?? new Map<string, number>()
    row.set(outcome, (row.get(outcome) ?? 0) + 1)
    this.counts.set(route, row)
    this.total++
  }

  toString (): string {
    return [...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b))
      .map(([route, row]) => `${route.padEnd(36)} ${[...row.entries()].sort().map(([k, v]) => `${k}:${v}`).join(' ')}`)
      .join('\n')
  }
}

export function clip (text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text
}

// ---------------------------------------------------------------------------------------------------
// HTTP: the routes, the generators, a raw client and the judge

export interface RouteInfo { path: string, methods: string[] }

/** Every route the daemon serves, from the route factories themselves, so a new route is fuzzed at once.
 * The factories only close over their dependencies, so empty stand-ins are enough to list them. */
export function apiRoutes (): RouteInfo[] {
  const none = {} as never
  const routes = [
    ...controlRoutes(none),
    ...registryRoutes(none, none),
    ...jobRoutes({ dispatcher: none }),
    ...keyRoutes(none, none),
    ...new Gateway(none).routes()
  ]
  return routes.map((r) => ({ path: r.path, methods: [...r.methods] }))
}

export interface HttpCase {
  /** which generator made it, for the report */
  family: string
  node: 'b' | 'w'
  /** the declared route, or "unmatched" */
  route: string
  method: string
  target: string
  headers: Array<[string, string]>
  body: Buffer
  noHost: boolean
  /** the whole request instead of one built from the fields (not even HTTP) */
  wire?: Buffer
  /** we half-close after sending: the client gives up (it announced more body than it sent) */
  halfClose: boolean
  /** framing the server cannot trust, oversized headers or body: closing without an answer is fine */
  mayDrop: boolean
}

/** The fields the routes read (src/api/routes/*.ts, src/gateway/gateway.ts). */
const FIELDS = [
  'node_id', 'node_addr', 'timeout', 'project', 'model', 'models', 'api', 'type', 'cid', 'number', 'messages',
  'stream', 'prompt', 'n', 'size', 'response_format', 'ipfs_node', 'name', 'rpm', 'concurrency', 'daily',
  'balance_usd', 'usd', 'id', 'since', 'input', 'max_tokens', 'max_completion_tokens', 'stream_options', 'temperature'
] as const

/** Values that mean something to a route, the most useful first (it is picked most often). Only loopback
 * addresses: the fuzzer must never make a node dial or resolve anything outside this machine. */
function valuePools (env: FuzzEnv): Record<string, readonly unknown[]> {
  const unknownAddr = `/ip4/127.0.0.1/tcp/1/p2p/${UNKNOWN_NODE}`
  return {
    node_id: [env.wId, env.bId, 'not-a-node', '', env.wId.toLowerCase(), `${env.wId}x`],
    node_addr: [unknownAddr, '/ip4/127.0.0.1/tcp/1', 'tcp://x', `/ip4/999.0.0.1/tcp/1/p2p/${UNKNOWN_NODE}`, `/ip4/127.0.0.1/tcp/1/p2p/${env.wId}`, ''],
    timeout: ['2s', '1s', '500ms', '0s', '-1s', '6m', 'soon', '1h', 5],
    project: [env.project, 'FuzzOther', ''],
    model: [env.model, `${env.project}/${env.model}`, 'Unknown-1B', '', 'a/b/c'],
    models: [[{ model: env.model, api: env.modelApi, type: 0 }], [1], 'x', [{}], [{ model: 'm', api: 'http://127.0.0.1:1/v1/chat/completions', type: 9 }]],
    api: [env.modelApi, 'http://127.0.0.1:1/v1/chat/completions', 'ftp://x', 'not a url', 'http://127.0.0.1:99999/x'],
    type: [0, 1, 2, 3, 4, 5, -1, '1', 1.5],
    cid: ['', 'x'],
    number: [0, 1, 100, -1, 1e20, '5', 1.5, 100_001],
    messages: [[{ role: 'user', content: 'Hello' }], [], 'hi', [{}], [{ role: 'user', content: [{ type: 'text', text: 'x' }] }], [null]],
    stream: [false, true, 'true', '0', 2],
    prompt: ['a bird', ''],
    n: [1, 2, 0, -1, 10],
    size: ['256x256', 'huge'],
    response_format: ['url', 'b64_json', 'xml'],
    ipfs_node: ['', 'http://127.0.0.1:1', 'ftp://x'],
    name: ['fuzz', ''],
    rpm: [1, 0, -1, 1.5, '3'],
    concurrency: [1, 0, -1, '3'],
    daily: [1, 0, -1, '3'],
    balance_usd: [5, 0, -1, 'x', 1e308],
    usd: [1, 0, -1, 'x'],
    id: ['key_nope', '', 'k'],
    since: ['2020-01-01', 'yesterday', ''],
    input: ['hello', ['a', 'b'], 3],
    max_tokens: [16, 0, -1, 1e12],
    max_completion_tokens: [16, -1],
    stream_options: [{ include_usage: true }, 'x', { include_usage: 'yes' }],
    temperature: [0.5, -1, 'hot']
  }
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']
const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/vnd.fuzz+json', 'text/json']
const ANY_TYPES = ['', 'application/octet-stream', 'multipart/form-data', 'multipart/form-data; boundary=xyz', 'text/html', 'garbage', ';;;', 'application/json; charset=latin1', 'image/png']
const AUTHORIZATIONS = ['Bearer', 'Bearer ', 'Bearer sk-aicn-deadbeef', 'Basic Zm9vOmJhcg==', 'Bearer a b', `Bearer ${'x'.repeat(8000)}`, 'bearer sk-aicn-', 'Bearer \u00ff\u00fe']
const HUGE_BODY_SIZES = [512 * 1024, DEFAULT_BODY_LIMIT - 300, DEFAULT_BODY_LIMIT + 1, 2 * DEFAULT_BODY_LIMIT, 4 * DEFAULT_BODY_LIMIT]
const HUGE_HEADER_SIZES = [100, 8_000, 16_000, 16_300, 17_000, 70_000]
/** Node's limit on all header bytes together (--max-http-header-size). */
const NODE_HEADER_LIMIT = 16 * 1024
const MALFORMED_JSON = [
  '{"node_id": ', 'NaN', '\ufeff{}', '{"a":1}{"b":2}', '{"a":1e999}', '{"__proto__":{"polluted":1}}', '{"node_id":"x","NODE_ID":5}',
  '[1,2]', '"str"', 'null', '{"a":"\\ud800"}', '{"a":"\\u0000"}', '{,}', '{"a" 1}', '{\'a\':1}', '\u0000', '{"messages":[' + '1,'.repeat(1000) + ']'
]

/** A random string, including ones that upset UTF-8, JSON and length checks. */
const weirdString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
  { weight: 1, arbitrary: fc.constantFrom('\u0000', '\ud800', 'a\udfffb', '\uffff', '\ufeff', 'a'.repeat(257), 'é'.repeat(3000), '../../etc/passwd', '%00', '\r\nX-Injected: 1') }
)

/** Damage to some bytes: bits flipped, cut short, bytes appended; each left out often enough that some
 * damaged inputs still decode and reach the checks behind the decoder. */
export interface Mutation { flips: Array<{ at: number, bit: number }>, cut: number | null, tail: Uint8Array | null }

/** `arb` about one time in `n`, otherwise null (fc.option's freq is the other way round: 1/freq is null). */
function oneIn<T> (n: number, arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: n - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb })
}

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  flips: fc.array(fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }), { maxLength: 3 }),
  cut: oneIn(3, fc.nat()),
  tail: oneIn(3, fc.uint8Array({ minLength: 1, maxLength: 16 }))
})

export function mutate (input: Uint8Array, m: Mutation): Uint8Array {
  let bytes = Uint8Array.from(input)
  for (const { at, bit } of m.flips) if (bytes.length > 0) bytes[at % bytes.length] ^= 1 << bit
  if (m.cut !== null) bytes = bytes.subarray(0, m.cut % (bytes.length + 1))
  return m.tail === null ? bytes : concat([bytes, m.tail])
}

export function concat (parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts)
}

/** Picks from a pool, the first (most useful) value most often. */
function pick<T> (pool: readonly T[]): fc.Arbitrary<T> {
  return fc.oneof({ weight: 3, arbitrary: fc.constant(pool[0]) }, { weight: 2, arbitrary: fc.constantFrom(...pool) })
}

function setOwn (target: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, so that "__proto__" becomes a key like any other instead of the prototype.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

export function httpCaseArb (env: FuzzEnv, routes: RouteInfo[]): fc.Arbitrary<HttpCase> {
  const pools = valuePools(env)
  // hasOwn: field names such as "constructor" must not find Object.prototype's members.
  const poolFor = (name: string): readonly unknown[] => { const key = name.toLowerCase(); return Object.hasOwn(pools, key) ? pools[key] : [''] }
  const fieldName: fc.Arbitrary<string> = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...FIELDS) },
    { weight: 1, arbitrary: fc.constantFrom(...FIELDS).map((f) => f.toUpperCase()) },
    { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', '') },
    { weight: 2, arbitrary: weirdString }
  )
  const anyJson: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 })
  const valueFor = (name: string): fc.Arbitrary<unknown> => fc.oneof(
    { weight: 4, arbitrary: pick(poolFor(name)) },
    { weight: 2, arbitrary: anyJson },
    { weight: 1, arbitrary: weirdString }
  )
  const entry = fieldName.chain((name) => valueFor(name).map((value) => [name, value] as const))

  // A plausible request (every field with a value that means something), with a few fields dropped and
  // a few wrong ones added: most requests get past the first checks and into the code behind them.
  const objectBody: fc.Arbitrary<Record<string, unknown>> = fc.record({
    base: fc.record(Object.fromEntries(FIELDS.map((f) => [f, pick(pools[f])])) as Record<string, fc.Arbitrary<unknown>>),
    drop: fc.oneof({ weight: 3, arbitrary: fc.subarray([...FIELDS], { maxLength: 3 }) }, { weight: 1, arbitrary: fc.subarray([...FIELDS]) }),
    extra: fc.array(entry, { maxLength: 6 })
  }).map(({ base, drop, extra }) => {
    const body: Record<string, unknown> = { ...base }
    for (const key of drop) delete body[key]
    for (const [key, value] of extra) setOwn(body, key, value)
    return body
  })
  const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value) ?? 'null')
  const jsonType = fc.oneof({ weight: 6, arbitrary: fc.constant('application/json') }, { weight: 3, arbitrary: fc.constantFrom<string | undefined>(undefined, ...JSON_TYPES) }, { weight: 1, arbitrary: fc.constantFrom(...ANY_TYPES) })
  const anyType = fc.constantFrom<string | undefined>(undefined, ...JSON_TYPES, ...ANY_TYPES)

  interface BodyPart { family: string, body: Buffer, contentType?: string }
  const bodies: fc.Arbitrary<BodyPart> = fc.oneof(
    { weight: 45, arbitrary: fc.tuple(objectBody, jsonType).map(([o, t]) => ({ family: 'object', body: json(o), contentType: t })) },
    { weight: 5, arbitrary: fc.tuple(anyJson, jsonType).map(([v, t]) => ({ family: 'json-value', body: json(v), contentType: t })) },
    {
      weight: 4,
      arbitrary: fc.tuple(fc.constantFrom(...FIELDS), fc.constantFrom(...HUGE_BODY_SIZES), jsonType)
        .map(([f, n, t]) => ({ family: 'huge', body: Buffer.from(`{"${f}":"${'x'.repeat(n)}"}`), contentType: t }))
    },
    {
      weight: 4,
      // Deep nesting in a field the route reads or passes on to the model.
      arbitrary: fc.tuple(fc.constantFrom('messages', 'model', 'project', 'input', 'prompt', 'stream_options', 'models', 'node_id'), fc.constantFrom(50, 1_000, 5_000, 100_000), fc.boolean(), jsonType)
        .map(([f, depth, arrays, t]) => {
          const nested = arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
          return { family: 'deep', body: Buffer.from(`{"project":"${env.project}","model":"${env.model}","node_id":"${env.wId}","messages":[],"${f}":${nested}}`), contentType: t }
        })
    },
    { weight: 10, arbitrary: fc.tuple(fc.uint8Array({ maxLength: 4096 }), anyType).map(([b, t]) => ({ family: 'bytes', body: Buffer.from(b), contentType: t })) },
    {
      weight: 6,
      arbitrary: fc.oneof(
        fc.constantFrom(...MALFORMED_JSON).map((s) => Buffer.from(s)),
        objectBody.chain((o) => { const s = JSON.stringify(o); return fc.nat(s.length).map((k) => Buffer.from(s.slice(0, k))) })
      ).chain((body) => jsonType.map((t) => ({ family: 'malformed', body, contentType: t })))
    },
    {
      weight: 5,
      arbitrary: fc.record({
        boundary: fc.constantFrom('xyz', 'a'.repeat(70), '--', 'x y'),
        model: pick(pools.model),
        image: fc.uint8Array({ maxLength: 2048 }),
        cut: oneIn(4, fc.nat())
      }).map(({ boundary, model, image, cut }) => {
        const part = (name: string, value: Buffer, file = ''): Buffer => Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file}\r\n\r\n`), value, Buffer.from('\r\n')])
        let body = Buffer.concat([part('model', Buffer.from(String(model))), part('prompt', Buffer.from('make it blue')),
          part('image', Buffer.from(image), '; filename="in.png"'), Buffer.from(`--${boundary}--\r\n`)])
        if (cut !== null) body = body.subarray(0, cut % (body.length + 1))
        return { family: 'multipart', body, contentType: `multipart/form-data; boundary=${boundary}` }
      })
    },
    { weight: 5, arbitrary: fc.constant({ family: 'empty', body: Buffer.alloc(0) }) }
  )

  const queryPair = fc.tuple(fieldName, fc.oneof(fieldName.chain((n) => pick(poolFor(n))), weirdString))
    .map(([k, v]) => `${percentEncode(k)}=${percentEncode(typeof v === 'string' ? v : JSON.stringify(v) ?? '')}`)
  const query = fc.oneof(
    { weight: 6, arbitrary: fc.constant('') },
    { weight: 3, arbitrary: fc.array(queryPair, { minLength: 1, maxLength: 5 }).map((pairs) => `?${pairs.join('&')}`) },
    { weight: 1, arbitrary: fc.constantFrom('?%zz', '?&&=&', '?a[b]=1&a=1&a=2', '?node_id', '?=', `?${'%'.repeat(10)}`, '?stream=true&stream=false', `?x=${'a'.repeat(20_000)}`) }
  )
  const pathVariant = fc.oneof(
    { weight: 14, arbitrary: fc.constant((p: string) => p) },
    { weight: 1, arbitrary: fc.constantFrom((p: string) => `${p}/`, (p: string) => p.toUpperCase(), (p: string) => `/${p}`, (p: string) => `${p}/extra`, (p: string) => `${p}%00`, (p: string) => `${p}/../id`) }
  )
  const routeTarget = fc.oneof(
    { weight: 19, arbitrary: fc.tuple(fc.constantFrom(...routes), pathVariant, query).map(([r, variant, q]) => ({ route: r, target: variant(r.path) + q })) },
    { weight: 1, arbitrary: weirdString.map((s) => ({ route: undefined, target: `/api/v0/${percentEncode(s)}` })) }
  )
  const method = (route: RouteInfo | undefined): fc.Arbitrary<string> => route === undefined
    ? fc.constantFrom(...METHODS)
    : fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...route.methods) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) })

  // Odd headers; `mayDrop` when the server may rightly cut the connection instead of answering.
  interface HeaderPart { headers: Array<[string, string]>, mayDrop?: boolean, noHost?: boolean }
  const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,30}$/)
  const oddHeaders: fc.Arbitrary<HeaderPart> = fc.oneof(
    fc.constantFrom(...HUGE_HEADER_SIZES).map((n) => ({ headers: [['X-Fuzz', 'a'.repeat(n)]] as Array<[string, string]>, mayDrop: n > NODE_HEADER_LIMIT - 500 })),
    fc.constantFrom(...AUTHORIZATIONS).map((v) => ({ headers: [['Authorization', v]] as Array<[string, string]> })),
    fc.constantFrom('100-continue', 'bogus').map((v) => ({ headers: [['Expect', v]] as Array<[string, string]> })),
    fc.tuple(token, fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)), maxLength: 100 }))
      .map(([name, value]) => ({ headers: [[name, value.trim()]] as Array<[string, string]> })),
    fc.constant({ headers: [['X-Bad', 'a\u0000b']] as Array<[string, string]>, mayDrop: true }),
    fc.constant({ headers: Array.from({ length: 300 }, (_, i) => [`X-N${i}`, 'v'] as [string, string]) }),
    fc.constant({ headers: [['Content-Type', `application/json; charset=${'x'.repeat(1000)}`]] as Array<[string, string]> }),
    fc.constant({ headers: [['Content-Encoding', 'gzip']] as Array<[string, string]> }),
    fc.constant<HeaderPart>({ headers: [], noHost: true, mayDrop: true })
  )
  // How the body is framed: honestly most of the time, otherwise a Content-Length or Transfer-Encoding
  // that lies. A server must not trust such framing, so closing the connection is an answer too.
  const framing = fc.oneof(
    { weight: 12, arbitrary: fc.constant('honest') },
    { weight: 1, arbitrary: fc.constantFrom('cl-text', 'cl-negative', 'cl-float', 'cl-huge', 'cl-double', 'cl-short', 'cl-long', 'te-chunked', 'te-bad', 'te-and-cl', 'te-gzip') }
  )

  const requestCase: fc.Arbitrary<HttpCase> = fc.record({
    node: fc.constantFrom<'b' | 'w'>('b', 'w'),
    rt: routeTarget,
    body: bodies,
    odd: oneIn(5, fc.array(oddHeaders, { minLength: 1, maxLength: 2 })),
    framing,
  }).chain(({ node, rt, body, odd, framing }) => method(rt.route).map((m) => buildCase(node, rt.route?.path ?? 'unmatched', m, rt.target, body, odd ?? [], framing)))

  // Not HTTP at all, or HTTP the parser must refuse: the server answers 400 or closes. Random bytes may
  // also be the start of a request (a lone "\n", "GE"), which a server rightly waits to complete: the
  // half-close after them tells it no more is coming.
  const garbageCase: fc.Arbitrary<HttpCase> = fc.tuple(fc.constantFrom<'b' | 'w'>('b', 'w'), fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 1024 }).map((b) => Buffer.from(b)),
    fc.constantFrom('get /api/v0/id HTTP/1.1\r\n\r\n', 'FOO /api/v0/id HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /api/v0/id HTTP/9.9\r\nHost: x\r\n\r\n',
      'GET http://127.0.0.1/api/v0/id HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /api/v0/id\r\n\r\n', 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /api/v0/id HTTP/1.0\r\n\r\n', 'GET /api/v0/id HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n', 'GET  /api/v0/id  HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /api/v0/id HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n').map((s) => Buffer.from(s, 'latin1'))
  )).map(([node, wire]) => ({ family: 'garbage-http', node, route: 'garbage', method: '?', target: '', headers: [], body: Buffer.alloc(0), noHost: false, wire, halfClose: true, mayDrop: true }))

  return fc.oneof({ weight: 19, arbitrary: requestCase }, { weight: 1, arbitrary: garbageCase })
}

function buildCase (node: 'b' | 'w', route: string, method: string, target: string, part: { family: string, body: Buffer, contentType?: string },
  odd: Array<{ headers: Array<[string, string]>, mayDrop?: boolean, noHost?: boolean }>, framing: string): HttpCase {
  const headers: Array<[string, string]> = []
  if (part.contentType !== undefined) headers.push(['Content-Type', part.contentType])
  for (const o of odd) headers.push(...o.headers)
  let body = part.body
  let halfClose = false
  const length = String(body.length)
  switch (framing) {
    case 'honest': headers.push(['Content-Length', length]); break
    case 'cl-text': headers.push(['Content-Length', 'abc']); break
    case 'cl-negative': headers.push(['Content-Length', '-1']); break
    case 'cl-float': headers.push(['Content-Length', `${length}.0`]); break
    case 'cl-huge': headers.push(['Content-Length', '99999999999999999999']); break
    case 'cl-double': headers.push(['Content-Length', length], ['Content-Length', String(body.length + 1)]); break
    case 'cl-short': headers.push(['Content-Length', String(Math.max(0, body.length - 3))]); break
    case 'cl-long': headers.push(['Content-Length', String(body.length + 10)]); halfClose = true; break
    case 'te-chunked': headers.push(['Transfer-Encoding', 'chunked']); body = chunked(body); break
    case 'te-bad': headers.push(['Transfer-Encoding', 'chunked']); break
    case 'te-and-cl': headers.push(['Transfer-Encoding', 'chunked'], ['Content-Length', length]); body = chunked(body); break
    case 'te-gzip': headers.push(['Transfer-Encoding', 'gzip']); break
  }
  const headerBytes = headers.reduce((n, [k, v]) => n + k.length + v.length + 4, target.length)
  const mayDrop = framing !== 'honest' && framing !== 'te-chunked' ||
    odd.some((o) => o.mayDrop === true) ||
    headerBytes > NODE_HEADER_LIMIT - 500 ||
    body.length > DEFAULT_BODY_LIMIT
  return {
    family: framing === 'honest' ? part.family : `${part.family}+${framing}`,
    node, route, method, target, headers, body, noHost: odd.some((o) => o.noHost === true), halfClose, mayDrop
  }
}

/** Like encodeURIComponent, but total: a lone surrogate goes out as U+FFFD's bytes instead of throwing. */
function percentEncode (text: string): string {
  let out = ''
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte)
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

function chunked (body: Buffer): Buffer {
  const parts: Buffer[] = []
  for (let at = 0; at < body.length; at += 1000) {
    const piece = body.subarray(at, at + 1000)
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'))
  }
  parts.push(Buffer.from('0\r\n\r\n'))
  return Buffer.concat(parts)
}

export function describeHttp (c: HttpCase): string {
  if (c.wire !== undefined) return `raw bytes ${JSON.stringify(clip(c.wire.toString('latin1'), 300))}`
  const shown = c.headers.length > 12 ? [...c.headers.slice(0, 10), ['…', `${c.headers.length - 10} more headers`]] : c.headers
  const headers = (c.noHost ? ['(no Host)'] : []).concat(shown.map(([k, v]) => `${k}: ${clip(v, 60)}`)).join(' | ')
  return `${c.method} ${clip(c.target, 150)} [${c.family}] {${headers}} body(${c.body.length} B) ${JSON.stringify(clip(c.body.toString('utf8'), 300))}`
}

export interface HttpOutcome {
  kind: 'answer' | 'dropped' | 'hang'
  status: number
  headers: Record<string, string>
  body: Buffer
  /** the connection closed before the whole body arrived */
  truncated: boolean
  ms: number
  detail: string
}

/** Sends one case over a raw socket (fetch would refuse half of them) and reads the first answer. */
export async function sendHttp (apiUrl: string, c: HttpCase, timeoutMs = HTTP_TIMEOUT_MS): Promise<HttpOutcome> {
  const { hostname, port } = new URL(apiUrl)
  const started = Date.now()
  const head = c.method === 'HEAD'
  const wire = c.wire ?? Buffer.concat([
    Buffer.from(`${c.method} ${c.target} HTTP/1.1\r\n` +
      (c.noHost ? '' : `Host: ${hostname}:${port}\r\n`) +
      // One request per connection: the end of the answer is then unambiguous.
      'Connection: close\r\n' +
      c.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n', 'latin1'),
    c.body
  ])
  return await new Promise<HttpOutcome>((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) })
    let received = Buffer.alloc(0)
    let settled = false
    const empty: HttpOutcome = { kind: 'dropped', status: 0, headers: {}, body: Buffer.alloc(0), truncated: false, ms: 0, detail: '' }
    const finish = (outcome: Partial<HttpOutcome>): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ ...empty, ...outcome, ms: Date.now() - started })
    }
    const timer = setTimeout(() => {
      finish({ kind: 'hang', detail: received.length > 0 ? `after ${received.length} B: ${clip(received.toString('latin1'), 300)}` : 'no answer at all' })
    }, timeoutMs)
    socket.on('connect', () => {
      socket.write(wire)
      if (c.halfClose) setTimeout(() => { if (!settled) socket.end() }, 300)
    })
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      const answer = parseAnswer(received, head, false)
      if (answer !== undefined) finish(answer)
    })
    // A reset while we still write (e.g. after a 413) is normal; 'close' follows and reports what came.
    socket.on('error', () => {})
    socket.on('close', () => {
      finish(parseAnswer(received, head, true) ?? { kind: 'dropped', detail: received.length > 0 ? `partial head: ${clip(received.toString('latin1'))}` : '' })
    })
  })
}

/** The first final (non-1xx) answer in `buf`, or undefined while it is incomplete. */
function parseAnswer (buf: Buffer, head: boolean, closed: boolean): Partial<HttpOutcome> | undefined {
  let start = 0
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', start)
    if (end < 0) return undefined
    const lines = buf.subarray(start, end).toString('latin1').split('\r\n')
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0])
    if (match === null) return { kind: 'answer', status: 0, detail: `not an HTTP answer: ${clip(lines[0])}` }
    const status = Number(match[1])
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    const bodyStart = end + 4
    if (status < 200) { start = bodyStart; continue }
    const answer = (body: Buffer, truncated = false): Partial<HttpOutcome> => ({ kind: 'answer', status, headers, body, truncated })
    if (head || status === 204 || status === 304) return answer(Buffer.alloc(0))
    const rest = buf.subarray(bodyStart)
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const body = dechunk(rest)
      if (body !== undefined) return answer(body)
      return closed ? answer(rest, true) : undefined
    }
    if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length'])
      if (rest.length >= length) return answer(rest.subarray(0, length))
      return closed ? answer(rest, true) : undefined
    }
    return closed ? answer(rest) : undefined
  }
}

function dechunk (buf: Buffer): Buffer | undefined {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', at)
    if (lineEnd < 0) return undefined
    const size = parseInt(buf.subarray(at, lineEnd).toString('latin1'), 16)
    if (!Number.isFinite(size)) return undefined
    if (size === 0) return buf.indexOf('\r\n', lineEnd + 2) >= 0 ? Buffer.concat(parts) : undefined
    if (buf.length < lineEnd + 2 + size + 2) return undefined
    parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
}

/** The statuses the README documents (a model's own 4xx passes through, and those are among these). */
const DOCUMENTED = new Set([200, 400, 401, 402, 403, 404, 405, 408, 413, 415, 429, 431, 502, 503, 504])

/** What is wrong with an answer, or undefined when it is one the README allows. */
export function judgeHttp (c: HttpCase, o: HttpOutcome): string | undefined {
  if (o.kind === 'hang') return `hang: ${o.detail}`
  if (o.kind === 'dropped') return c.mayDrop ? undefined : `connection closed without an answer${o.detail !== '' ? ` (${o.detail})` : ''}`
  if (o.status === 0) return o.detail
  if (o.truncated && !c.mayDrop) return `${o.status} answer cut off after ${o.body.length} B`
  const text = o.body.toString('utf8')
  let parsed: any
  try { parsed = JSON.parse(text) } catch {}
  const isJson = /json/i.test(o.headers['content-type'] ?? '')
  if (o.status >= 200 && o.status < 300) {
    if (isJson && parsed === undefined && c.method !== 'HEAD' && !o.truncated) return `${o.status} with malformed JSON: ${clip(text)}`
    return undefined
  }
  if (c.method === 'HEAD') return DOCUMENTED.has(o.status) ? undefined : `undocumented status ${o.status}`
  const apiShape = typeof parsed?.code === 'number' && typeof parsed?.message === 'string'
  const openAiShape = typeof parsed?.error?.message === 'string' && typeof parsed?.error?.type === 'string'
  const gateway = /^\/(v1|api\/v1)\//.test(c.route)
  if (!apiShape && !(gateway && openAiShape)) return `${o.status} without a JSON error body: ${JSON.stringify(clip(text))}`
  const message: string = apiShape ? parsed.message : parsed.error.message
  if (/\n\s+at \S/.test(message) || /node_modules|\/dist\/src\/|\.ts:\d+/.test(message)) return `${o.status} with a stack trace or source path in the message: ${clip(message)}`
  if (o.status === 500 && !(apiShape && parsed.code >= 1011 && parsed.code <= 1015)) return `500 internal error (${JSON.stringify(clip(message))})`
  if (!DOCUMENTED.has(o.status) && o.status !== 500) return `undocumented status ${o.status}: ${clip(message)}`
  return undefined
}

/** What goes into the tally for an outcome. */
export function outcomeLabel (o: HttpOutcome): string {
  return o.kind === 'answer' ? String(o.status) : o.kind
}

/** Runs HTTP cases one after another; stops early when a daemon died (that input is the finding). */
export async function runHttpCases (pair: FuzzPair, cases: HttpCase[], tally: Tally, findings: Findings): Promise<void> {
  for (const c of cases) {
    const node = c.node === 'b' ? pair.b : pair.w
    const outcome = await sendHttp(node.api, c, SLOW_ROUTES.get(c.route) ?? HTTP_TIMEOUT_MS)
    tally.add(c.route, outcomeLabel(outcome))
    const problem = judgeHttp(c, outcome)
    const where = `${c.node === 'b' ? 'B' : 'W'} ${c.method} ${c.route}`
    if (problem !== undefined) findings.add(where, problem, describeHttp(c))
    if (!node.running) {
      findings.add(where, `crash: the daemon exited; last output:\n${node.output.slice(-3000)}`, describeHttp(c))
      return
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The job and RPC protocols, from a rogue peer

/** An in-process libp2p node with the network's key and nothing else: it opens raw protocol streams. */
export async function startRogue (): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionProtector: preSharedKey({ psk: swarmKeyFromHex(FUZZ_PSK) }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
}

export interface StreamCase {
  protocol: 'job' | 'rpc'
  family: string
  /** what we write, piece by piece (so that frames also arrive split across messages) */
  chunks: Uint8Array[]
  /** close: half-close and wait for the worker; open: leave the stream open a moment, then reset it;
   * reset: at once; hold: leave it open and wait for the worker to give up on it */
  ending: 'close' | 'open' | 'reset' | 'hold'
}

export interface StreamOutcome { how: 'closed' | 'reset' | 'timeout' | 'dial-failed', bytes: Uint8Array, ms: number, detail: string }

function varint (value: number): Uint8Array {
  const out: number[] = []
  while (value >= 0x80) { out.push((value % 0x80) | 0x80); value = Math.floor(value / 0x80) }
  out.push(value)
  return Uint8Array.from(out)
}

const lengthPrefixed = (bytes: Uint8Array): Uint8Array => concat([varint(bytes.length), bytes])

/** Splits `bytes` at up to three random points. */
function pieces (bytes: Uint8Array): fc.Arbitrary<Uint8Array[]> {
  return fc.array(fc.nat({ max: Math.max(0, bytes.length) }), { maxLength: 3 }).map((cuts) => {
    const points = [...new Set(cuts)].sort((a, b) => a - b)
    const out: Uint8Array[] = []
    let from = 0
    for (const p of points) { if (p > from) out.push(bytes.subarray(from, p)); from = Math.max(from, p) }
    if (from < bytes.length || out.length === 0) out.push(bytes.subarray(from))
    return out
  })
}

const endingArb = fc.oneof(
  { weight: 17, arbitrary: fc.constant<'close'>('close') },
  { weight: 2, arbitrary: fc.constant<'open'>('open') },
  { weight: 1, arbitrary: fc.constant<'reset'>('reset') }
)

/** Length prefixes no frame should have: beyond the 1 MiB (job) / 4 MiB (RPC) limits, or overlong. */
const hugePrefix: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.integer({ min: 4 * 1024 * 1024 + 1, max: Number.MAX_SAFE_INTEGER }).map(varint),
  fc.constantFrom(varint(1024 * 1024 + 1), varint(4 * 1024 * 1024), Uint8Array.from(Array(11).fill(0xff)), Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]))
).chain((prefix) => fc.uint8Array({ maxLength: 64 }).map((rest) => concat([prefix, rest])))

const chatJson = (env: FuzzEnv): Uint8Array => Buffer.from(JSON.stringify({ model: env.model, messages: [{ role: 'user', content: 'Hello' }] }))

export function jobCaseArb (env: FuzzEnv): fc.Arbitrary<StreamCase> {
  const text = fc.string({ unit: 'binary', maxLength: 40 })
  const requestHead = fc.record({
    request_id: fc.oneof(fc.uuid(), fc.constant(''), text),
    project: pick([env.project, '', 'Other']),
    model: pick([env.model, '', 'Unknown']),
    cid: pick(['', 'x']),
    kind: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -1, max: 7 }) }),
    content_type: pick(['application/json', '', 'multipart/form-data; boundary=x', 'text/event-stream']),
    stream: fc.boolean(),
    // Computed when the case is made, so that "soon" stays soon in a long run.
    deadline_unix_ms: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20_000 }).map((d) => Date.now() + d), fc.integer({ min: -(2 ** 40), max: Number.MAX_SAFE_INTEGER })),
    path: pick(['', '/v1/chat/completions', '/../../etc/passwd'])
  })
  const body = fc.oneof(fc.constant(chatJson(env)), fc.uint8Array({ maxLength: 512 }))
  const frame: fc.Arbitrary<job.JobFrame.$Properties> = fc.oneof(
    { weight: 4, arbitrary: requestHead.map((h) => ({ request_head: h })) },
    { weight: 4, arbitrary: body.map((b) => ({ body_chunk: b })) },
    { weight: 1, arbitrary: fc.record({ status: fc.integer(), content_type: text, node_id: text, error_code: fc.integer() }).map((h) => ({ response_head: h })) },
    { weight: 1, arbitrary: fc.record({ error_code: fc.integer(), error_message: text }).map((e) => ({ end: e })) },
    { weight: 1, arbitrary: fc.constant({}) }
  )
  // A frame's protobuf bytes, maybe damaged before the length prefix (so framing stays intact and the
  // damage reaches the decoder and the checks behind it).
  const encoded = fc.tuple(frame, oneIn(3, mutationArb))
    .map(([f, m]) => { const bytes = job.JobFrame.encode(f).finish(); return lengthPrefixed(m === null ? bytes : mutate(bytes, m)) })
  const valid = fc.tuple(requestHead, fc.boolean()).map(([h, stream]) => concat([
    lengthPrefixed(job.JobFrame.encode({ request_head: { ...h, project: env.project, model: env.model, cid: '', kind: 0, request_id: 'fuzz', content_type: 'application/json', stream, deadline_unix_ms: 0 } }).finish()),
    lengthPrefixed(job.JobFrame.encode({ body_chunk: chatJson(env) }).finish())
  ]))
  const families: Array<fc.Arbitrary<{ family: string, bytes: Uint8Array }>> = [
    valid.map((bytes) => ({ family: 'valid-job', bytes })),
    fc.array(encoded, { minLength: 1, maxLength: 5 }).chain((frames) => oneIn(4, mutationArb)
      .map((m) => ({ family: m === null ? 'frames' : 'frames-damaged', bytes: m === null ? concat(frames) : mutate(concat(frames), m) }))),
    fc.uint8Array({ maxLength: 2048 }).map((bytes) => ({ family: 'random', bytes })),
    hugePrefix.map((bytes) => ({ family: 'huge-prefix', bytes })),
    // Frames at the 1 MiB limit and one byte over it.
    fc.constantFrom(1024 * 1024 - 8, 1024 * 1024 + 1).map((n) => ({
      family: 'max-frame',
      bytes: concat([
        lengthPrefixed(job.JobFrame.encode({ request_head: { request_id: 'fuzz', project: env.project, model: env.model } }).finish()),
        lengthPrefixed(job.JobFrame.encode({ body_chunk: new Uint8Array(n) }).finish())
      ])
    }))
  ]
  return fc.oneof(
    { weight: 3, arbitrary: families[0] }, { weight: 10, arbitrary: families[1] }, { weight: 4, arbitrary: families[2] },
    { weight: 2, arbitrary: families[3] }, { weight: 1, arbitrary: families[4] }
  ).chain(({ family, bytes }) => fc.tuple(pieces(bytes), family === 'valid-job' ? fc.constant<'close'>('close') : endingArb)
    .map(([chunks, ending]) => ({ protocol: 'job' as const, family, chunks, ending })))
}

export function rpcCaseArb (env: FuzzEnv, rogueId: string): fc.Arbitrary<StreamCase> {
  const text = fc.string({ unit: 'binary', maxLength: 40 })
  const header = fc.record({
    client_version: text,
    timestamp: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    id: fc.oneof(fc.uuid(), fc.constant(''), text),
    node_id: pick([rogueId, '', env.wId, env.bId, 'garbage']),
    receiver: pick([env.wId, '', 'x']),
    node_pub_key: fc.uint8Array({ maxLength: 40 }),
    sign: fc.uint8Array({ maxLength: 72 })
  })
  const requestBodies = [
    protocol.PeerIdentityBody.encode({ req: {} }).finish(),
    protocol.AIProjectBody.encode({ req: {} }).finish(),
    protocol.HostInfoBody.encode({ req: {} }).finish()
  ]
  const message = fc.record({
    header: fc.option(header, { nil: undefined, freq: 8 }),
    // Host info is the heaviest to answer (cached for 10 s), so it comes up less often.
    type: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0, 2) }, { weight: 1, arbitrary: fc.constant(1) }, { weight: 2, arbitrary: fc.integer({ min: -1, max: 20 }) }) as fc.Arbitrary<protocol.MessageType>,
    body: fc.oneof(fc.constantFrom(...requestBodies), fc.uint8Array({ maxLength: 256 })),
    result_code: fc.oneof(fc.constant(0), fc.integer()),
    result_message: text
  })
  const encoded = fc.tuple(message, oneIn(3, mutationArb))
    .map(([m, mutation]) => { const bytes = protocol.Message.encode(m).finish(); return lengthPrefixed(mutation === null ? bytes : mutate(bytes, mutation)) })
  const valid = fc.tuple(fc.constantFrom(0, 2) as fc.Arbitrary<protocol.MessageType>, fc.uuid()).map(([type, id]) => lengthPrefixed(protocol.Message.encode({
    header: { client_version: 'fuzz', timestamp: Math.floor(Date.now() / 1000), id, node_id: rogueId, receiver: env.wId }, type, body: requestBodies[type === 0 ? 0 : 1]
  }).finish()))
  return fc.oneof(
    { weight: 3, arbitrary: valid.map((bytes) => ({ family: 'valid-rpc', bytes })) },
    { weight: 8, arbitrary: encoded.map((bytes) => ({ family: 'message', bytes })) },
    { weight: 2, arbitrary: fc.tuple(encoded, encoded).map(([a, b]) => ({ family: 'two-messages', bytes: concat([a, b]) })) },
    { weight: 2, arbitrary: fc.tuple(encoded, mutationArb).map(([bytes, m]) => ({ family: 'damaged-framing', bytes: mutate(bytes, m) })) },
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((bytes) => ({ family: 'random', bytes })) },
    { weight: 2, arbitrary: hugePrefix.map((bytes) => ({ family: 'huge-prefix', bytes })) }
  ).chain(({ family, bytes }) => fc.tuple(pieces(bytes), family === 'valid-rpc' ? fc.constant<'close'>('close') : endingArb)
    .map(([chunks, ending]) => ({ protocol: 'rpc' as const, family, chunks, ending })))
}

export function describeStream (c: StreamCase): string {
  const bytes = concat(c.chunks)
  return `${c.protocol} [${c.family}] ${c.ending}, ${bytes.length} B in ${c.chunks.length} piece(s): ${Buffer.from(bytes.subarray(0, 120)).toString('hex')}${bytes.length > 120 ? '…' : ''}`
}

/** Opens a stream to the worker, writes the case, and reads whatever comes back until the worker closes
 * or resets the stream (bounded by `limitMs`, or shorter for streams we leave open or reset). */
export async function runStreamCase (rogue: Libp2p, addr: Multiaddr, c: StreamCase, limitMs = STREAM_TIMEOUT_MS): Promise<StreamOutcome> {
  const started = Date.now()
  let stream: Stream
  try {
    stream = await rogue.dialProtocol(addr, c.protocol === 'job' ? JOB_PROTOCOL : RPC_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  } catch (err) {
    return { how: 'dial-failed', bytes: new Uint8Array(0), ms: Date.now() - started, detail: (err as Error).message }
  }
  const received: Uint8Array[] = []
  stream.addEventListener('message', (evt) => { received.push(evt.data.subarray()) })
  const closed = new Promise<'closed' | 'reset'>((resolve) => {
    stream.addEventListener('close', (evt) => { resolve(evt.error === undefined ? 'closed' : 'reset') })
  })
  const giveUp = new AbortController()
  const wait = async (ms: number): Promise<'timeout'> => await sleep(ms, 'timeout' as const, { signal: giveUp.signal, ref: false }).catch(() => 'timeout' as const)
  try {
    for (const chunk of c.chunks) {
      if (stream.writeStatus !== 'writable') break
      if (!stream.send(chunk)) {
        await Promise.race([new Promise((resolve) => { stream.addEventListener('drain', resolve, { once: true }) }), closed, wait(5_000)])
      }
    }
    if (c.ending === 'reset') stream.abort(new Error('fuzz: the requester resets'))
    else if (c.ending === 'close' && stream.writeStatus === 'writable') await stream.close({ signal: AbortSignal.timeout(5_000) })
  } catch {
    // The worker may reset the stream while we write: that is an answer too.
  }
  const waitMs = c.ending === 'close' || c.ending === 'hold' ? limitMs : c.ending === 'open' ? OPEN_WAIT_MS : 1_000
  const how = await Promise.race([closed, wait(waitMs)])
  giveUp.abort()
  if (how === 'timeout') stream.abort(new Error('fuzz: giving up'))
  return { how, bytes: concat(received), ms: Date.now() - started, detail: '' }
}

interface Frame { prefix: number, data: Uint8Array }

/** Splits length-prefixed frames; `rest` counts the bytes after the last whole frame. */
function splitFrames (bytes: Uint8Array): { frames: Frame[], rest: number } {
  const frames: Frame[] = []
  let at = 0
  while (at < bytes.length) {
    let length = 0
    let prefix = 0
    let ended = false
    while (at + prefix < bytes.length && prefix < 10) {
      const byte = bytes[at + prefix]
      length += (byte & 0x7f) * 2 ** (7 * prefix)
      prefix++
      if (byte < 0x80) { ended = true; break }
    }
    if (!ended || bytes.length < at + prefix + length) break
    frames.push({ prefix, data: bytes.subarray(at + prefix, at + prefix + length) })
    at += prefix + length
  }
  return { frames, rest: bytes.length - at }
}

/** The RPC request the worker reads, when the case sends a whole, decodable one. Mirrors the reader
 * (@libp2p/utils lpStream): empty frames are skipped, and only minimal length prefixes are read right. */
function firstRpcRequest (c: StreamCase): protocol.Message | undefined {
  for (const frame of splitFrames(concat(c.chunks)).frames) {
    if (frame.prefix !== varint(frame.data.length).length || frame.data.length > 4 * 1024 * 1024) return undefined
    if (frame.data.length === 0) continue
    try { return protocol.Message.decode(frame.data) } catch { return undefined }
  }
  return undefined
}

/** What is wrong with the worker's side of one stream, or undefined. */
export function judgeStream (c: StreamCase, o: StreamOutcome, env: FuzzEnv, rogueId: string): string | undefined {
  if (o.how === 'dial-failed') return `could not open a ${c.protocol} stream: ${o.detail}`
  if (o.how === 'timeout' && c.ending === 'close') return `the worker neither answered nor closed the stream within ${Math.round(o.ms / 1000)} s`
  if (o.how === 'timeout' && c.ending === 'hold') return `the worker kept a stream open for ${Math.round(o.ms / 1000)} s without getting a request on it`
  const { frames, rest } = splitFrames(o.bytes)
  if (rest > 0 && o.how === 'closed') return `the answer ends in the middle of a frame (${rest} B left over)`
  if (c.protocol === 'job') {
    const decoded: job.JobFrame[] = []
    for (const f of frames) {
      try { decoded.push(job.JobFrame.decode(f.data)) } catch (err) { return `the worker sent an undecodable frame: ${(err as Error).message}` }
    }
    if (decoded.length > 0 && decoded[0].frame !== 'response_head') return `the worker's first frame is ${decoded[0].frame ?? 'empty'}, not a response head`
    if (o.how === 'closed' && decoded.length > 0 && decoded.at(-1)?.frame !== 'end') return 'the worker closed the stream without an end frame'
    if (c.family === 'valid-job') {
      const head = decoded[0]?.response_head
      if (head == null || head.status !== 200 || (head.error_code ?? 0) !== 0 || decoded.at(-1)?.end?.error_code !== 0) {
        return `a valid job did not succeed: ${o.how}, head ${JSON.stringify(head ?? null)}, end ${JSON.stringify(decoded.at(-1)?.end ?? null)}`
      }
    }
    return undefined
  }
  if (frames.length > 1) return `the worker sent ${frames.length} RPC messages, not one`
  let reply: protocol.Message | undefined
  if (frames.length === 1) {
    try { reply = protocol.Message.decode(frames[0].data) } catch (err) { return `the worker sent an undecodable RPC answer: ${(err as Error).message}` }
    if (reply.header?.node_id !== env.wId) return `the RPC answer names ${reply.header?.node_id ?? 'nobody'}, not the worker`
  }
  const request = firstRpcRequest(c)
  // A whole, decodable request that we half-closed must get an answer (an error answer for bad ones).
  if (request !== undefined && c.ending === 'close' && c.chunks.length > 0) {
    if (reply === undefined) return `a decodable RPC request got no answer (${o.how})`
    if (request.header?.node_id !== rogueId && reply.result_code !== 1009) return `a request in another node's name got result_code ${reply.result_code}, not 1009`
    if (c.family === 'valid-rpc' && reply.result_code !== 0) return `a valid RPC request failed: ${reply.result_code} ${reply.result_message}`
  }
  return undefined
}

/** Runs stream cases, at most STREAM_WAVE at once. */
export async function runStreamCases (rogue: Libp2p, pair: FuzzPair, cases: StreamCase[], tally: Tally, findings: Findings): Promise<void> {
  const addr = multiaddr(await pair.w.addr())
  const rogueId = rogue.peerId.toString()
  for (let i = 0; i < cases.length; i += STREAM_WAVE) {
    await Promise.all(cases.slice(i, i + STREAM_WAVE).map(async (c) => {
      const outcome = await runStreamCase(rogue, addr, c)
      tally.add(`${c.protocol} ${c.family}`, outcome.how)
      const problem = judgeStream(c, outcome, pair.env, rogueId)
      if (problem !== undefined) findings.add(`W ${c.protocol === 'job' ? JOB_PROTOCOL : RPC_PROTOCOL} [${c.family}]`, problem, describeStream(c))
    }))
    if (!pair.w.running) {
      findings.add(`W ${cases[i].protocol}`, `crash: the worker exited; last output:\n${pair.w.output.slice(-3000)}`, cases.slice(i, i + STREAM_WAVE).map(describeStream).join('\n    '))
      return
    }
  }
}

/** Waits (bounded) for the worker to have no job or RPC stream open; returns how many are left. */
export async function settledStreams (pair: FuzzPair, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  let open = await protocolStreams(pair.w)
  while (open > 0 && Date.now() < deadline) {
    await sleep(250)
    open = await protocolStreams(pair.w)
  }
  return open
}

// ---------------------------------------------------------------------------------------------------
// The long run

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { minutes: { type: 'string', default: '10' }, seed: { type: 'string' } } })
  const minutes = Number(values.minutes)
  if (!(minutes > 0 && minutes <= 24 * 60)) throw new Error('--minutes must be a number of minutes between 0 and 1440')
  const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31)
  const out = (line: string): void => { process.stdout.write(`${line}\n`) }
  out(`fuzzing for ${minutes} min, seed ${seed}`)

  const pair = await startFuzzPair()
  const stopping = async (): Promise<void> => { await pair.close(); process.exit(130) }
  process.once('SIGINT', () => { void stopping() })
  process.once('SIGTERM', () => { void stopping() })
  const rogue = await startRogue()
  const findings = new Findings()
  const httpTally = new Tally()
  const streamTally = new Tally()
  const started = Date.now()
  const deadline = started + minutes * 60_000
  try {
    if (await normalJob(pair) !== undefined) throw new Error('the pair does not run a normal job before fuzzing')
    const rss = { b: await rssKiB(pair.b.pid), w: await rssKiB(pair.w.pid) }
    const routes = apiRoutes()
    const httpArb = httpCaseArb(pair.env, routes)
    const streamArb = fc.oneof(jobCaseArb(pair.env), rpcCaseArb(pair.env, rogue.peerId.toString()))
    let crashed = false
    // Rounds of 100 HTTP requests and 40 streams; bounded by the time budget and, to be safe, a count.
    for (let round = 0; round < 100_000 && Date.now() < deadline && !crashed; round++) {
      await runHttpCases(pair, fc.sample(httpArb, { numRuns: 100, seed: seed + round }), httpTally, findings)
      // The HTTP requests may have unregistered W's model; the valid jobs among the streams need it.
      if (pair.w.running) await restoreModel(pair)
      if (pair.b.running && pair.w.running) await runStreamCases(rogue, pair, fc.sample(streamArb, { numRuns: 40, seed: seed + round }), streamTally, findings)
      for (const problem of await checkAlive(pair)) { findings.add('daemon', problem, `round ${round}`); crashed ||= problem.startsWith('crash') }
      if (crashed) break
      const left = await settledStreams(pair)
      if (left > 0) findings.add('W streams', `${left} job/RPC streams still open 30 s after round ${round}`, `round ${round}`)
      const minutesIn = ((Date.now() - started) / 60_000).toFixed(1)
      out(`${minutesIn} min: ${httpTally.total} HTTP requests, ${streamTally.total} streams, ${findings.size} finding(s); RSS B ${await rssKiB(pair.b.pid)} KiB, W ${await rssKiB(pair.w.pid)} KiB`)
    }
    if (!crashed) {
      const job = await normalJob(pair)
      if (job !== undefined) findings.add('B → W', job, 'after fuzzing')
      await rogue.stop()
      await waitFor(async () => !(await pair.w.call('/api/v0/swarm/peers')).body.some((p: { peer: string }) => p.peer === rogue.peerId.toString()), 15_000, 'W to drop the rogue\'s connection')
        .catch(() => { findings.add('W connections', 'the rogue peer is still connected 15 s after it stopped', '') })
      const after = { b: await rssKiB(pair.b.pid), w: await rssKiB(pair.w.pid) }
      out(`RSS before → after: B ${rss.b} → ${after.b} KiB, W ${rss.w} → ${after.w} KiB`)
      if (after.w > 2 * rss.w) findings.add('W memory', `RSS grew from ${rss.w} to ${after.w} KiB`, '')
    }
  } finally {
    try { await rogue.stop() } catch {}
    await pair.close()
  }
  out(`\nHTTP (${httpTally.total} requests), outcome per route:\n${httpTally.toString()}`)
  out(`\nstreams (${streamTally.total}), outcome per protocol and family:\n${streamTally.toString()}`)
  out(`\n${findings.size} finding(s)${findings.size > 0 ? `:\n${findings.toString()}` : ''}`)
  process.exitCode = findings.size > 0 ? 1 : 0
}


if (isMainModule(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`fuzz: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exit(2)
  })
}
