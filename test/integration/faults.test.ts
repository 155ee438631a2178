// Faults (issue 7): workers killed and restarted under load, model servers that hang, reset or answer
// garbage, clients that leave mid-stream, a read-only config directory at save time, concurrent billing and
// a full restart of the whole network. One network (input node B, workers W1–W3) serves every test, in
// order; the last test restarts all of it. Each test states its invariant and asserts it.
//
// The invariants, everywhere:
//   I1 no job is lost without an error: a job succeeds with the model's full answer, or its client gets a
//      documented error (an HTTP status with the envelope's code, or an SSE error event before the end);
//   I2 nothing hangs: every request answers within a bounded time (client-side timeouts catch any hang);
//   I3 no crash: the nodes keep running and serving after every fault;
//   I4 no double charge: a key's balance drops by exactly the cost of the usage its answers reported, a
//      failed request costs nothing, and a restart neither charges nor refunds anything;
//   I5 nothing leaks: busy counters return to 0, and a failed save changes neither memory nor disk.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, readdir, readFile, unlink, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { join } from 'node:path'
import OpenAI from 'openai'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { connectedPeers, freePort, TestNode, waitFor } from './harness.ts'

const PSK = 'fa'.repeat(32)
const PROJECT = 'DecentralGPT'
const CHAT = 'Llama3-70B'
const TOKENS = ['Faults', ' are', ' handled', ' with', ' care', '.']
const FULL = TOKENS.join('')
/** No single request in this file may take longer than this (I2). */
const REQUEST_TIMEOUT_MS = 20_000

/** The README's error table: code → the HTTP statuses it may come with. */
const DOCUMENTED: Record<number, number[]> = {
  1001: [400], 1002: [400], 1003: [502], 1004: [504], 1005: [404, 502], 1006: [502], 1007: [502], 1008: [413],
  1009: [403], 1010: [404, 405], 1011: [500], 1012: [500], 1013: [500], 1014: [500], 1015: [500], 1016: [503],
  1017: [502], 5000: [500]
}

/** I1 for an envelope answer: an error status, a documented code that matches it, and a message. */
function documentedError (status: number, body: any): string | undefined {
  if (status < 400) return `status ${status} is not an error`
  if (body === null || typeof body !== 'object') return `status ${status} without an envelope: ${String(body).slice(0, 200)}`
  const statuses = DOCUMENTED[body.code as number]
  if (statuses === undefined) return `undocumented code ${JSON.stringify(body.code)}`
  // A model's own 4xx (e.g. 429) passes through with code 1006.
  if (!statuses.includes(status) && !(body.code === 1006 && status >= 400 && status < 500)) return `code ${body.code as number} with status ${status}`
  if (typeof body.message !== 'string' || body.message === '') return 'no message'
  return undefined
}

function sseEvents (text: string): string[] {
  return text.split('\n\n').map((e) => e.trim()).filter((e) => e !== '')
}

const contentOf = (events: string[]): string => events
  .filter((e) => e.startsWith('data: {'))
  .map((e) => JSON.parse(e.slice(6)).choices?.[0]?.delta?.content ?? '')
  .join('')

/** The error event of a stream that failed after it started, if any: `data: {"error":{"code","message"}}`. */
function sseError (events: string[]): { code: number, message: string } | undefined {
  for (const event of events) {
    if (!event.startsWith('data: {"error"')) continue
    const error = JSON.parse(event.slice(6)).error
    if (typeof error?.code === 'number' && typeof error.message === 'string') return error
  }
  return undefined
}

interface Answer { status: number, contentType: string, node: string, text: string, body: any, ms: number }

/** POSTs a JSON body and reads the whole answer, bounded by `timeoutMs` (a hang throws). */
async function post (url: string, body: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Answer> {
  const started = Date.now()
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs)
  })
  const text = await response.text()
  let parsed: unknown
  try { parsed = JSON.parse(text) } catch {}
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', node: response.headers.get('x-aicn-node') ?? '', text, body: parsed, ms: Date.now() - started }
}

type Verdict = { ok: true } | { ok: false, wellFormed: boolean, detail: string }

/** I1 for a chat answer: the full content, or a documented error; anything else is a lost job. */
function judgeChat (answer: Answer, stream: boolean): Verdict {
  if (stream && answer.status === 200) {
    if (!/^text\/event-stream/.test(answer.contentType)) return { ok: false, wellFormed: false, detail: `stream answered ${answer.contentType}` }
    const events = sseEvents(answer.text)
    const error = sseError(events)
    if (error !== undefined) {
      const wellFormed = DOCUMENTED[error.code] !== undefined && !events.includes('data: [DONE]')
      return { ok: false, wellFormed, detail: `SSE error ${error.code}: ${error.message}` }
    }
    if (events.at(-1) === 'data: [DONE]' && contentOf(events) === FULL) return { ok: true }
    return { ok: false, wellFormed: false, detail: `stream ended without [DONE] or an error event: ${answer.text.slice(-300)}` }
  }
  if (answer.status === 200) {
    if (answer.body?.code === 0 && answer.body.data?.choices?.[0]?.message?.content === FULL) return { ok: true }
    return { ok: false, wellFormed: false, detail: `200 with a wrong answer: ${answer.text.slice(0, 300)}` }
  }
  const problem = documentedError(answer.status, answer.body)
  return { ok: false, wellFormed: problem === undefined, detail: problem ?? `${answer.status} ${answer.body.code as number}: ${answer.body.message as string}` }
}

