// A small but real OpenAI-compatible model server for tests, the demo and benchmarks. It speaks HTTP
// like a model backend does (JSON, server-sent events, multipart uploads, served image files), so the
// node's model client can be tested end to end without a GPU. Only node:http and friends are used.
//
//   node --import tsx scripts/fake-model.ts --port 1042 [--host 127.0.0.1] [--model NAME]
//        [--reply "text to answer"] [--token-delay MS] [--fail-status 500]

import http from 'node:http'
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { deflateSync } from 'node:zlib'
import { isMainModule } from './is-main.ts'

export interface FakeModelServerOptions {
  port?: number
  /** Listen address; 127.0.0.1 unless set. */
  host?: string
  /** Model id answered by GET /v1/models and used when a request names none. */
  model?: string
  /** The reply, split into the tokens that streaming sends one by one. */
  tokens?: string[]
  /** Pause before each streamed token; 0 unless set. */
  tokenDelayMs?: number
  /** Awaited before each streamed token (after tokenDelayMs) with the token's index: tests pace the
   * stream with it, e.g. a token only once the client has read the one before. */
  beforeToken?: (index: number, signal: AbortSignal) => Promise<void>
  /** Makes every route answer this status and body (default: an OpenAI-style error). */
  failWith?: { status: number, body?: unknown }
  /** Pause before answering any request (a slow model); 0 unless set. */
  responseDelayMs?: number
}

export interface RecordedRequest {
  method: string
  path: string
  headers: Record<string, string | string[] | undefined>
  /** The request body, cut at 64 KiB. */
  body: Buffer
}

export interface FakeModelServer {
  /** e.g. http://127.0.0.1:41234 (no trailing slash) */
  url: string
  port: number
  requests: RecordedRequest[]
  /** how many streamed answers ended early because the client went away */
  readonly abortedStreams: number
  close: () => Promise<void>
}

const RECORD_LIMIT = 64 * 1024
const JSON_LIMIT = 32 * 1024 * 1024
const FIELD_LIMIT = 64 * 1024
const DEFAULT_TOKENS = ['Hello', '!', ' I', ' am', ' a', ' fake', ' model', '.']

type Json = Record<string, unknown>

class HttpError extends Error {
  constructor (readonly status: number, message: string, readonly type = 'invalid_request_error') {
    super(message)
  }
}

// ---------------------------------------------------------------------------------------------------
// Small helpers

function openAiError (message: string, type = 'invalid_request_error', code: string | null = null): Json {
  return { error: { message, type, param: null, code } }
}

function now (): number {
  return Math.floor(Date.now() / 1000)
}

