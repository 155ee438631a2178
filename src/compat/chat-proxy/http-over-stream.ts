// HTTP/1.1 message framing on a libp2p stream, for the Go node's `/chat-proxy/0.0.1` tunnel (docs/protocols.md):
// a reader that pulls bytes with backpressure, head parsing under a size limit, the body framings
// (Content-Length, chunked, until EOF) and encoders for what we write.
//
// Written by hand rather than by feeding the stream to node:http: Node's server and client add headers
// of their own (Date, Connection, Keep-Alive) that a Go requester copies to its HTTP client, and cannot
// write a request byte for byte the way Go's Request.Write does. One message each way per stream keeps
// this small.
import type { Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { StreamInbox, type HeldBytes } from '../../p2p/stream-inbox.ts'

/** The peer broke the HTTP/1.1 syntax (or a limit): there is nothing sensible to answer, the stream is
 * aborted. */
export class HttpError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'HttpError'
  }
}

const KiB = 1024
const MiB = 1024 * KiB
/** A chunk-size line with its extensions; Go's own limit is 4 KiB too. */
const MAX_CHUNK_LINE_BYTES = 4 * KiB
const CRLF = Buffer.from('\r\n')
const HEAD_END = Buffer.from('\r\n\r\n')
export const LAST_CHUNK = Buffer.from('0\r\n\r\n')

// ---- reading

/** Reads bytes from a stream in order, pausing it while more than `highWaterBytes` wait to be read. */
export class StreamReader extends StreamInbox {
  private buffers: Uint8Array[] = []
  private bufferedBytes = 0
  private receivedBytes = 0

  constructor (stream: Stream, highWaterBytes = MiB, budget?: HeldBytes) {
    super(stream, highWaterBytes, budget)
  }

  /** The bytes up to and including the empty line that ends a head; null if the stream ended before
   * its first byte. */
  async readHead (maxBytes: number): Promise<Buffer | null> {
    return await this.readUntil(HEAD_END, maxBytes, 'head')
  }

  /** One line without its CRLF; throws at EOF. */
  async readLine (maxBytes: number, what: string): Promise<Buffer> {
    const line = await this.readUntil(CRLF, maxBytes, what)
    if (line === null) throw new HttpError(`the stream ended before the ${what}`)
    return line.subarray(0, line.byteLength - CRLF.byteLength)
  }

  /** Whatever is buffered, at most `maxBytes` (at least one byte); null at EOF. */
  async readSome (maxBytes: number): Promise<Uint8Array | null> {
    while (this.bufferedBytes === 0) {
      if (!await this.more()) return null
    }
    const first = this.buffers[0]
    return this.take(Math.min(first.byteLength, maxBytes))
  }

  /** Stops reading but lets the peer finish sending (what it sends is dropped), so that a peer that writes
   * its whole request before reading, as Go does, gets to read our early answer. */
  discard (): void {
    this.dispose()
    if (this.stream.readStatus === 'paused') this.stream.resume()
    this.stream.closeRead().catch(() => {})
  }

  private async readUntil (delimiter: Buffer, maxBytes: number, what: string): Promise<Buffer | null> {
    // The usual case: the whole head (or line) came in one piece.
    if (this.buffers.length > 0) {
      const index = asBuffer(this.buffers[0]).subarray(0, maxBytes).indexOf(delimiter)
      if (index !== -1) return asBuffer(this.take(index + delimiter.byteLength))
    }
    // Otherwise collect pieces into one growing buffer and search only what is new each time, so that a
    // peer sending a byte at a time costs linear work, not quadratic.
    let collected = Buffer.alloc(0)
    let length = 0
    for (;;) {
      while (this.buffers.length > 0 && length < maxBytes) {
        const piece = this.take(Math.min(this.buffers[0].byteLength, maxBytes - length))
        if (collected.byteLength < length + piece.byteLength) {
          const grown = Buffer.allocUnsafe(Math.min(maxBytes, Math.max(2 * collected.byteLength, length + piece.byteLength, 1024)))
          collected.copy(grown, 0, 0, length)
          collected = grown
        }
        collected.set(piece, length)
        const from = Math.max(0, length - delimiter.byteLength + 1)
        length += piece.byteLength
        const index = collected.subarray(0, length).indexOf(delimiter, from)
        if (index !== -1) {
          const end = index + delimiter.byteLength
          // Bytes after the delimiter belong to what comes next.
          if (end < length) this.unshift(collected.subarray(end, length))
          return collected.subarray(0, end)
        }
      }
      if (length >= maxBytes) throw new HttpError(`the ${what} exceeds ${maxBytes} bytes`)
      if (!await this.more()) {
        if (length === 0) return null
        throw new HttpError(`the stream ended inside the ${what}`)
      }
    }
  }