/** I1 for a gateway chat answer, and the cost of the usage the client was shown (0 when none). */
function judgeGateway (answer: Answer, stream: boolean): { verdict: Verdict, cost: number } {
  if (stream && answer.status === 200) {
    const events = sseEvents(answer.text)
    let content = ''
    let cost = 0
    let error: { message?: unknown } | undefined
    for (const event of events) {
      if (!event.startsWith('data: {')) continue
      const data = JSON.parse(event.slice(6))
      if (data.error != null) error = data.error
      if (data.usage != null) cost = usageCost(data.usage)
      content += data.choices?.[0]?.delta?.content ?? ''
    }
    if (error !== undefined) {
      return { verdict: { ok: false, wellFormed: typeof error.message === 'string' && !events.includes('data: [DONE]'), detail: `SSE error: ${JSON.stringify(error)}` }, cost }
    }
    if (events.at(-1) === 'data: [DONE]' && content === FULL && cost > 0) return { verdict: { ok: true }, cost }
    return { verdict: { ok: false, wellFormed: false, detail: `stream ended without [DONE], usage or an error event: ${answer.text.slice(-300)}` }, cost }
  }
  if (answer.status === 200) {
    if (answer.body?.choices?.[0]?.message?.content === FULL && answer.body.usage != null) return { verdict: { ok: true }, cost: usageCost(answer.body.usage) }
    return { verdict: { ok: false, wellFormed: false, detail: `200 with a wrong answer: ${answer.text.slice(0, 300)}` }, cost: 0 }
  }
  const error = answer.body?.error
  const wellFormed = answer.status >= 400 && typeof error?.message === 'string' && typeof error.type === 'string'
  return { verdict: { ok: false, wellFormed, detail: `${answer.status}: ${answer.text.slice(0, 300)}` }, cost: 0 }
}

/** $1 per million prompt tokens and $3 per million completion tokens, in micro-USD. */
function usageCost (usage: { prompt_tokens: number, completion_tokens: number } | null | undefined): number {
  assert.ok(usage != null, 'the answer reports its usage')
  return usage.prompt_tokens * 1 + usage.completion_tokens * 3
}

/** Closes a server and every connection it still has (hung requests included). */
async function closeServer (server: Server | NetServer, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy()
  await new Promise((resolve) => server.close(resolve))
}

interface BadServer { url: string, close: () => Promise<void> }

/** A model server that misbehaves in the way its path says. A GET (the node's health probe) gets a quick
 * 404, so the model stays "available" and only its answers to jobs are broken.
 *   /hang                no answer at all, ever
 *   /hang-after-headers  200 and the headers (SSE or JSON, as asked), then nothing
 *   /reset               200, the first part of a valid answer, then the socket is destroyed
 *   /garbage             200 with a JSON content type and bytes that are not JSON */
async function startBadModelServer (): Promise<BadServer> {
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(404).end()
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => { chunks.push(chunk) })
    req.on('end', () => {
      let stream = false
      try { stream = JSON.parse(Buffer.concat(chunks).toString('utf8')).stream === true } catch {}
      const contentType = stream ? 'text/event-stream' : 'application/json'
      switch (req.url) {
        case '/hang':
          return
        case '/hang-after-headers':
          res.writeHead(200, { 'content-type': contentType })
          res.flushHeaders()
          return
        case '/reset':
          res.writeHead(200, { 'content-type': contentType })
          res.write(stream
            ? `data: ${JSON.stringify({ id: 'chatcmpl-reset', object: 'chat.completion.chunk', created: 0, model: 'reset', choices: [{ index: 0, delta: { content: 'Fau' }, finish_reason: null }] })}\n\n`
            : '{"id":"chatcmpl-reset","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Fau')
          setTimeout(() => { res.socket?.destroy() }, 100)
          return
        case '/garbage':
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end(Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x01]), Buffer.from('<html>not json at all'), randomBytes(32)]))
          return
      }
      res.writeHead(404).end()
    })
  })
  server.on('connection', (socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: async () => { await closeServer(server, sockets) } }
}

/** A "model server" that does not speak HTTP: it greets every connection with an SSH banner and random
 * bytes and keeps the connection open. */