function newId (prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`
}

function countWords (text: string): number {
  return text.split(/\s+/).filter((w) => w !== '').length
}

/** Text of a chat message content: a string, or an array of parts of which the text parts count. */
function contentText (content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content.map((part) => (typeof part === 'object' && part !== null && typeof (part as Json).text === 'string') ? (part as Json).text as string : '').join(' ')
}

/** JSON for a header value: non-ASCII escaped (header values must be Latin-1 and we want them
 * lossless), and cut to keys only when too big for clients' default 16 KiB header limit. */
function paramsHeader (params: Json): string {
  const escape = (s: string): string => s.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  const full = escape(JSON.stringify(params))
  return full.length <= 8000 ? full : escape(JSON.stringify({ _truncated: true, keys: Object.keys(params) }))
}

function without (body: Json, key: string): Json {
  const rest = { ...body }
  delete rest[key]
  return rest
}

function sendJson (res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

// ---------------------------------------------------------------------------------------------------
// PNG: a real, tiny image (2×2 RGB) so clients can check the signature and decode it.

// CRC-32 as PNG needs it (zlib.crc32 only exists from Node 20.15).
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

function crc32 (data: Buffer): number {
  let c = 0xffffffff
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function pngChunk (type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(typeAndData))
  return Buffer.concat([length, typeAndData, crc])
}

export function makePng (seed: string, size = 2): Buffer {
  const [r, g, b] = createHash('sha256').update(seed).digest()
  const header = Buffer.alloc(13)
  header.writeUInt32BE(size, 0)
  header.writeUInt32BE(size, 4)
  header[8] = 8 // bit depth
  header[9] = 2 // colour type: RGB
  const row = Buffer.from([0, ...Array.from({ length: size }, () => [r, g, b]).flat()]) // filter byte 0, then pixels
  const pixels = Buffer.concat(Array.from({ length: size }, () => row))
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(pixels)),
    pngChunk('IEND', Buffer.alloc(0))
  ])
}

// ---------------------------------------------------------------------------------------------------
// Embeddings: deterministic unit vectors of length 8 from a hash of the text.

export function fakeEmbedding (text: string): number[] {
  const digest = createHash('sha256').update(text).digest()
  const raw = Array.from({ length: 8 }, (_, i) => digest.readUInt32BE(i * 4) / 0xffffffff * 2 - 1)
  const norm = Math.hypot(...raw) || 1
  return raw.map((x) => x / norm)
}

// ---------------------------------------------------------------------------------------------------
// Request bodies

/** Yields the request body while keeping its first 64 KiB in the request's record. */
async function * recorded (req: http.IncomingMessage, record: RecordedRequest): AsyncGenerator<Buffer> {
  const kept: Buffer[] = []
  let keptBytes = 0
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      if (keptBytes < RECORD_LIMIT) {
        const part = chunk.subarray(0, RECORD_LIMIT - keptBytes)
        kept.push(Buffer.from(part))
        keptBytes += part.length
      }
      yield chunk
    }
  } finally {
    record.body = Buffer.concat(kept)
  }
}

/** Reads the whole body (up to `limit`); always drains the stream so the connection stays usable. */
async function readAll (body: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size <= limit) chunks.push(chunk)
  }
  if (size > limit) throw new HttpError(413, `request body is larger than ${limit} bytes`)
  return Buffer.concat(chunks)
}

async function readJson (body: AsyncIterable<Buffer>): Promise<Json> {
  const text = (await readAll(body, JSON_LIMIT)).toString('utf8')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new HttpError(400, `We could not parse the JSON body of your request. (${(err as Error).message})`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'The request body must be a JSON object.')
  }
  return value as Json
}

interface PartInfo { name: string, filename?: string, contentType?: string }

function parsePartHeaders (block: string): PartInfo {
  const info: PartInfo = { name: '' }
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const key = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (key === 'content-type') info.contentType = value
    if (key === 'content-disposition') {
      info.name = /\bname="([^"]*)"/i.exec(value)?.[1] ?? /\bname=([^;\s]+)/i.exec(value)?.[1] ?? ''
      const filename = /\bfilename="([^"]*)"/i.exec(value)?.[1] ?? /\bfilename=([^;\s]+)/i.exec(value)?.[1]
      if (filename !== undefined) info.filename = filename
    }
  }
  return info
}

interface MultipartHandlers {
  onPart: (part: PartInfo) => void
  onData: (part: PartInfo, data: Buffer) => void
}

/** A push parser for multipart/form-data. Only a delimiter's worth of bytes is held back between
 * chunks, so file parts are never buffered whole. */
class MultipartParser {
  private readonly delimiter: Buffer
  // Starting with CRLF lets the first boundary match the same delimiter as the others.
  private buf: Buffer = Buffer.from('\r\n')
  private state: 'preamble' | 'after-delimiter' | 'headers' | 'body' | 'done' = 'preamble'
  private part: PartInfo = { name: '' }

  constructor (boundary: string, private readonly handlers: MultipartHandlers) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`)
  }

  write (chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    while (this.step()) { /* until no progress without more input */ }
  }

  end (): void {
    if (this.state !== 'done') throw new HttpError(400, 'malformed multipart body: it ends before the closing boundary')
  }

  /** Advances as far as the buffered bytes allow; returns whether it did. */
  private step (): boolean {
    const { buf, delimiter } = this
    switch (this.state) {
      case 'preamble':
      case 'body': {
        const at = buf.indexOf(delimiter)
        if (at < 0) {
          // Keep the tail that could be the start of a delimiter split across chunks.
          const safe = Math.max(0, buf.length - (delimiter.length - 1))
          if (this.state === 'body' && safe > 0) this.handlers.onData(this.part, buf.subarray(0, safe))
          this.buf = buf.subarray(safe)
          return false
        }
        if (this.state === 'body' && at > 0) this.handlers.onData(this.part, buf.subarray(0, at))
        this.buf = buf.subarray(at + delimiter.length)
        this.state = 'after-delimiter'
        return true
      }
      case 'after-delimiter': {
        if (buf.length >= 2 && buf[0] === 0x2d && buf[1] === 0x2d) { // "--": the closing boundary
          this.state = 'done'
          return true
        }
        const eol = buf.indexOf('\r\n') // after optional transport padding
        if (eol < 0) {
          if (buf.length > 1024) throw new HttpError(400, 'malformed multipart body: bad boundary line')
          return false
        }
        this.buf = buf.subarray(eol + 2)
        this.state = 'headers'
        return true
      }
      case 'headers': {
        const end = buf.subarray(0, 2).toString('latin1') === '\r\n' ? 0 : buf.indexOf('\r\n\r\n')
        if (end < 0) {
          if (buf.length > 16 * 1024) throw new HttpError(400, 'malformed multipart body: part headers too large')
          return false
        }
        this.part = parsePartHeaders(buf.subarray(0, end).toString('utf8'))
        this.buf = buf.subarray(end === 0 ? 2 : end + 4)
        this.handlers.onPart(this.part)
        this.state = 'body'
        return true
      }
      case 'done':
        this.buf = Buffer.alloc(0) // the epilogue is ignored
        return false
    }
  }
}

