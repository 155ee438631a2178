// The console's static files (src/api/console.ts) behind a real HttpServer: only the files read at start
// are served, with their types and the security headers; routes win over files; other listeners and
// methods are refused; a folder without index.html is no console.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { consoleMiddleware, loadConsoleFiles, CONSOLE_CSP } from '../../../src/api/console.ts'
import { HttpServer, ok } from '../../../src/api/index.ts'

describe('the console\'s static files', () => {
  let dir: string
  let server: HttpServer
  let url: string
  let otherUrl: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aicn-console-'))
    await mkdir(join(dir, 'panels'))
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>console</title>')
    await writeFile(join(dir, 'main.js'), 'export {}')
    await writeFile(join(dir, 'main.js.map'), '{}')
    await writeFile(join(dir, 'panels', 'chat.js'), 'export const chat = 1')
    await writeFile(join(dir, '.secret.js'), 'no')
    await writeFile(join(dir, 'notes.txt'), 'no')
    const files = await loadConsoleFiles(dir)
    assert.ok(files !== undefined)
    let consolePort: number | undefined
    server = new HttpServer({
      routes: [{ path: '/api/v0/id', methods: ['GET'], handler: async () => ok('route') }],
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      fallback: consoleMiddleware(files, { servesPort: (port) => port === consolePort })
    })
    const web = await server.listen('127.0.0.1:0')
    consolePort = web.port
    url = web.url
    otherUrl = (await server.listen('127.0.0.1:0')).url
  })

  after(async () => {
    await server?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('serves index.html at / and the modules with their types and the security headers', async () => {
    const index = await fetch(`${url}/`)
    assert.equal(index.status, 200)
    assert.equal(await index.text(), '<!doctype html><title>console</title>')
    assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8')
    assert.equal(index.headers.get('content-security-policy'), CONSOLE_CSP)
    assert.equal(index.headers.get('x-frame-options'), 'DENY')
    const chat = await fetch(`${url}/panels/chat.js`)
    assert.equal(chat.headers.get('content-type'), 'text/javascript; charset=utf-8')
    assert.equal(await chat.text(), 'export const chat = 1')
  })

  it('serves nothing it did not read at start: source maps, dotfiles, other types, traversal', async () => {
    await writeFile(join(dir, 'late.js'), 'written after start')
    for (const path of ['/main.js.map', '/.secret.js', '/notes.txt', '/late.js', '/panels/', '/panels', '/panels/../main.js.map', '/%2e%2e/%2e%2e/etc/passwd', '/index.html/']) {
      const answer = await fetch(`${url}${path}`)
      assert.equal(answer.status, 404, path)
      assert.equal(answer.headers.get('content-type'), 'application/json; charset=utf-8', path)
    }
  })

  it('routes come first; other methods get 405; other listeners get no files', async () => {
    assert.deepEqual(await (await fetch(`${url}/api/v0/id`)).json(), { code: 0, message: 'ok', data: 'route' })
    const post = await fetch(`${url}/main.js`, { method: 'POST' })
    assert.equal(post.status, 405)
    assert.equal(post.headers.get('allow'), 'GET, HEAD')
    assert.equal((await fetch(`${otherUrl}/`)).status, 404)
    assert.equal((await fetch(`${otherUrl}/api/v0/id`)).status, 200)
  })

  it('a folder without index.html is no console', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'aicn-console-'))
    try {
      await writeFile(join(empty, 'main.js'), '')
      assert.equal(await loadConsoleFiles(empty), undefined)
      assert.equal(await loadConsoleFiles(join(empty, 'missing')), undefined)
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
  })
})
