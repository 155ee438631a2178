// What an input node's own HTTP layer costs per job, without libp2p: B's HTTP server with the job routes and
// the dispatcher, whose remote hop is replaced by an answer made in-process, against a bare node:http
// handler that does the least any node must do (read and parse the JSON body, wrap the model's answer in
// the /api/v0 envelope). Each server runs in a process of its own; this process is the client (keep-alive,
// sequential, `POST /api/v0/chat/completion` with a `node_id`), and the server reports its own CPU time.
//
//   npm run build && node dist/scripts/bench/http-layer.js [--requests 5000] [--runs 3]
//
// 127.0.0.1 only; every loop is bounded in count, and the whole run by a watchdog.
import '../../src/core/polyfill.ts'
import { fork, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Registry } from 'prom-client'
import { Agent, request } from 'undici'
import { HttpServer } from '../../src/api/server.ts'
import { jobRoutes } from '../../src/api/routes/jobs.ts'
import { JobDispatcher } from '../../src/jobs/dispatcher.ts'
import { NodeSelector } from '../../src/jobs/selector.ts'
import { WholeBody } from '../../src/core/iterables.ts'
import type { LocalExecutor } from '../../src/jobs/local.ts'
import type { NetworkRegistry } from '../../src/protocols/network.ts'
import type { JobSender } from '../../src/core/job-types.ts'
import { silentLogger } from '../../src/core/logger.ts'
import { f0, f2, intArg, MESSAGES, MODEL, summarize } from './lib.ts'

const { values: args } = parseArgs({ options: { serve: { type: 'string' }, requests: { type: 'string' }, runs: { type: 'string' } } })
const REQUESTS = intArg(args.requests, 5_000, 'requests', 100_000)
const RUNS = intArg(args.runs, 3, 'runs', 20)
const WARMUP = 5_000
const WATCHDOG_MS = 10 * 60_000
const ANSWER = Buffer.from(JSON.stringify({
  id: 'chatcmpl-827f91a82f2e676c3df8272b', object: 'chat.completion', created: 1796230209, model: MODEL,
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hi! I am a model, answering in one piece.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 9, total_tokens: 10 }
}))
const BODY = JSON.stringify({ node_id: '16Uiu2HAm17WZRSt3P71uYwdCq5k8Gk2mW7uci8bAcMBZVz14Tiru', project: 'BenchJobs', model: MODEL, messages: MESSAGES })

type ServerKind = 'aicn' | 'bare'
type ToServer = 'cpu-start' | 'cpu-read' | 'exit'
interface FromServer { port?: number, cpuUs?: number }

/** The server side: listens on 127.0.0.1, tells the parent its port, answers CPU readings on request. */
async function serve (kind: ServerKind): Promise<void> {
  let port: number
  if (kind === 'aicn') {
    const remote: JobSender = {
      run: async (peer, job) => {
        for await (const chunk of job.body) void chunk
        return { status: 200, contentType: 'application/json', nodeId: peer.toString(), cid: '', body: new WholeBody(ANSWER) }
      }
    }
    const dispatcher = new JobDispatcher({
      selfId: 'this node', remote, selector: new NodeSelector(), log: silentLogger,
      // Never reached: the job is addressed to another node by `node_id`.
      local: undefined as unknown as LocalExecutor, network: undefined as unknown as NetworkRegistry
    })
    const server = new HttpServer({ routes: jobRoutes({ dispatcher }), logger: silentLogger, registry: new Registry() })
    port = (await server.listen('127.0.0.1:0')).port
  } else {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        JSON.parse(Buffer.concat(chunks).toString('utf8'))
        const text = `{"code":0,"message":"ok","data":${ANSWER.toString('utf8')}}`
        res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
        res.end(text)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as { port: number }).port
  }
  let since = process.cpuUsage()
  process.on('message', (message: ToServer) => {
    if (message === 'exit') process.exit(0)
    if (message === 'cpu-start') since = process.cpuUsage()
    const used = process.cpuUsage(since)
    process.send?.({ cpuUs: used.user + used.system } satisfies FromServer)
  })
  process.send?.({ port } satisfies FromServer)
}

async function ask (child: ChildProcess, message?: ToServer): Promise<FromServer> {
  const answer = new Promise<FromServer>((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', () => { reject(new Error('the server exited')) })
  })
  if (message !== undefined) child.send(message)
  return await answer
}

/** The client side: each server in turn, warm-up, then RUNS runs of REQUESTS sequential requests. */
async function main (): Promise<void> {
  const agent = new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 })
  const rows: string[] = []
  try {
    for (const kind of ['bare', 'aicn', 'bare', 'aicn'] as ServerKind[]) {
      const child = fork(fileURLToPath(import.meta.url), ['--serve', kind], { stdio: 'inherit' })
      try {
        const { port } = await ask(child)
        const url = `http://127.0.0.1:${port ?? 0}/api/v0/chat/completion`
        const once = async (): Promise<void> => {
          const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY, dispatcher: agent })
          const text = await res.body.text()
          if (res.statusCode !== 200) throw new Error(`${kind}: HTTP ${res.statusCode}: ${text.slice(0, 200)}`)
        }
        for (let i = 0; i < WARMUP; i++) await once()
        for (let run = 1; run <= RUNS; run++) {
          await ask(child, 'cpu-start')
          const samples: number[] = []
          for (let i = 0; i < REQUESTS; i++) {
            const t = performance.now()
            await once()
            samples.push(performance.now() - t)
          }
          const { cpuUs } = await ask(child, 'cpu-read')
          rows.push(`| ${kind === 'aicn' ? 'aicn HTTP layer, job routes, dispatcher' : 'bare node:http handler'} | ${run} | ${f0((cpuUs ?? NaN) / REQUESTS)} | ${f2(summarize(samples).p50)} |`)
        }
      } finally {
        child.send('exit')
      }
    }
  } finally {
    await agent.close()
  }
  process.stdout.write([
    `Node ${process.version}; ${REQUESTS} sequential requests per run after ${WARMUP} warm-up; server CPU from process.cpuUsage()`, '',
    '| server | run | server CPU µs per request | latency p50 ms |', '|---|---|---|---|', ...rows, ''
  ].join('\n'))
}

if (args.serve === 'aicn' || args.serve === 'bare') {
  await serve(args.serve)
} else {
  const watchdog = setTimeout(() => { process.stderr.write('watchdog: the run took too long\n'); process.exit(2) }, WATCHDOG_MS)
  await main()
  clearTimeout(watchdog)
}
