// /v1/images/edits uploads: parsed only until the model field, held within the limit, passed on whole.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import { openUpload } from '../../../src/jobs/upload.ts'
import { collect } from '../../helpers/jobs.ts'

const BOUNDARY = 'b0und'
const TYPE = `multipart/form-data; boundary=${BOUNDARY}`

function part (name: string, value: string | Buffer, filename?: string): Buffer {
  const disposition = filename === undefined ? `form-data; name="${name}"` : `form-data; name="${name}"; filename="${filename}"\r\nContent-Type: image/png`
  return Buffer.concat([Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n\r\n`), Buffer.from(value), Buffer.from('\r\n')])
}

function form (...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts, Buffer.from(`--${BOUNDARY}--\r\n`)])
}

/** A request that yields `body` in `chunk`-byte pieces and counts how many it handed out. */
function request (body: Buffer, chunk = 1024, headers: Record<string, string> = {}): IncomingMessage & { pulled: () => number } {
  let pulled = 0
  const pieces = function * (): Generator<Buffer> {
    for (let i = 0; i < body.length; i += chunk) { pulled++; yield body.subarray(i, i + chunk) }
  }
  return Object.assign(Readable.from(pieces(), { objectMode: false }), { headers, pulled: () => pulled }) as any
}

describe('openUpload', () => {
  it('finds the model sent first without reading the file, then passes the whole body on', async () => {
    const body = form(part('model', 'editor'), part('prompt', 'blue'), part('image', Buffer.alloc(200_000, 3), 'a.png'))
    const req = request(body)
    const upload = await openUpload(req, TYPE, undefined)
    assert.equal(upload.model, 'editor')
    assert.ok(req.pulled() < 5, `read ${req.pulled()} chunks before the model was known`)
    assert.deepEqual(await collect(upload.body), body)
  })

  it('finds a model sent after the file, and holds what it read', async () => {
    const body = form(part('image', Buffer.alloc(50_000, 4), 'a.png'), part('model', 'late-editor'))
    const upload = await openUpload(request(body), TYPE, undefined)
    assert.equal(upload.model, 'late-editor')
    assert.deepEqual(await collect(upload.body), body)
  })

  it('takes ?model= without parsing, and reports no model when the form has none', async () => {
    const body = form(part('prompt', 'x'))
    assert.equal((await openUpload(request(body), TYPE, 'from-query')).model, 'from-query')
    const none = await openUpload(request(body), TYPE, undefined)
    assert.equal(none.model, undefined)
    assert.deepEqual(await collect(none.body), body)
  })

  it('refuses non-multipart bodies and sizes over the limit, announced or actual; garbage has no model', async () => {
    await assert.rejects(openUpload(request(Buffer.from('{}')), 'application/json', undefined), (err: any) => err.status === 400)
    await assert.rejects(openUpload(request(Buffer.alloc(10), 1024, { 'content-length': '999999' }), TYPE, undefined, 1000), (err: any) => err.status === 413)
    const big = form(part('image', Buffer.alloc(5000), 'a.png'), part('model', 'm'))
    await assert.rejects(openUpload(request(big), TYPE, undefined, 4000), (err: any) => err.status === 413 && err.code === 1008)
    const small = await openUpload(request(form(part('model', 'm'), part('image', Buffer.alloc(5000), 'a.png'))), TYPE, undefined, 4000)
    await assert.rejects(collect(small.body), (err: any) => err.status === 413, 'the rest is bounded too')
    await assert.rejects(openUpload(request(form(part('model', 'm'))), 'multipart/form-data; boundary=x y', undefined), (err: any) => err.status === 400 && err.code === 1001)
    // Garbage is not a form with a model: the gateway then answers 400 "you must provide a model parameter".
    assert.equal((await openUpload(request(Buffer.from('--other\r\ngarbage')), TYPE, undefined)).model, undefined)
  })
})
