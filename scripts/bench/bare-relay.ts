// The least two extra Node.js processes can add to a model call on this machine: a bare relay pair with
// no libp2p and no aicn in it, for the jobs benchmark's floor path (d). What it does per request is what
// any two-node design must do, done as cheaply as Node allows:
//   entry: node:http server → reads the JSON body, parses it (a node must, to find where the job goes)
//          → one length-prefixed frame on a kept TCP connection to the exit relay;
//   exit:  reads the frame → POSTs the body to the model (undici, keep-alive) → sends the answer back as
//          one frame; the entry relay wraps it in the /api/v0 envelope and answers.
// No encryption, no multiplexing, no validation, no timeouts: a floor to compare with, not a design.
//
//   node dist/scripts/bench/bare-relay.js --role exit --model http://127.0.0.1:PORT/v1/chat/completions
//   node dist/scripts/bench/bare-relay.js --role entry --exit 127.0.0.1:PORT
// Each prints its own address (http://… or host:port) on one line once it listens, on 127.0.0.1 only.
import { createServer as createHttpServer } from 'node:http'
import { connect, createServer as createTcpServer, type Socket } from 'node:net'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'

const { values: args } = parseArgs({ options: { role: { type: 'string' }, model: { type: 'string' }, exit: { type: 'string' } } })

/** Calls `onFrame` with each whole frame (4-byte big-endian length, then id:u32 and the payload). */
function readFrames (socket: Socket, onFrame: (id: number, payload: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    while (pending.length >= 8 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const size = pending.readUInt32BE(0)
      onFrame(pending.readUInt32BE(4), pending.subarray(8, 4 + size))
      pending = pending.subarray(4 + size)
    }
  })
}

function writeFrame (socket: Socket, id: number, payload: Buffer): void {
  const head = Buffer.allocUnsafe(8)
  head.writeUInt32BE(payload.length + 4, 0)
  head.writeUInt32BE(id, 4)
  socket.write(Buffer.concat([head, payload]))
}

function exitRelay (modelUrl: string): void {
  const agent = new Agent({ keepAliveTimeout: 60_000 })
  const server = createTcpServer((socket) => {
    socket.setNoDelay(true)
    readFrames(socket, (id, body) => {
      void request(modelUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body, dispatcher: agent })
        .then(async (res) => Buffer.from(await res.body.arrayBuffer()))
        .catch((err: Error) => Buffer.from(JSON.stringify({ error: err.message })))
        .then((answer) => { writeFrame(socket, id, answer) })
    })
  })
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number }
    process.stdout.write(`127.0.0.1:${port}\n`)
  })
}

function entryRelay (exit: string): void {
  const [host, port] = exit.split(':')
  const link = connect(Number(port), host!)
  link.setNoDelay(true)
  const waiting = new Map<number, (answer: Buffer) => void>()
  let nextId = 0
  readFrames(link, (id, answer) => {
    waiting.get(id)?.(answer)
    waiting.delete(id)
  })
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      JSON.parse(body.toString('utf8')) // what a node reads its routing fields from
      const id = nextId++ >>> 0
      waiting.set(id, (answer) => {
        const text = `{"code":0,"message":"ok","data":${answer.toString('utf8')}}`
        res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
        res.end(text)
      })
      writeFrame(link, id, body)
    })
  })
  link.once('connect', () => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      process.stdout.write(`http://127.0.0.1:${port}\n`)
    })
  })
}

if (args.role === 'exit' && args.model !== undefined) exitRelay(args.model)
else if (args.role === 'entry' && args.exit !== undefined) entryRelay(args.exit)
else {
  process.stderr.write('usage: bare-relay --role exit --model URL | --role entry --exit HOST:PORT\n')
  process.exit(2)
}
