// The web console in a real browser (Debian's chromium driven by playwright-core) against a real network
// of three daemons on 127.0.0.1 with fake models: the page shows the nodes and the models, a chat streams
// in several steps, a key is created, topped up and revoked, a node's host opens, and the page logs no
// errors. Plus the static serving rules (CSP, types, methods, traversal) checked over plain HTTP.
// AICN_SCREENSHOTS_DIR=docs saves the screenshots the README shows (npm run screenshots).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startFakeModelServer, type FakeModelServer } from '../../scripts/fake-model.ts'
import { REPO_ROOT, TestNode, waitFor } from './harness.ts'

// Functions passed to page.evaluate/waitForFunction run in the browser (strings would be eval, which the
// console's CSP forbids); this file is compiled without the DOM library, hence these two declarations.
declare const document: any
declare const window: any

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const PSK = 'ce'.repeat(32)
const TOKENS = ['The', ' network', ' answers', ' one', ' token', ' at', ' a', ' time', '.']
const WAIT_MS = 20_000
/** A model name is whatever a node announces: it must reach the page as text. */
const HOSTILE = '<img src=x onerror="window.pwned=1">'

// Without chromium the test cannot run; in CI that is a failure, elsewhere a skip that says why.
const missing = existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`
if (missing !== false && process.env.CI !== undefined && process.env.CI !== '') throw new Error(`${missing} — CI must run the browser test`)

async function statusOf (url: string, headers: Record<string, string>): Promise<number> {
  return await new Promise((resolve, reject) => {
    get(url, { headers }, (res) => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject)
  })
}

describe('the web console in a real browser', { skip: missing }, () => {
  let b: TestNode
  let w1: TestNode
  let w2: TestNode
  let fast: FakeModelServer
  let slow: FakeModelServer
  let browser: Browser
  let page: Page
  let shots: string
  let ownShots = false
  const problems: string[] = []

  const shot = async (name: string): Promise<void> => { await page.screenshot({ path: join(shots, `console-${name}.png`) }) }
  const open = async (view: string): Promise<void> => {
    await page.click(`#nav-${view}`)
    await page.waitForSelector(`#view-${view}:not([hidden])`, { timeout: WAIT_MS })
  }

  before(async () => {
    fast = await startFakeModelServer({ tokens: TOKENS })
    // Tokens 40 ms apart: the reply must reach the page in several steps, not at once.
    slow = await startFakeModelServer({ tokens: TOKENS, tokenDelayMs: 40 })
    b = await TestNode.start({ mode: 'input', psk: PSK })
    const addr = await b.addr()
    ;[w1, w2] = await Promise.all([TestNode.start({ psk: PSK, bootstrap: [addr] }), TestNode.start({ psk: PSK, bootstrap: [addr] })])
    for (const [w, model] of [[w1, slow], [w2, slow]] as const) {
      const register = await w.call('/api/v0/ai/project/register', {
        project: 'Console',
        models: [
          { model: 'console-chat', api: `${model.url}/v1/chat/completions`, type: 0 },
          ...(w === w2 ? [{ model: 'console-embed', api: `${fast.url}/v1/embeddings`, type: 3 }, { model: HOSTILE, api: `${fast.url}/v1/embeddings`, type: 3 }] : [])
        ]
      })
      assert.equal(register.body.code, 0, JSON.stringify(register.body))
    }
    await waitFor(async () => {
      const peers = await b.call('/api/v0/ai/projects/peers', { project: 'Console', model: 'console-chat' })
      const embed = await b.call('/api/v0/ai/projects/peers', { project: 'Console', model: 'console-embed' })
      const hostile = await b.call('/api/v0/ai/projects/peers', { project: 'Console', model: HOSTILE })
      return peers.body.data?.length === 2 && embed.body.data?.length === 1 && hostile.body.data?.length === 1
    }, WAIT_MS, 'B to see both workers\' models')

    shots = process.env.AICN_SCREENSHOTS_DIR !== undefined ? resolve(REPO_ROOT, process.env.AICN_SCREENSHOTS_DIR) : await mkdtemp(join(tmpdir(), 'aicn-shots-'))
    ownShots = process.env.AICN_SCREENSHOTS_DIR === undefined
    await mkdir(shots, { recursive: true })
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 60_000 })
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } })
    page.on('console', (message) => { if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`) })
    page.on('pageerror', (err) => { problems.push(`page error: ${err.message}`) })
    page.on('requestfailed', (request) => { problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`) })
    await page.goto(`${b.web}/`)
  })

  after(async () => {
    await browser?.close()
    await Promise.all([b, w1, w2].filter((n) => n !== undefined).map(async (n) => { await n.destroy() }))
    await fast?.close()
    await slow?.close()
    if (ownShots) await rm(shots, { recursive: true, force: true })
  })

  test('the Node section shows this node: id, addresses, role, PSK', async () => {
    await page.waitForFunction((id) => document.querySelector('#view-node dl')?.textContent?.includes(id) === true, b.peerId, { timeout: WAIT_MS })
    const facts = await page.textContent('#view-node dl') ?? ''
    assert.match(facts, /input/)
    assert.match(facts, /Private network \(PSK\)on/)
    const addresses = await page.textContent('#view-node ul') ?? ''
    assert.match(addresses, /\/ip4\/127\.0\.0\.1\/tcp\/\d+/)
    assert.equal(await page.getAttribute('#nav-node', 'aria-current'), 'page')
    await shot('node')
  })

  test('the Network section lists the three nodes, draws them, and a node\'s host information opens', async () => {
    await open('network')
    await page.waitForFunction(() => document.querySelectorAll('#network-nodes tbody tr').length === 3 && document.querySelectorAll('.graph .node').length === 3, undefined, { timeout: WAIT_MS })
    const titles = await page.$$eval('#network-nodes tbody th', (cells) => cells.map((c) => c.getAttribute('title')))
    assert.deepEqual(new Set(titles), new Set([b.peerId, w1.peerId, w2.peerId]))
    const w2Row = await page.textContent(`#network-nodes tbody tr[data-key="${w2.peerId}"]`) ?? ''
    assert.match(w2Row, /Console\/console-chat/)
    assert.match(w2Row, /Console\/console-embed/)
    assert.equal(await page.locator('.graph line.link').count(), 2, 'B is connected to both workers')
    await shot('network')

    await page.click(`#network-nodes tbody tr[data-key="${w1.peerId}"] button`)
    await page.waitForSelector('#host-dialog[open] h3:text("CPUs")', { timeout: WAIT_MS })
    assert.match(await page.textContent('#host-title') ?? '', /Host of node/)
    await page.keyboard.press('Escape')
    await page.waitForSelector('#host-dialog:not([open])', { state: 'attached', timeout: WAIT_MS })
  })

  test('the Models section shows each model by project with the nodes that serve it', async () => {
    await open('models')
    await page.waitForSelector('#view-models tr[data-key="console-chat"] .servers button:nth-child(2)', { timeout: WAIT_MS })
    const chat = await page.textContent('#view-models tr[data-key="console-chat"]') ?? ''
    assert.match(chat, /available 2 of 2 nodes/)
    const embed = await page.textContent('#view-models tr[data-key="console-embed"]') ?? ''
    assert.match(embed, /embedding/)
    assert.match(embed, /1 of 1 node/)
    const names = await page.$$eval('#view-models tbody th', (cells) => cells.map((c) => c.textContent))
    assert.ok(names.includes(HOSTILE), 'a hostile model name is shown as text')
    assert.equal(await page.locator('main img').count(), 0, 'and never becomes markup')
    assert.equal(await page.evaluate(() => window.pwned), undefined)
  })

  test('the console\'s endpoints: node status and the network view', async () => {
    const status = (await b.call('/api/v0/node/status')).body.data
    assert.equal(status.peer_id, b.peerId)
    assert.equal(status.role, 'input')
    assert.equal(status.psk, true)
    assert.equal(status.admin, true, 'a caller on this machine')
    assert.equal(status.connections, 2)
    assert.equal(status.keys_required, false)
    // The node's start as a date (it read 1970 and an uptime of 57 years while a monotonic clock was passed).
    const started = Date.parse(status.started)
    assert.ok(started <= Date.now() && Date.now() - started < 3_600_000, `started ${status.started as string}`)
    assert.ok(status.uptime_s >= 0 && status.uptime_s <= Math.ceil((Date.now() - started) / 1000), `uptime ${status.uptime_s as number} s`)
    const worker = (await w2.call('/api/v0/node/status')).body.data
    assert.equal(worker.role, 'worker')
    assert.deepEqual(worker.models.map((m: { model: string, available: boolean }) => [m.model, m.available]).sort(), [['console-chat', true], ['console-embed', true], [HOSTILE, true]].sort())
    const view = (await b.call('/api/v0/network/view')).body.data
    assert.equal(view.self, b.peerId)
    assert.equal(view.nodes[0].node_id, b.peerId)
    const w1View = view.nodes.find((n: { node_id: string }) => n.node_id === w1.peerId)
    assert.equal(w1View.connectivity, 1)
    assert.equal(w1View.role, 'worker')
    assert.equal(w1View.fresh, true)
    assert.equal(typeof w1View.last_heard_ms, 'number')
    assert.deepEqual(w1View.projects, [{ project: 'Console', models: [{ model: 'console-chat', cid: '', type: 0, busy: 0, available: true }] }])
    assert.deepEqual(new Set(view.connections.map((c: { peer: string }) => c.peer)), new Set([w1.peerId, w2.peerId]))
  })

  test('a chat streams in: the only chat model is selected, Enter sends, the reply arrives in several steps', async () => {
    await open('chat')
    await page.waitForFunction(() => document.querySelector('#chat-model')?.value === 'console-chat', undefined, { timeout: WAIT_MS })
    assert.equal(await page.locator('#chat-model option').count(), 1, 'the embedding model is not offered for chat')
    // Record every text the reply shows on its way in.
    await page.evaluate(() => {
      const seen: string[] = []
      window.seen = seen
      new window.MutationObserver(() => {
        const text: string = document.querySelector('#chat-log .msg.assistant:last-child .text')?.textContent ?? ''
        if (text !== '' && seen.at(-1) !== text) seen.push(text)
      }).observe(document.querySelector('#chat-log'), { subtree: true, childList: true, characterData: true })
    })
    await page.fill('#chat-input', 'Hello, network')
    await page.press('#chat-input', 'Enter')
    await page.waitForSelector('#chat-log .msg.assistant.done', { timeout: WAIT_MS })
    assert.equal(await page.textContent('#chat-log .msg.assistant .text'), TOKENS.join(''))
    assert.equal(await page.textContent('#chat-log .msg.user .text'), 'Hello, network')
    const seen: string[] = await page.evaluate(() => window.seen)
    assert.ok(seen.length >= 3, `the reply arrived in ${seen.length} step(s): ${JSON.stringify(seen)}`)
    assert.ok(seen.every((text, i) => i === 0 || text.startsWith(seen[i - 1])), 'each step extends the previous one')
    const meta = await page.textContent('#chat-log .msg.assistant .meta') ?? ''
    assert.match(meta, /served by …\w+ · first token after \d+ ms · \d+ chunks/)
    const servedBy = await page.getAttribute('#chat-log .msg.assistant', 'data-node')
    assert.ok(servedBy === w1.peerId || servedBy === w2.peerId, `served by ${servedBy ?? 'nobody'}`)
    await shot('chat')
  })

  test('keys: one is created (its secret shown once), listed, topped up and revoked; usage shows the chat', async () => {
    await open('keys')
    await page.fill('#key-name', 'browser-key')
    await page.fill('#key-balance', '1')
    await page.click('#view-keys button[type="submit"]')
    await page.waitForSelector('#new-secret-value', { timeout: WAIT_MS })
    const secret = await page.textContent('#new-secret-value') ?? ''
    assert.match(secret, /^sk-aicn-/)
    const listed = (await b.call('/api/v0/keys/list')).body.data as Array<{ id: string, name: string, prefix: string }>
    const key = listed.find((k) => k.name === 'browser-key')
    assert.ok(key !== undefined, 'the node has the key')
    assert.ok(secret.startsWith(key.prefix), 'the secret shown is the key\'s')
    const row = `#keys-table tr[data-key="${key.id}"]`
    await page.waitForSelector(row, { timeout: WAIT_MS })
    assert.match(await page.textContent(row) ?? '', /browser-key.*\$1\.00.*active/)
    await page.waitForFunction(() => document.querySelector('#usage-table tbody')?.textContent?.includes('console-chat') === true, undefined, { timeout: WAIT_MS })
    await shot('keys')

    await page.fill(`${row} input.amount`, '2.5')
    await page.click(`${row} button:text("Top up")`)
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent?.includes('$3.50') === true, row, { timeout: WAIT_MS })
    await page.click(`${row} button.danger`)
    await page.click(`${row} button.danger`)
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent?.includes('revoked') === true, row, { timeout: WAIT_MS })
    const after = ((await b.call('/api/v0/keys/list')).body.data as Array<{ id: string, revoked: boolean, balanceUsd: number }>).find((k) => k.id === key.id)
    assert.deepEqual({ revoked: after?.revoked, balance: after?.balanceUsd }, { revoked: true, balance: 3.5 })
  })

  test('the dark theme toggles and the page logged no errors', async () => {
    await page.click('#theme')
    assert.ok(['dark', 'light'].includes(await page.getAttribute('html', 'data-theme') ?? ''))
    await open('network')
    if (await page.getAttribute('html', 'data-theme') === 'dark') await shot('network-dark')
    await page.click('#theme')
    assert.deepEqual(problems, [])
  })

  test('static files: strict CSP, types, revalidation, GET and HEAD only, nothing outside the console', async () => {
    const index = await fetch(`${b.web}/`)
    assert.equal(index.status, 200)
    assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8')
    assert.match(index.headers.get('content-security-policy') ?? '', /default-src 'self'; script-src 'self'; style-src 'self'/)
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff')
    assert.equal(index.headers.get('cache-control'), 'no-cache')
    const etag = index.headers.get('etag') ?? ''
    assert.notEqual(etag, '')
    // (fetch would add Cache-Control: no-cache to a conditional request, as browsers' fetch does)
    assert.equal(await statusOf(`${b.web}/`, { 'if-none-match': etag }), 304)
    assert.equal((await fetch(`${b.web}/main.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8')
    assert.equal((await fetch(`${b.web}/style.css`)).headers.get('content-type'), 'text/css; charset=utf-8')
    const head = await fetch(`${b.web}/main.js`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    const post = await fetch(`${b.web}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    assert.equal(post.status, 405)
    assert.equal(post.headers.get('allow'), 'GET, HEAD')
    for (const path of ['/../package.json', '/%2e%2e/package.json', '/..%2fpackage.json', '/main.js.map', '/src/main.ts', '/.env']) {
      const answer = await fetch(`${b.web}${path}`)
      assert.equal(answer.status, 404, path)
      assert.equal(((await answer.json()) as { code: number }).code, 1010, path)
    }
    // The API.Addr listener (port 6000 by default, which browsers refuse) keeps answering only the API.
    assert.equal((await fetch(`${b.api}/`)).status, 404)
  })
})
