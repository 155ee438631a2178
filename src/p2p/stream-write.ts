// Writing to a libp2p stream with backpressure; shared by the job protocol (src/protocols/job/job-frames.ts)
// and the Go node's chat-proxy tunnel (src/compat/chat-proxy/chat-proxy.ts).
import type { Stream, StreamCloseEvent } from '@libp2p/interface'

/** Sends bytes; when the stream's buffers are full, resolves once they drained (backpressure). */
export async function write (stream: Stream, data: Parameters<Stream['send']>[0]): Promise<void> {
  if (stream.send(data)) return
  await drained(stream)
}

// Not stream.onDrain(): in @libp2p/utils 7.4 its promise is created once and stays resolved after the
// first drain, so later calls return at once and backpressure is lost.
async function drained (stream: Stream): Promise<void> {
  if (!stream.writableNeedsDrain) return
  await new Promise<void>((resolve, reject) => {
    const onDrain = (): void => { cleanup(); resolve() }
    const onClose = (evt: StreamCloseEvent): void => { cleanup(); reject(evt.error ?? new Error('the stream closed')) }
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
    }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
  })
}
