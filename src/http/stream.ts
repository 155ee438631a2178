// Writes a streamed reply: each chunk goes to the socket the moment it arrives (no buffering, so SSE
// tokens reach the client one by one), with backpressure from the client, and stops pulling from the
// source when the client goes away, which lets the source cancel the model call.
import { once } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../logger.ts'
import type { StreamReply } from './reply.ts'

export async function writeStream (req: IncomingMessage, res: ServerResponse, reply: StreamReply, log: Logger): Promise<void> {
  res.writeHead(reply.status, { 'Content-Type': reply.contentType, 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no', ...reply.headers })
  // Headers go out now, before the first token, so the client knows the stream has started.
  res.flushHeaders()
  const iterator = reply.body[Symbol.asyncIterator]()
  const gone = new Promise<'gone'>((resolve) => { res.once('close', () => { resolve('gone') }) })
  try {
    while (true) {
      const next = await Promise.race([iterator.next(), gone])
      if (next === 'gone') break
      if (next.done === true) break
      if (!res.write(next.value)) {
        if (await Promise.race([once(res, 'drain').then(() => 'drained' as const), gone]) === 'gone') break
      }
    }
  } catch (err) {
    log.debug({ err: (err as Error).message, url: req.url }, 'stream failed after it started')
    const tail = reply.onError?.(err)
    if (tail !== undefined && !res.destroyed) res.write(tail)
  } finally {
    // Tell the source we are done. Not awaited: when the client left, the route's abort signal has
    // already cancelled the model call, and a generator's return() would wait for its pending next().
    iterator.return?.().catch(() => {})
    if (!res.destroyed) res.end()
  }
}