  /** Waits for more bytes: true when some arrived, false at EOF; throws if the stream failed. */
  private async more (): Promise<boolean> {
    const before = this.receivedBytes
    for (;;) {
      if (this.receivedBytes > before) return true
      if (this.failure !== undefined) throw this.failure
      if (this.ended) return false
      await this.waitForMore()
    }
  }

  /** Removes `length` bytes (at most the first buffer's) from the front, as a view. */
  private take (length: number): Uint8Array {
    const first = this.buffers[0]
    const out = first.subarray(0, length)
    if (first.byteLength === length) this.buffers.shift()
    else this.buffers[0] = first.subarray(length)
    this.bufferedBytes -= length
    this.consumed()
    return out
  }

  private unshift (bytes: Uint8Array): void {
    this.buffers.unshift(bytes)
    this.bufferedBytes += bytes.byteLength
  }

  protected receive (data: Uint8Array | Uint8ArrayList): void {
    if (data instanceof Uint8Array) this.append(data)
    else for (const buf of data) this.append(buf)
  }

  protected get waitingBytes (): number {
    return this.bufferedBytes
  }

  protected forget (): void {
    this.buffers = []
    this.bufferedBytes = 0
  }

  private append (buf: Uint8Array): void {
    if (buf.byteLength === 0) return
    this.buffers.push(buf)
    this.bufferedBytes += buf.byteLength
    this.receivedBytes += buf.byteLength
  }
}

function asBuffer (bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

// ---- heads

export type Headers = Array<[name: string, value: string]>

export interface RequestHead { method: string, target: string, /** 0 or 1 of HTTP/1.x */ minor: number, headers: Headers }
export interface ResponseHead { status: number, reason: string, minor: number, headers: Headers }

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Control characters other than tab are not allowed in a field value (RFC 9110 §5.5).
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\s]+) HTTP\/1\.([01])$/
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?$/

export function parseRequestHead (bytes: Uint8Array): RequestHead {
  const [first, headers] = splitHead(bytes)
  const match = REQUEST_LINE.exec(first)
  if (match === null) throw new HttpError(`not an HTTP/1.x request line: ${JSON.stringify(first.slice(0, 80))}`)
  return { method: match[1], target: match[2], minor: Number(match[3]), headers }
}

export function parseResponseHead (bytes: Uint8Array): ResponseHead {
  const [first, headers] = splitHead(bytes)
  const match = STATUS_LINE.exec(first)
  if (match === null) throw new HttpError(`not an HTTP/1.x status line: ${JSON.stringify(first.slice(0, 80))}`)
  return { status: Number(match[2]), reason: match[3] ?? '', minor: Number(match[1]), headers }
}

/** Start line and header fields of a head that ends in CRLF CRLF. Folded lines, bare CR or LF, and
 * malformed fields are refused rather than guessed at (they are how requests get smuggled). */
function splitHead (bytes: Uint8Array): [string, Headers] {
  const text = asBuffer(bytes).toString('utf8')
  const lines = text.slice(0, text.length - HEAD_END.length).split('\r\n')
  const first = lines[0]
  const headers: Headers = []
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    const name = colon > 0 ? line.slice(0, colon) : ''
    if (!TOKEN.test(name)) throw new HttpError(`malformed header line: ${JSON.stringify(line.slice(0, 80))}`)
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (BAD_VALUE.test(value)) throw new HttpError(`control character in header ${name}`)
    headers.push([name, value])
  }
  return [first, headers]
}

/** Every value of a header (case-insensitive name), in order. */
export function headerValues (headers: Headers, name: string): string[] {
  const lower = name.toLowerCase()
  return headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v)
}

export function header (headers: Headers, name: string): string | undefined {
  return headerValues(headers, name)[0]
}

// ---- body framing (RFC 9112 §6)

export type BodyFraming = { kind: 'none' } | { kind: 'length', length: number } | { kind: 'chunked' } | { kind: 'eof' }

