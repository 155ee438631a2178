// Bench-only preload (`node --import …/residence.js`): how long a request stays inside this process on its
// way through, from the moment its bytes come off one socket to the first write on another socket. That is
// the process's own time per passage (parsing, our code, libp2p, the write), without the time spent waiting
// for other processes or for the scheduler to wake this one, which on a busy or virtual machine can be most
// of a request's latency. It changes nothing else: two timestamps per socket read and write.
//
// Each passage is kept with the four ports involved, so the benchmark can tell the way towards the model
// from the way back. SIGUSR2 writes the passages since the start or the last SIGUSR2 as JSON to
// $AICN_RESIDENCE_DIR/<pid>.json and starts afresh.
import diagnostics from 'node:diagnostics_channel'
import { writeFileSync } from 'node:fs'
import { Socket } from 'node:net'
import { join } from 'node:path'

/** One passage: [µs, port the bytes came in on (local), their sender's port, local port of the write, the
 * port written to]. */
export type Passage = [number, number, number, number, number]

const dir = process.env.AICN_RESIDENCE_DIR
if (dir !== undefined) {
  /** Most passages kept between two reports; a bounded run never gets near. */
  const MAX_PASSAGES = 1_000_000
  let passages: Passage[] = []
  let arrived: { socket: Socket, at: bigint } | undefined
  const proto = Socket.prototype as unknown as {
    push: (chunk: unknown, encoding?: BufferEncoding) => boolean
    _writeGeneric: (...args: unknown[]) => unknown
  }
  const push = proto.push
  proto.push = function (this: Socket, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk != null) arrived = { socket: this, at: process.hrtime.bigint() }
    return push.call(this, chunk, encoding)
  }
  // node:http servers parse their sockets' bytes in C++ without push(); the first moment JS sees a request
  // is this channel, once its head is parsed (so an HTTP server's passages leave out parsing the head).
  diagnostics.subscribe('http.server.request.start', (message) => {
    arrived = { socket: (message as { socket: Socket }).socket, at: process.hrtime.bigint() }
  })
  const writeGeneric = proto._writeGeneric
  proto._writeGeneric = function (this: Socket, ...args: unknown[]): unknown {
    if (arrived !== undefined && arrived.socket !== this && passages.length < MAX_PASSAGES) {
      const from = arrived.socket
      passages.push([Number(process.hrtime.bigint() - arrived.at) / 1000, from.localPort ?? 0, from.remotePort ?? 0, this.localPort ?? 0, this.remotePort ?? 0])
      arrived = undefined
    }
    return writeGeneric.apply(this, args)
  }
  process.on('SIGUSR2', () => {
    writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify(passages))
    passages = []
  })
}
