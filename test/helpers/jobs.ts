// Small pieces the job-protocol, chat-proxy and upload tests build jobs and read answers with.
import { randomUUID } from 'node:crypto'
import { JobKind, type JobHead } from '../../src/core/job-types.ts'

/** A chat job's head for `model` in project "Test", 30 s to run; `extra` overrides any field. */
export function head (model: string, extra: Partial<JobHead> = {}): JobHead {
  return { requestId: randomUUID(), project: 'Test', model, cid: '', kind: JobKind.CHAT, contentType: 'application/json', stream: false, deadline: Date.now() + 30_000, ...extra }
}

/** A body of one chunk. */
export async function * once (bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

/** A whole body, read to its end. */
export async function collect (body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of body) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** A promise and the function that resolves it. */
export function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((res) => { resolve = res })
  return { promise, resolve }
}
