// An image edit upload (/v1/images/edits, /api/v0/image/edit). The router needs the model before it can
// choose a node, and on /v1 the model is a form field of the multipart body. The body is parsed as it arrives (busboy) only until
// that field; the bytes read so far are held, the model is looked up, and then they go on to the worker
// followed by the rest as it arrives. The file is held only when the client sends the model after it
// (the OpenAI SDKs send it first), and never beyond the limit. `?model=` in the query string skips parsing.
import type { IncomingMessage } from 'node:http'
import busboy from 'busboy'
import { AicnError, ErrorCode } from '../core/errors.ts'

export interface Upload {
  model: string | undefined
  contentType: string
  /** The whole multipart body, from its first byte; can be read once. */
  body: AsyncIterable<Uint8Array>
}

export const MAX_UPLOAD_BYTES = 64 * 1024 * 1024

export async function openUpload (req: IncomingMessage, contentType: string, modelFromQuery: string | undefined, limit = MAX_UPLOAD_BYTES): Promise<Upload> {
  if (!/^multipart\/form-data;\s*boundary=/i.test(contentType)) {
    throw new AicnError(ErrorCode.PARAM, 'image edit takes a multipart/form-data body (image, mask, prompt, …)')
  }
  const declared = Number(req.headers['content-length'])
  if (declared > limit) throw tooLarge(limit)
  const source = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  if (modelFromQuery !== undefined) return { model: modelFromQuery, contentType, body: rest([], 0, source, limit) }

  const held: Buffer[] = []
  let size = 0
  let model: string | undefined
  let parseError: Error | undefined
  let parser: busboy.Busboy
  try {
    parser = busboy({ headers: { 'content-type': contentType }, limits: { fieldSize: 4096, fields: 64, parts: 64 } })
  } catch (err) {
    // busboy throws on a Content-Type it cannot use (e.g. `boundary=x y`, a fuzz finding).
    throw new AicnError(ErrorCode.PARAM, `malformed multipart Content-Type: ${(err as Error).message}`)
  }
  parser.on('field', (name: string, value: string) => { if (name === 'model' && model === undefined) model = value })
  parser.on('file', (_name: string, file: NodeJS.ReadableStream) => {
    // Stopping the parser midway fails the open file part; nobody reads it, and an unheard error would crash.
    file.on('error', () => {})
    file.resume()
  })
  parser.on('error', (err: Error) => { parseError = err })
  while (model === undefined && parseError === undefined) {
    const next = await source.next()
    if (next.done === true) break
    size += next.value.length
    if (size > limit) throw tooLarge(limit)
    held.push(next.value)
    // busboy parses synchronously inside write(), so a field that ended in this chunk is known now.
    parser.write(next.value)
  }
  parser.destroy()
  if (parseError !== undefined) throw new AicnError(ErrorCode.PARAM, `malformed multipart body: ${parseError.message}`)
  return { model, contentType, body: rest(held, size, source, limit) }
}

/** The held chunks, then the rest of the request as it arrives, refusing to carry more than `limit` bytes. */
async function * rest (held: Buffer[], heldSize: number, source: AsyncIterator<Buffer>, limit: number): AsyncGenerator<Uint8Array> {
  yield * held
  let size = heldSize
  while (true) {
    const next = await source.next()
    if (next.done === true) return
    size += next.value.length
    if (size > limit) throw tooLarge(limit)
    yield next.value
  }
}

function tooLarge (limit: number): AicnError {
  return new AicnError(ErrorCode.BUFFER, `upload exceeds ${limit} bytes`, { status: 413 })
}