async function startRawServer (): Promise<BadServer> {
  const sockets = new Set<Socket>()
  const server = createNetServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.write(Buffer.concat([Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'), randomBytes(64)]))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: async () => { await closeServer(server, sockets) } }
}

/** Makes `dir` refuse new files, which is where the atomic save writes its temp file. chmod 0500 does not
 * stop root; there `chattr +i` does, where the file system supports it. */
async function makeReadOnly (dir: string): Promise<{ undo: () => Promise<void> } | { skip: string }> {
  const writable = async (): Promise<boolean> => {
    const probe = join(dir, '.write-probe')
    try {
      await writeFile(probe, 'x')
      await unlink(probe)
      return true
    } catch {
      return false
    }
  }
  if (process.getuid?.() !== 0) {
    await chmod(dir, 0o500)
    if (!await writable()) return { undo: async () => { await chmod(dir, 0o700) } }
    await chmod(dir, 0o700)
  }
  const set = spawnSync('chattr', ['+i', dir], { encoding: 'utf8', timeout: 10_000 })
  if (set.status === 0) {
    const undo = async (): Promise<void> => { spawnSync('chattr', ['-i', dir], { timeout: 10_000 }) }
    if (!await writable()) return { undo }
    await undo()
  }
  return {
    skip: process.getuid?.() === 0
      ? 'running as root: the filesystem cannot be made read-only for root (chattr +i is not available here)'
      : 'the directory stays writable after chmod 0500 and chattr +i is not available here'
  }
}

interface Worker { node: TestNode, chat: FakeModelServer }

describe('faults', () => {
  let b: TestNode
  const workers: Worker[] = []
  const servers: Array<{ close: () => Promise<void> }> = []
  let bad: BadServer
  let raw: BadServer
  let slowTokens: FakeModelServer
  let slowHead: FakeModelServer
  let longStream: FakeModelServer
  let undoReadOnly: (() => Promise<void>) | undefined
  const all = (): TestNode[] => [b, ...workers.map((w) => w.node)]

  const chatBody = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    project: PROJECT, model: CHAT, messages: [{ role: 'user', content: 'Hello' }], ...extra
  })
  /** A fixed listen port, so that a restarted node is found where it was. */
  const fixedPort = async (): Promise<(config: any) => void> => {
    const port = await freePort()
    return (config) => {
      config.Addresses = [`/ip4/127.0.0.1/tcp/${port}`]
      // I5 waits for B to hear busy counters return to 0; the default announces them every 30 s.
      config.App.PeersCollect.BusyInterval = '1s'
    }
  }
  const peersOf = async (node: TestNode, project: string, model: string): Promise<any[]> => {
    const result = await node.call('/api/v0/ai/projects/peers', { project, model })
    return result.status === 200 ? result.body.data : []
  }
  const idleOf = async (node: TestNode, project: string, model: string, serving: string): Promise<number | undefined> =>
    (await peersOf(node, project, model)).find((p) => p.node_id === serving)?.Idle
  const keyInfo = async (id: string): Promise<any> => (await b.call('/api/v0/keys/list')).body.data.find((k: any) => k.id === id)
  const createKey = async (balanceUsd: number, options: Record<string, unknown> = {}): Promise<{ secret: string, id: string }> => {
    const result = await b.call('/api/v0/keys/create', { name: 'faults', balance_usd: balanceUsd, ...options })
    assert.equal(result.body.code, 0, JSON.stringify(result.body))
    return { secret: result.body.data.secret, id: result.body.data.key.id }
  }
  const openai = (secret: string): OpenAI => new OpenAI({ apiKey: secret, baseURL: `${b.api}/v1`, maxRetries: 0, timeout: REQUEST_TIMEOUT_MS })
  /** I3: every node of the network still runs and answers. */
  const assertAllAlive = async (): Promise<void> => {
    for (const node of all()) {
      assert.ok(node.running, `node ${node.peerId} crashed:\n${node.output.slice(-2000)}`)
      assert.equal((await node.call('/api/v0/id')).status, 200)
    }
  }

  before(async () => {
    bad = await startBadModelServer()
    raw = await startRawServer()
    slowTokens = await startFakeModelServer({ tokens: ['s', 'l', 'o', 'w'], tokenDelayMs: 3_000 })
    slowHead = await startFakeModelServer({ responseDelayMs: 3_000 })
    longStream = await startFakeModelServer({ tokens: Array.from({ length: 50 }, (_, i) => ` t${i}`), tokenDelayMs: 100 })
    servers.push(bad, raw, slowTokens, slowHead, longStream)

    b = await TestNode.start({ mode: 'input', psk: PSK, edit: await fixedPort() })
    const bAddr = await b.addr()
    for (let i = 0; i < 3; i++) {
      const chat = await startFakeModelServer({ tokens: TOKENS, tokenDelayMs: 40 })
      servers.push(chat)
      workers.push({ node: await TestNode.start({ psk: PSK, bootstrap: [bAddr], edit: await fixedPort() }), chat })
    }
    for (const { node, chat } of workers) {
      const register = await node.call('/api/v0/ai/project/register', { project: PROJECT, models: [{ model: CHAT, api: `${chat.url}/v1/chat/completions`, type: 0 }] })
      assert.equal(register.body.code, 0, JSON.stringify(register.body))
    }
    const w1 = workers[0].node
    const faulty: Array<[string, string]> = [
      ['hang', `${bad.url}/hang`],
      ['hang-after-headers', `${bad.url}/hang-after-headers`],
      ['reset', `${bad.url}/reset`],
      ['garbage', `${bad.url}/garbage`],
      ['raw', `${raw.url}/v1/chat/completions`],
      ['slow-tokens', `${slowTokens.url}/v1/chat/completions`],
      ['slow-head', `${slowHead.url}/v1/chat/completions`]
    ]
    const register = await w1.call('/api/v0/ai/project/register', { project: 'Faults', models: faulty.map(([model, api]) => ({ model, api, type: 0 })) })
    assert.equal(register.body.code, 0, JSON.stringify(register.body))
    const w2 = workers[1].node
    assert.equal((await w2.call('/api/v0/ai/model/register', { project: 'Abort', model: 'long', api: `${longStream.url}/v1/chat/completions` })).body.code, 0)
    await waitFor(async () => {
      const peers = await peersOf(b, PROJECT, CHAT)
      return peers.length === 3 && peers.every((p) => p.connectivity === 1)
    }, 30_000, 'B to see all three workers')
    await waitFor(async () => (await b.call('/api/v0/ai/projects/models', { project: 'Faults' })).body.data?.length === faulty.length, 15_000, 'B to see the faulty models')
  })

  after(async () => {
    await undoReadOnly?.()
    await Promise.all(all().filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
    await Promise.all(servers.map(async (s) => { await s.close() }))
  })

  test('workers killed and restarted during load: every job succeeds in full or fails with a documented error; B never crashes', async (t) => {
    // Invariant: of 60 chat jobs by project (the /api/v0 proxy and the /v1 gateway with a metered key,
    // each streamed and not; 6 at once) while W3 is SIGKILLed and restarted, each job either returns the
    // model's full answer or a documented error (I1), none hangs (I2), only jobs that were in flight when
    // W3 died may fail (every later job fails over before its first byte), B, W1 and W2 keep running (I3),
    // the key is charged exactly the usage its clients were shown (I4), and the restarted W3 serves again.
    const w3 = workers[2].node
    const JOBS = 60
    const CONCURRENCY = 6
    const KILL_AFTER = 15
    const AFTER_RELAUNCH = 40
    // Each request reserves its worst case (src/gateway/billing.ts, 128k output tokens without max_tokens),
    // so six at once need more than $1.
    const { secret, id } = await createKey(100)
    const inFlight = new Map<number, { stream: boolean, node: string }>()
    const outcomes: Array<{ i: number, kind: string, stream: boolean, node: string, verdict: Verdict, cost: number }> = []
    let inFlightAtKill = new Set<number>()
    let protocolsAfterRelaunch: string[] = []
    let relaunched = false
    let next = 0

    const runJob = async (i: number): Promise<void> => {
      // api non-stream, api stream, gateway non-stream, gateway stream
      const gateway = i % 4 >= 2
      const stream = i % 2 === 1
      const entry = { stream, node: '' }
      inFlight.set(i, entry)
      let verdict: Verdict
      let cost = 0
      try {
        const started = Date.now()
        const response = await fetch(gateway ? `${b.api}/v1/chat/completions` : `${b.api}/api/v0/chat/completion/proxy`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(gateway ? { authorization: `Bearer ${secret}` } : {}) },
          body: JSON.stringify(gateway
            ? { model: CHAT, messages: [{ role: 'user', content: `job ${i}` }], stream, ...(stream ? { stream_options: { include_usage: true } } : {}) }
            : chatBody({ stream })),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
        })
        entry.node = response.headers.get('x-aicn-node') ?? ''
        const text = await response.text()
        let body: unknown
        try { body = JSON.parse(text) } catch {}
        const answer = { status: response.status, contentType: response.headers.get('content-type') ?? '', node: entry.node, text, body, ms: Date.now() - started }
        if (gateway) ({ verdict, cost } = judgeGateway(answer, stream))
        else verdict = judgeChat(answer, stream)
      } catch (err) {
        verdict = { ok: false, wellFormed: false, detail: `no answer within ${REQUEST_TIMEOUT_MS} ms: ${(err as Error).message}` }
      } finally {
        inFlight.delete(i)
      }
      outcomes.push({ i, kind: `${gateway ? 'gateway' : 'api'}${stream ? ' stream' : ''}`, stream, node: entry.node, verdict, cost })
    }
    const loop = async (): Promise<void> => {
      while (next < JOBS) {
        const i = next++
        if (i >= AFTER_RELAUNCH) await waitFor(() => relaunched, 60_000, 'W3 to be relaunched')
        await runJob(i)
      }
    }
    const killer = async (): Promise<void> => {
      await waitFor(() => outcomes.length >= KILL_AFTER, 60_000, 'the first jobs')
      // Kill while a stream runs on W3 where possible, so that the kill really cuts a job.
      await waitFor(() => [...inFlight.values()].some((e) => e.stream && e.node === w3.peerId), 5_000, 'a stream on W3').catch(() => {})
      // Taken synchronously with the SIGKILL, which kill() sends before its first await.
      inFlightAtKill = new Set(inFlight.keys())
      await w3.kill()
      await w3.launch()
      // What B's peer store says W3 speaks, as soon as they are connected again.
      await waitFor(async () => (await connectedPeers(b)).includes(w3.peerId), 10_000, 'B to reconnect to W3').catch(() => {})
      protocolsAfterRelaunch = (await b.call('/api/v0/peer', { node_id: w3.peerId, timeout: '2s' })).body.data?.protocols ?? []
      relaunched = true
    }
    await Promise.all([killer(), ...Array.from({ length: CONCURRENCY }, loop)])

    assert.equal(outcomes.length, JOBS)
    const detail = (v: Verdict): string => v.ok ? 'ok' : v.detail
    const lost = outcomes.filter((o) => !o.verdict.ok && !o.verdict.wellFormed)
    assert.deepEqual(lost.map((o) => `job ${o.i} (${o.kind}): ${detail(o.verdict)}`), [], 'no job lost or hung without a documented error')
    const failed = outcomes.filter((o) => !o.verdict.ok)
    for (const o of failed) {
      assert.ok(inFlightAtKill.has(o.i), `job ${o.i} (${o.kind}) failed although it started after W3 died: ${detail(o.verdict)}`)
      if (o.stream && o.node !== '') assert.equal(o.node, w3.peerId, `job ${o.i} failed on ${o.node}, which was not killed`)
    }
    assert.ok(failed.length <= CONCURRENCY)
    await assertAllAlive()
    // The key paid exactly for the usage its answers reported, failures included (they report none).
    const charged = outcomes.reduce((n, o) => n + o.cost, 0)
    await waitFor(async () => (await keyInfo(id)).balanceMicroUsd === 100_000_000 - charged, 10_000, 'the key\'s balance to settle')
    const usage = (await b.call('/api/v0/usage', { id })).body.data
    assert.equal(usage.reduce((n: number, r: any) => n + r.requests, 0), JOBS / 2, 'every gateway job is in the usage log once')
    assert.equal(usage.reduce((n: number, r: any) => n + r.costMicroUsd, 0), charged)
    // The restarted W3 is heard again and serves jobs.
    await waitFor(async () => (await peersOf(b, PROJECT, CHAT)).some((p) => p.node_id === w3.peerId && p.connectivity === 1), 30_000, 'B to hear the restarted W3')
    const direct = await post(`${b.api}/api/v0/chat/completion`, chatBody({ node_id: w3.peerId }))
    assert.deepEqual(judgeChat(direct, false), { ok: true })
    // A node registers its protocol handlers before libp2p starts, so the first identify its peers run
    // already lists them: B never takes a restarted aicn worker for a Go node (it did, for about 2 s).
    assert.ok(protocolsAfterRelaunch.includes('/aicn/job/1.1.0'), JSON.stringify(protocolsAfterRelaunch))
    t.diagnostic(`load with a worker killed: ${JOBS - failed.length} succeeded, ${failed.length} failed with a documented error (${inFlightAtKill.size} in flight at the kill): ${failed.map((o) => `${o.kind}: ${detail(o.verdict)}`).join('; ')}`)
  })

  test('model servers that hang, reset, answer garbage or are too slow: a documented error in bounded time, local and remote', async () => {
    // Invariant: every misbehaviour of a model server gives its client a documented error (the status and
    // code below, or an SSE error event once a stream has started) within the job's timeout plus a few
    // seconds (I1, I2), on the node that runs the model and through another node, and both keep serving
    // (I3) with no busy counter left behind (I5).
    const w1 = workers[0].node
    type Expect = { status: number, code: number } | { sse: number }
    const cases: Array<{ model: string, stream: boolean, timeout?: string, expect: Expect }> = [
      { model: 'hang', stream: false, timeout: '1s', expect: { status: 504, code: 1004 } },
      { model: 'hang', stream: true, timeout: '1s', expect: { status: 504, code: 1004 } },
      { model: 'hang-after-headers', stream: false, timeout: '1s', expect: { status: 504, code: 1004 } },
      { model: 'hang-after-headers', stream: true, timeout: '1s', expect: { sse: 1004 } },
      { model: 'reset', stream: false, expect: { status: 502, code: 1006 } },
      { model: 'reset', stream: true, expect: { sse: 1006 } },
      { model: 'garbage', stream: false, expect: { status: 502, code: 1006 } },
      { model: 'garbage', stream: true, expect: { status: 502, code: 1006 } },
      { model: 'raw', stream: false, expect: { status: 502, code: 1006 } },
      { model: 'raw', stream: true, expect: { status: 502, code: 1006 } },
      { model: 'slow-tokens', stream: true, timeout: '1s', expect: { sse: 1004 } },
      { model: 'slow-head', stream: false, timeout: '1s', expect: { status: 504, code: 1004 } }
    ]
    for (const [path, via] of [['local', w1], ['remote', b]] as const) {
      const problems: string[] = []
      // All cases at once: a node must keep every fault to its own job.
      await Promise.all(cases.map(async (c) => {
        const what = `${path} ${c.model} stream=${String(c.stream)}`
        let answer: Answer
        try {
          answer = await post(`${via.api}/api/v0/chat/completion`, { node_id: w1.peerId, project: 'Faults', model: c.model, messages: [{ role: 'user', content: 'Hi' }], stream: c.stream, ...(c.timeout === undefined ? {} : { timeout: c.timeout }) }, 15_000)
        } catch (err) {
          problems.push(`${what}: no answer within 15 s (${(err as Error).message})`)
          return
        }
        // The job timeout is 1 s; the remote path may add its grace. Nothing may take longer than 8 s.
        if (answer.ms > 8_000) problems.push(`${what}: took ${answer.ms} ms`)
        const events = sseEvents(answer.text)
        const error = sseError(events)
        let mismatch: string | undefined
        if ('sse' in c.expect) {
          if (answer.status !== 200 || error === undefined || DOCUMENTED[error.code] === undefined || events.includes('data: [DONE]')) {
            problems.push(`${what}: expected 200 and an SSE error event, got ${answer.status} ${answer.text.slice(0, 300)}`)
          } else if (error.code !== c.expect.sse) {
            mismatch = `${what}: expected an SSE error event with code ${c.expect.sse}, got ${JSON.stringify(error)}`
          }
        } else {
          const problem = documentedError(answer.status, answer.body)
          if (problem !== undefined) problems.push(`${what}: ${problem}: ${answer.text.slice(0, 300)}`)
          else if (answer.status !== c.expect.status || answer.body.code !== c.expect.code) {
            mismatch = `${what}: expected ${c.expect.status} with code ${c.expect.code}, got ${answer.status} ${answer.text.slice(0, 300)}`
          }
        }
        if (mismatch !== undefined) problems.push(mismatch)
      }))
      assert.deepEqual(problems, [])
      // The node keeps serving, locally and through the network.
      assert.deepEqual(judgeChat(await post(`${via.api}/api/v0/chat/completion`, chatBody({ node_id: w1.peerId })), false), { ok: true })
      assert.deepEqual(judgeChat(await post(`${via.api}/api/v0/chat/completion`, chatBody({ node_id: w1.peerId, stream: true })), true), { ok: true })
    }
    // No busy counter is left behind by a failure (the raw server fails the health probe and is not listed).
    for (const model of ['hang', 'hang-after-headers', 'reset', 'garbage', 'slow-tokens', 'slow-head']) {
      await waitFor(async () => (await idleOf(w1, 'Faults', model, w1.peerId)) === 0, 10_000, `W1's busy count of ${model} to return to 0`)
    }
    await assertAllAlive()
  })

  test('a client that disconnects mid-stream: the model call is aborted and the busy count returns to 0', async () => {
    // Invariant: when the client goes away mid-stream, locally or through another node, the model call is
    // cancelled (the model server sees its stream closed early) and the node's busy count for the model
    // returns to 0, as seen by the node itself and by B through heartbeats (I5); the nodes keep serving.
    const w2 = workers[1]
    await waitFor(async () => (await idleOf(b, 'Abort', 'long', w2.node.peerId)) === 0, 15_000, 'B to list Abort/long on W2')
    for (const [path, via] of [['local', w2.node], ['remote', b]] as const) {
      const abortedBefore = longStream.abortedStreams
      const controller = new AbortController()
      const timer = setTimeout(() => { controller.abort() }, REQUEST_TIMEOUT_MS)
      try {
        const response = await fetch(`${via.api}/api/v0/chat/completion`, {
          method: 'POST', signal: controller.signal, headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ node_id: w2.node.peerId, project: 'Abort', model: 'long', messages: [], stream: true })
        })
        assert.equal(response.status, 200, path)
        const reader = (response.body as ReadableStream<Uint8Array>).getReader()
        assert.equal((await reader.read()).done, false)
        // While the stream runs, the job is counted.
        await waitFor(async () => (await idleOf(w2.node, 'Abort', 'long', w2.node.peerId)) === 1, 5_000, `${path}: W2 to count the running job`)
        controller.abort()
      } finally {
        clearTimeout(timer)
      }
      await waitFor(() => longStream.abortedStreams === abortedBefore + 1, 10_000, `${path}: the model call to be aborted`)
      await waitFor(async () => (await idleOf(w2.node, 'Abort', 'long', w2.node.peerId)) === 0, 10_000, `${path}: W2's busy count to return to 0`)
      await waitFor(async () => (await idleOf(b, 'Abort', 'long', w2.node.peerId)) === 0, 10_000, `${path}: B to hear W2's busy count return to 0`)
    }
    // Through the gateway, with a metered key allowed one request at a time: the model call is cancelled,
    // the reservation is given back less what the stream delivered before the client left (the model
    // reported no usage: src/gateway/billing.ts charges the delivered events), and the key's concurrency
    // slot is free again.
    const { secret, id } = await createKey(1, { concurrency: 1 })
    const abortedBefore = longStream.abortedStreams
    const controller = new AbortController()
    const timer = setTimeout(() => { controller.abort() }, REQUEST_TIMEOUT_MS)
    try {
      const response = await fetch(`${b.api}/v1/chat/completions`, {
        method: 'POST', signal: controller.signal, headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
        body: JSON.stringify({ model: 'Abort/long', messages: [{ role: 'user', content: 'Hi' }], stream: true })
      })
      assert.equal(response.status, 200)
      assert.equal((await (response.body as ReadableStream<Uint8Array>).getReader().read()).done, false)
      assert.ok((await keyInfo(id)).balanceMicroUsd < 1_000_000, 'the estimate is reserved while the stream runs')
      controller.abort()
    } finally {
      clearTimeout(timer)
    }
    await waitFor(() => longStream.abortedStreams === abortedBefore + 1, 10_000, 'gateway: the model call to be aborted')
    await waitFor(async () => (await idleOf(b, 'Abort', 'long', w2.node.peerId)) === 0, 10_000, 'gateway: B to hear W2\'s busy count return to 0')
    await waitFor(async () => (await b.call('/api/v0/usage', { id })).body.data[0]?.requests === 1, 10_000, 'gateway: the cut stream to be settled')
    const cut = (await b.call('/api/v0/usage', { id })).body.data[0]
    assert.ok(cut.completionTokens >= 1 && cut.costMicroUsd > 0 && cut.costMicroUsd < 10_000, `charged for what was delivered: ${JSON.stringify(cut)}`)
    const afterCut = (await keyInfo(id)).balanceMicroUsd
    assert.equal(afterCut, 1_000_000 - cut.costMicroUsd, 'the rest of the reservation was given back')
    const next = await openai(secret).chat.completions.create({ model: CHAT, messages: [{ role: 'user', content: 'Hi' }] })
    assert.equal(next.choices[0].message.content, FULL, 'the concurrency slot is free again')
    await waitFor(async () => (await keyInfo(id)).balanceMicroUsd === afterCut - usageCost(next.usage), 10_000, 'gateway: the next request to be charged')
    assert.ok(longStream.requests.length >= 3)
    assert.deepEqual(judgeChat(await post(`${b.api}/api/v0/chat/completion`, chatBody({ node_id: w2.node.peerId, stream: true })), true), { ok: true })
    await assertAllAlive()
  })

  test('a read-only config directory at save time: a clear 5xx error, nothing lost, and registering works again once writable', async (t) => {
    // Invariant: when the config cannot be saved, register and unregister answer 500 with code 5000 and a
    // message that names the config; the running registry and the config file both still hold exactly the
    // previous registrations, no temp file is left behind (I5), the node keeps serving (I3), and once the
    // directory is writable again the same registration succeeds and is saved.
    const w2 = workers[1].node
    const self = async (): Promise<unknown> => (await w2.call('/api/v0/ai/project/peer', { node_id: w2.peerId })).body.data
    const fileBefore = await readFile(w2.configPath, 'utf8')
    const registryBefore = await self()
    const filesBefore = (await readdir(w2.dir)).sort()
    const readOnly = await makeReadOnly(w2.dir)
    if ('skip' in readOnly) {
      t.skip(readOnly.skip)
      return
    }
    undoReadOnly = readOnly.undo
    const model = { project: 'ReadOnly', model: 'ro', api: `${workers[1].chat.url}/v1/chat/completions`, type: 0 }
    try {
      for (const [path, body] of [['/api/v0/ai/model/register', model], ['/api/v0/ai/project/unregister', { project: 'Abort' }]] as const) {
        const result = await w2.call(path, body)
        assert.equal(result.status, 500, `${path}: ${JSON.stringify(result.body)}`)
        assert.equal(result.body.code, 5000)
        assert.match(result.body.message, /config/)
        assert.match(result.body.message, new RegExp(w2.configPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      }
      assert.deepEqual(await self(), registryBefore, 'the running registry is unchanged')
      assert.equal(await readFile(w2.configPath, 'utf8'), fileBefore, 'the config file is unchanged')
      assert.deepEqual((await readdir(w2.dir)).sort(), filesBefore, 'no temp file is left behind')
      assert.deepEqual(judgeChat(await post(`${b.api}/api/v0/chat/completion`, chatBody({ node_id: w2.peerId })), false), { ok: true })
    } finally {
      await readOnly.undo()
      undoReadOnly = undefined
    }
    assert.deepEqual((await w2.call('/api/v0/ai/model/register', model)).body, { code: 0, message: 'ok' })
    const saved = JSON.parse(await readFile(w2.configPath, 'utf8'))
    assert.deepEqual(saved.AIProjects.map((p: any) => p.Project).sort(), ['Abort', PROJECT, 'ReadOnly'].sort())
    await waitFor(async () => (await b.call('/api/v0/ai/projects/models', { project: 'ReadOnly' })).body.data?.includes('ro') === true, 10_000, 'B to hear the registration')
    assert.deepEqual((await w2.call('/api/v0/ai/project/unregister', { project: 'ReadOnly' })).body, { code: 0, message: 'ok' })
    await assertAllAlive()
  })

  test('gateway: concurrent requests on one key are charged exactly once each; failed ones cost nothing', async () => {
    // Invariant (I4): after 20 concurrent requests (half streamed) on one key, its balance is the initial
    // balance minus the sum of each answer's usage cost, exactly, and the usage log counts 20 requests;
    // requests whose model fails (before or after the first byte) leave the balance where it was.
    const { secret, id } = await createKey(100) // 20 worst cases reserved at once (src/gateway/billing.ts)
    const client = openai(secret)
    const costs = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const messages = [{ role: 'user' as const, content: 'word '.repeat(i + 1) }]
      if (i % 2 === 0) return usageCost((await client.chat.completions.create({ model: CHAT, messages })).usage)
      let usage: { prompt_tokens: number, completion_tokens: number } | undefined
      let content = ''
      for await (const chunk of await client.chat.completions.create({ model: CHAT, messages, stream: true, stream_options: { include_usage: true } })) {
        content += chunk.choices[0]?.delta?.content ?? ''
        if (chunk.usage != null) usage = chunk.usage
      }
      assert.equal(content, FULL)
      return usageCost(usage)
    }))
    const expected = 100_000_000 - costs.reduce((a, c) => a + c, 0)
    await waitFor(async () => (await keyInfo(id)).balanceMicroUsd === expected, 10_000, 'the balance to settle')
    const usage = (await b.call('/api/v0/usage', { id })).body.data
    assert.equal(usage.reduce((n: number, r: any) => n + r.requests, 0), 20)
    assert.equal(usage.reduce((n: number, r: any) => n + r.costMicroUsd, 0), 100_000_000 - expected)

    // Failures: garbage before the first byte, a reset after it.
    await assert.rejects(client.chat.completions.create({ model: 'Faults/garbage', messages: [{ role: 'user', content: 'Hi' }] }), (err: any) => err.status === 502)
    await assert.rejects((async () => {
      for await (const _chunk of await client.chat.completions.create({ model: 'Faults/reset', messages: [{ role: 'user', content: 'Hi' }], stream: true })) { /* read to the error */ }
    })())
    await waitFor(async () => (await b.call('/api/v0/usage', { id })).body.data.reduce((n: number, r: any) => n + r.requests, 0) === 22, 10_000, 'the failures to be recorded')
    assert.equal((await keyInfo(id)).balanceMicroUsd, expected, 'a failed request costs nothing')
    await assertAllAlive()
  })

  test('a full restart of the whole network: registrations and key balances come back exactly', async () => {
    // Invariant: after SIGTERM of every node and a start of every node, each worker serves the same
    // registrations and B routes to all of them again; the key's balance and usage are exactly what they
    // were (no charge, no refund across the restart, I4); the next request is charged exactly once.
    const { secret, id } = await createKey(1)
    let spent = 0
    for (let i = 0; i < 2; i++) spent += usageCost((await openai(secret).chat.completions.create({ model: CHAT, messages: [{ role: 'user', content: 'before the restart' }] })).usage)
    for await (const chunk of await openai(secret).chat.completions.create({ model: CHAT, messages: [{ role: 'user', content: 'streamed' }], stream: true, stream_options: { include_usage: true } })) {
      if (chunk.usage != null) spent += usageCost(chunk.usage)
    }
    await waitFor(async () => (await keyInfo(id)).balanceMicroUsd === 1_000_000 - spent, 10_000, 'the balance to settle')
    const keyBefore = await keyInfo(id)
    const usageBefore = (await b.call('/api/v0/usage', { id })).body.data
    const registrations = await Promise.all(workers.map(async ({ node }) => (await node.call('/api/v0/ai/project/peer', { node_id: node.peerId })).body.data))

    const codes = await Promise.all(all().map(async (node) => await node.stop()))
    assert.deepEqual(codes, all().map(() => 0), 'every node stops cleanly')
    await b.launch()
    await Promise.all(workers.map(async ({ node }) => { await node.launch() }))

    for (const [i, { node }] of workers.entries()) {
      assert.deepEqual((await node.call('/api/v0/ai/project/peer', { node_id: node.peerId })).body.data, registrations[i], `W${i + 1}'s registrations`)
    }
    await waitFor(async () => {
      const peers = await peersOf(b, PROJECT, CHAT)
      return workers.every(({ node }) => peers.some((p) => p.node_id === node.peerId && p.connectivity === 1))
    }, 30_000, 'B to route to every worker again')
    for (const [i, { node }] of workers.entries()) {
      const asked = await b.call('/api/v0/ai/project/peer', { node_id: node.peerId })
      assert.deepEqual(asked.body.data, registrations[i], `B asking W${i + 1} over RPC`)
    }
    assert.deepEqual(await keyInfo(id), keyBefore, 'the key, its balance included, is exactly as before')
    assert.deepEqual((await b.call('/api/v0/usage', { id })).body.data, usageBefore)

    const after = await openai(secret).chat.completions.create({ model: CHAT, messages: [{ role: 'user', content: 'after the restart' }] })
    assert.equal(after.choices[0].message.content, FULL)
    const cost = usageCost(after.usage)
    await waitFor(async () => (await keyInfo(id)).balanceMicroUsd === keyBefore.balanceMicroUsd - cost, 10_000, 'the new request to be charged')
    // A second request, charged after the first: a late second charge of the first would show in the balance.
    const again = await openai(secret).chat.completions.create({ model: CHAT, messages: [{ role: 'user', content: 'after the restart' }] })
    const total = cost + usageCost(again.usage)
    // (A request holds a reservation until its usage is known, so the balance is awaited, not read once.)
    await waitFor(async () => (await keyInfo(id)).balanceMicroUsd === keyBefore.balanceMicroUsd - total, 10_000, 'each request to be charged exactly once')
    await assertAllAlive()
  })
})