export function requestFraming (head: RequestHead): BodyFraming {
  const codings = transferCodings(head.headers)
  const length = contentLength(head.headers)
  if (codings !== undefined) {
    // Both at once is the classic smuggling shape; a request has no excuse for it.
    if (length !== undefined) throw new HttpError('a request with both Transfer-Encoding and Content-Length')
    if (codings.length === 1 && codings[0] === 'chunked') return { kind: 'chunked' }
    throw new HttpError(`unsupported request Transfer-Encoding "${codings.join(', ')}"`)
  }
  if (length === undefined || length === 0) return { kind: 'none' }
  return { kind: 'length', length }
}

export function responseFraming (head: ResponseHead): BodyFraming {
  if (!bodyAllowed(head.status)) return { kind: 'none' }
  const codings = transferCodings(head.headers)
  if (codings !== undefined) return codings[codings.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'eof' }
  const length = contentLength(head.headers)
  if (length === undefined) return { kind: 'eof' }
  return length === 0 ? { kind: 'none' } : { kind: 'length', length }
}

/** 1xx, 204 and 304 answers never have a body. */
export function bodyAllowed (status: number): boolean {
  return status >= 200 && status !== 204 && status !== 304
}

function transferCodings (headers: Headers): string[] | undefined {
  const values = headerValues(headers, 'transfer-encoding')
  if (values.length === 0) return undefined
  const codings = values.join(',').split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '')
  if (codings.length === 0) throw new HttpError('an empty Transfer-Encoding')
  return codings
}

function contentLength (headers: Headers): number | undefined {
  const values = headerValues(headers, 'content-length').flatMap((v) => v.split(',')).map((v) => v.trim())
  if (values.length === 0) return undefined
  if (values.some((v) => !/^\d{1,15}$/.test(v)) || values.some((v) => Number(v) !== Number(values[0]))) {
    throw new HttpError(`invalid Content-Length "${values.join(', ')}"`)
  }
  return Number(values[0])
}

/** The body as it arrives, in pieces of at most what the peer sent at once; a chunked body never merges
 * two chunks into one piece, so a server-sent event that the peer sent as a chunk stays whole. */
export async function * readBody (reader: StreamReader, framing: BodyFraming, maxTrailerBytes: number): AsyncGenerator<Uint8Array> {
  switch (framing.kind) {
    case 'none':
      return
    case 'length':
      yield * readExactly(reader, framing.length)
      return
    case 'eof':
      for (;;) {
        const piece = await reader.readSome(Number.MAX_SAFE_INTEGER)
        if (piece === null) return
        yield piece
      }
    case 'chunked':
      for (;;) {
        const size = parseChunkSize(await reader.readLine(MAX_CHUNK_LINE_BYTES, 'chunk size line'))
        if (size === 0) break
        yield * readExactly(reader, size)
        const end = await reader.readLine(CRLF.byteLength, 'end of a chunk')
        if (end.byteLength !== 0) throw new HttpError('a chunk longer than its size')
      }
      // Trailer fields: nothing we use, read up to the empty line.
      for (let trailer = 0; ;) {
        const line = await reader.readLine(maxTrailerBytes - trailer, 'trailer')
        if (line.byteLength === 0) return
        trailer += line.byteLength + CRLF.byteLength
      }
  }
}

async function * readExactly (reader: StreamReader, length: number): AsyncGenerator<Uint8Array> {
  for (let remaining = length; remaining > 0;) {
    const piece = await reader.readSome(remaining)
    if (piece === null) throw new HttpError(`the body ended after ${length - remaining} of ${length} bytes`)
    remaining -= piece.byteLength
    yield piece
  }
}

function parseChunkSize (line: Buffer): number {
  const text = line.toString('latin1')
  const size = text.split(';')[0].replace(/[ \t]+$/, '')
  if (!/^[0-9a-fA-F]{1,12}$/.test(size)) throw new HttpError(`invalid chunk size line ${JSON.stringify(text.slice(0, 40))}`)
  return parseInt(size, 16)
}

// ---- writing

/** A head: start line, fields in the given order, empty line. A CR or LF in any part is refused (header
 * injection). */
export function encodeHead (startLine: string, headers: Headers): Buffer {
  const lines = [startLine, ...headers.map(([name, value]) => `${name}: ${value}`)]
  if (lines.some((line) => /[\r\n\0]/.test(line))) throw new Error('CR, LF or NUL in an HTTP head')
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8')
}

/** One chunk of a chunked body; an empty chunk would end the body, so callers skip empty data. */
export function encodeChunk (data: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${data.byteLength.toString(16)}\r\n`, 'latin1'), data, CRLF])
}