/** Parses a multipart/form-data body. On an error the rest of the body is still read (and discarded):
 * abandoning the iteration would destroy the request, and with it the socket the answer must use. */
export async function parseMultipart (body: AsyncIterable<Buffer>, boundary: string, handlers: MultipartHandlers): Promise<void> {
  const parser = new MultipartParser(boundary, handlers)
  let failure: unknown
  for await (const chunk of body) {
    if (failure !== undefined) continue
    try {
      parser.write(chunk)
    } catch (err) {
      failure = err
    }
  }
  if (failure !== undefined) throw failure
  parser.end()
}

// ---------------------------------------------------------------------------------------------------
// The server

export async function startFakeModelServer (options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
  const host = options.host ?? '127.0.0.1'
  const defaultModel = options.model ?? 'fake-model'
  const tokens = options.tokens ?? DEFAULT_TOKENS
  const tokenDelayMs = options.tokenDelayMs ?? 0
  const requests: RecordedRequest[] = []
  let abortedStreams = 0
  const files = new Map<string, Buffer>()
  let baseUrl = ''

  const modelOf = (body: Json): string => typeof body.model === 'string' ? body.model : defaultModel

  /** Sends server-sent events; stops early (without throwing) if the client goes away. */
  async function streamEvents (res: http.ServerResponse, headers: http.OutgoingHttpHeaders, events: Iterable<{ data: unknown, delay: boolean }>): Promise<void> {
    const gone = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) abortedStreams++
      gone.abort()
    })
    res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.flushHeaders()
    try {
      let token = 0
      for (const event of events) {
        if (event.delay && tokenDelayMs > 0) await sleep(tokenDelayMs, undefined, { signal: gone.signal })
        if (event.delay && options.beforeToken !== undefined) await options.beforeToken(token++, gone.signal)
        if (gone.signal.aborted) return
        res.write(`data: ${typeof event.data === 'string' ? event.data : JSON.stringify(event.data)}\n\n`)
      }
      res.end()
    } catch (err) {
      if (!gone.signal.aborted) throw err
    }
  }

  async function chat (body: Json, res: http.ServerResponse): Promise<void> {
    if (!Array.isArray(body.messages)) throw new HttpError(400, "'messages' is a required property and must be an array")
    const promptTokens = body.messages.reduce<number>((n, m) => n + countWords(contentText((m as Json | null)?.content)), 0)
    const usage = { prompt_tokens: promptTokens, completion_tokens: tokens.length, total_tokens: promptTokens + tokens.length }
    const base = { id: newId('chatcmpl'), created: now(), model: modelOf(body) }
    const headers = { 'x-fake-params': paramsHeader(without(body, 'messages')) }
    if (body.stream !== true) {
      sendJson(res, 200, {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: tokens.join('') }, finish_reason: 'stop' }],
        usage
      }, headers)
      return
    }
    const chunk = (delta: Json, finish: string | null): Json => ({ id: base.id, object: 'chat.completion.chunk', created: base.created, model: base.model, choices: [{ index: 0, delta, finish_reason: finish }] })
    // As OpenAI does, usage (when asked for) comes in its own chunk with an empty `choices`.
    const usageChunk = (body.stream_options as Json | undefined)?.include_usage === true
      ? [{ data: { id: base.id, object: 'chat.completion.chunk', created: base.created, model: base.model, choices: [], usage }, delay: false }]
      : []
    await streamEvents(res, headers, [
      { data: chunk({ role: 'assistant', content: '' }, null), delay: false },
      ...tokens.map((token) => ({ data: chunk({ content: token }, null), delay: true })),
      { data: chunk({}, 'stop'), delay: false },
      ...usageChunk,
      { data: '[DONE]', delay: false }
    ])
  }

  async function completions (body: Json, res: http.ServerResponse): Promise<void> {
    const prompt = body.prompt ?? ''
    if (typeof prompt !== 'string' && !(Array.isArray(prompt) && prompt.every((p) => typeof p === 'string'))) {
      throw new HttpError(400, "'prompt' must be a string or an array of strings")
    }
    const promptTokens = countWords(Array.isArray(prompt) ? prompt.join(' ') : prompt)
    const usage = { prompt_tokens: promptTokens, completion_tokens: tokens.length, total_tokens: promptTokens + tokens.length }
    const base = { id: newId('cmpl'), object: 'text_completion', created: now(), model: modelOf(body) }
    const headers = { 'x-fake-params': paramsHeader(without(body, 'prompt')) }
    const choice = (text: string, finish: string | null): Json => ({ text, index: 0, logprobs: null, finish_reason: finish })
    if (body.stream !== true) {
      sendJson(res, 200, { ...base, choices: [choice(tokens.join(''), 'stop')], usage }, headers)
      return
    }
    const usageChunk = (body.stream_options as Json | undefined)?.include_usage === true ? [{ data: { ...base, choices: [], usage }, delay: false }] : []
    await streamEvents(res, headers, [
      ...tokens.map((token) => ({ data: { ...base, choices: [choice(token, null)] }, delay: true })),
      { data: { ...base, choices: [choice('', 'stop')] }, delay: false },
      ...usageChunk,
      { data: '[DONE]', delay: false }
    ])
  }

  function embeddings (body: Json, res: http.ServerResponse): void {
    const input = body.input
    const texts = typeof input === 'string' ? [input] : Array.isArray(input) ? input : undefined
    if (texts === undefined || texts.length === 0) throw new HttpError(400, "'input' must be a string or a non-empty array")
    // Token-id inputs (arrays of numbers) are hashed by their JSON text: still deterministic.
    const strings = texts.map((t) => typeof t === 'string' ? t : JSON.stringify(t))
    const base64 = body.encoding_format === 'base64'
    const data = strings.map((text, index) => {
      const vector = fakeEmbedding(text)
      const embedding = base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector
      return { object: 'embedding', index, embedding }
    })
    const promptTokens = strings.reduce((n, t) => n + countWords(t), 0)
    sendJson(res, 200, { object: 'list', data, model: modelOf(body), usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } },
      { 'x-fake-params': paramsHeader(without(body, 'input')) })
  }

  /** n images as URLs served by this server, or inline base64. */
  function images (kind: string, prompt: string, n: number, format: string): Json[] {
    return Array.from({ length: n }, (_, i) => {
      const png = makePng(`${kind}:${prompt}#${i}`) // colour varies with the prompt and the index
      if (format === 'b64_json') return { b64_json: png.toString('base64'), revised_prompt: prompt }
      const name = `img-${randomBytes(8).toString('hex')}`
      files.set(name, png)
      return { url: `${baseUrl}/files/${name}.png`, revised_prompt: prompt }
    })
  }

  function imageCount (value: unknown): number {
    const n = value === undefined || value === null || value === '' ? 1 : Number(value)
    if (!Number.isInteger(n) || n < 1 || n > 10) throw new HttpError(400, "'n' must be an integer from 1 to 10")
    return n
  }

  function imageFormat (value: unknown, fallback: string): string {
    const format = value === undefined || value === null || value === '' ? fallback : value
    if (format !== 'url' && format !== 'b64_json') throw new HttpError(400, "'response_format' must be \"url\" or \"b64_json\"")
    return format
  }

  function generations (body: Json, res: http.ServerResponse): void {
    if (typeof body.prompt !== 'string' || body.prompt === '') throw new HttpError(400, "'prompt' is a required property")
    const data = images('generation', body.prompt, imageCount(body.n), imageFormat(body.response_format, 'url'))
    sendJson(res, 200, { created: now(), data }, { 'x-fake-params': paramsHeader(without(body, 'prompt')) })
  }

  async function edits (req: http.IncomingMessage, body: AsyncIterable<Buffer>, res: http.ServerResponse): Promise<void> {
    const type = req.headers['content-type'] ?? ''
    const boundary = /^multipart\/form-data\b.*?;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type)
    if (boundary === null) {
      await readAll(body, Infinity) // drain, so the error reaches the client on a healthy connection
      throw new HttpError(400, 'image edits need a multipart/form-data body with a boundary')
    }
    const fields: Json = {}
    const textParts = new Map<PartInfo, Buffer[]>()
    let receivedBytes = 0
    let imageParts = 0
    const isImage = (p: PartInfo): boolean => p.name === 'image' || p.name === 'image[]'
    await parseMultipart(body, boundary[1] ?? boundary[2], {
      onPart: (part) => {
        if (isImage(part)) imageParts++
        else if (part.filename !== undefined) fields[part.name] = { filename: part.filename, content_type: part.contentType ?? null, bytes: 0 }
        else textParts.set(part, [])
      },
      onData: (part, data) => {
        if (isImage(part)) receivedBytes += data.length
        else if (part.filename !== undefined) (fields[part.name] as { bytes: number }).bytes += data.length
        else {
          const pieces = textParts.get(part)
          const size = pieces?.reduce((n, b) => n + b.length, 0) ?? 0
          if (pieces !== undefined && size < FIELD_LIMIT) pieces.push(Buffer.from(data.subarray(0, FIELD_LIMIT - size)))
        }
      }
    })
    for (const [part, pieces] of textParts) fields[part.name] = Buffer.concat(pieces).toString('utf8')
    if (imageParts === 0) throw new HttpError(400, "'image' is a required property")
    const prompt = typeof fields.prompt === 'string' ? fields.prompt : ''
    const data = images('edit', prompt, imageCount(fields.n), imageFormat(fields.response_format, 'b64_json'))
    sendJson(res, 200, { created: now(), data, received_bytes: receivedBytes }, { 'x-fake-params': paramsHeader(fields) })
  }

  async function handle (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const path = new URL(req.url ?? '/', 'http://fake').pathname
    const record: RecordedRequest = { method, path, headers: { ...req.headers }, body: Buffer.alloc(0) }
    requests.push(record)
    const body = recorded(req, record)
    if ((options.responseDelayMs ?? 0) > 0) await sleep(options.responseDelayMs)

    if (options.failWith !== undefined) {
      await readAll(body, Infinity)
      const { status, body: failBody } = options.failWith
      if (typeof failBody === 'string') {
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(failBody)
      } else {
        sendJson(res, status, failBody ?? openAiError('The fake model server was told to fail.', 'server_error'))
      }
      return
    }

    const route = `${method} ${path}`
    switch (route) {
      case 'POST /v1/chat/completions': return await chat(await readJson(body), res)
      case 'POST /v1/completions': return await completions(await readJson(body), res)
      case 'POST /v1/embeddings': return embeddings(await readJson(body), res)
      case 'POST /v1/images/generations': return generations(await readJson(body), res)
      case 'POST /v1/images/edits': return await edits(req, body, res)
      case 'GET /v1/models':
        await readAll(body, Infinity)
        return sendJson(res, 200, { object: 'list', data: [{ id: defaultModel, object: 'model', created: 0, owned_by: 'fake' }] })
    }
    await readAll(body, Infinity)
    const file = /^\/files\/([A-Za-z0-9-]+)\.png$/.exec(path)
    const png = file !== null && method === 'GET' ? files.get(file[1]) : undefined
    if (png !== undefined) {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png)
      return
    }
    sendJson(res, 404, openAiError(`Unknown request URL: ${method} ${path}.`, 'invalid_request_error', 'unknown_url'))
  }

  const server = http.createServer({ noDelay: true }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy()
        return
      }
      if (err instanceof HttpError) sendJson(res, err.status, openAiError(err.message, err.type))
      else if (!req.destroyed) sendJson(res, 500, openAiError(err instanceof Error ? err.message : String(err), 'server_error'))
    })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as import('node:net').AddressInfo).port
  // A wildcard listener is reached through loopback; an IPv6 literal needs brackets in a URL.
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host
  baseUrl = `http://${urlHost}:${port}`

  return {
    url: baseUrl,
    port,
    requests,
    get abortedStreams () { return abortedStreams },
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => { resolve() })
        // Streams and keep-alive connections would otherwise hold close() open.
        server.closeAllConnections()
      })
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// CLI


async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string' },
      model: { type: 'string' },
      reply: { type: 'string' },
      'token-delay': { type: 'string', default: '0' },
      'fail-status': { type: 'string' }
    }
  })
  const server = await startFakeModelServer({
    port: Number(values.port),
    host: values.host,
    model: values.model,
    // Split before whitespace so that the tokens join back to exactly the reply.
    tokens: values.reply?.split(/(?=\s)/),
    tokenDelayMs: Number(values['token-delay']),
    failWith: values['fail-status'] !== undefined ? { status: Number(values['fail-status']) } : undefined
  })
  process.stdout.write(`${server.url}\n`)
  const shutdown = (): void => { void server.close().then(() => process.exit(0)) }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

if (isMainModule(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`fake-model: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
