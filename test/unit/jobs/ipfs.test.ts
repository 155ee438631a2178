// ipfs_node (src/jobs/ipfs.ts): only IPFS nodes the operator allowed (Jobs.IpfsNodes; by default any
// loopback address), no redirects, a bounded answer, and nothing of the IPFS node's answer reflected
// but its status. The servers here listen on 127.0.0.1; refused URLs are never connected to.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { checkIpfsNode, ipfsOrigins, isLoopbackHost, uploadImage } from '../../../src/jobs/ipfs.ts'

const SECRET = 'SECRET-internal-page-1c9e'

function refused (text: string, allowed: ReadonlySet<string>, message: RegExp): void {
  assert.throws(() => checkIpfsNode(text, allowed), (err: unknown) => {
    assert.ok(err instanceof AicnError, text)
    assert.equal(err.code, ErrorCode.PARAM)
    assert.equal(err.status, 400)
    assert.match(err.message, message, text)
    return true
  })
}

describe('checkIpfsNode', () => {
  it('by default allows only loopback IPFS nodes', () => {
    for (const ok of ['http://127.0.0.1:5001', 'http://127.8.9.10:5001/', 'http://localhost:5001', 'https://ipfs.localhost', 'http://[::1]:5001', 'http://[::ffff:127.0.0.1]:5001']) {
      assert.equal(checkIpfsNode(ok).protocol.startsWith('http'), true, ok)
    }
    for (const bad of ['http://10.1.2.3:5001', 'http://169.254.169.254/', 'http://[fe80::1]/', 'http://0.0.0.0:5001', 'http://ipfs.example.com:5001', 'http://127.0.0.1.nip.io:5001', 'http://[::ffff:10.0.0.1]/']) {
      refused(bad, new Set(), /is not allowed: this node uploads only to an IPFS node on its own loopback address \(Jobs\.IpfsNodes\)/)
    }
  })

  it('with Jobs.IpfsNodes set, allows exactly the listed nodes, a non-loopback one included', () => {
    const allowed = ipfsOrigins(['http://10.0.0.5:5001', 'https://ipfs.example.com/', 'not a url'])
    assert.equal(checkIpfsNode('http://10.0.0.5:5001/api', allowed).origin, 'http://10.0.0.5:5001')
    assert.equal(checkIpfsNode('https://IPFS.example.com:443', allowed).origin, 'https://ipfs.example.com')
    for (const bad of ['http://10.0.0.5:5002', 'https://10.0.0.5:5001', 'http://ipfs.example.com', 'http://127.0.0.1:5001']) {
      refused(bad, allowed, /is not allowed: it is not one of the IPFS nodes this node is configured to use/)
    }
  })

  it('refuses what is not an http(s) URL, and credentials', () => {
    refused('x', new Set(), /is not a URL/)
    refused('file:///etc/passwd', new Set(), /must use http or https/)
    refused('gopher://127.0.0.1:70/', new Set(), /must use http or https/)
    refused('http://user:pw@127.0.0.1:5001', new Set(), /must not contain a user name or password/)
    refused('a'.repeat(10_000), new Set(), /is not a URL/)
  })

  it('knows loopback hosts', () => {
    assert.equal(isLoopbackHost('127.0.0.1'), true)
    assert.equal(isLoopbackHost('[::1]'), true)
    assert.equal(isLoopbackHost('LOCALHOST.'), true)
    assert.equal(isLoopbackHost('128.0.0.1'), false)
    assert.equal(isLoopbackHost('localhost.example'), false)
  })
})

describe('uploadImage', () => {
  let server: Server
  let node: URL
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => { res.end() }
  let hits = 0

  before(async () => {
    server = createServer((req, res) => { hits++; req.resume(); req.on('end', () => { handler(req, res) }) })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    node = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  })
  after(() => {
    server.closeAllConnections()
    server.close()
  })

  const upload = async (deadline?: number): Promise<unknown> => await uploadImage(node, new Uint8Array([137, 80, 78, 71]), new AbortController().signal, deadline)

  it('answers the CID of the added file', async () => {
    handler = (_req, res) => { res.end('{"Name":"a.png","Hash":"QmProgress","Size":"1"}\n{"Name":"a.png","Hash":"QmTheFile","Size":"4"}\n') }
    const image = await upload() as { cid: string, image_name: string }
    assert.equal(image.cid, 'QmTheFile')
    assert.match(image.image_name, /^[0-9a-f]{16}\.png$/)
  })

  it('does not reflect an error page, only its status', async () => {
    handler = (_req, res) => { res.statusCode = 403; res.end(`<html>${SECRET}</html>`) }
    await assert.rejects(upload(), (err: unknown) => {
      assert.ok(err instanceof AicnError)
      assert.equal(err.code, ErrorCode.IPFS)
      assert.match(err.message, /answered HTTP 403$/)
      assert.ok(!err.message.includes(SECRET))
      return true
    })
  })

  it('does not reflect a successful answer that is not a CID', async () => {
    handler = (_req, res) => { res.end(JSON.stringify({ Hash: `<script>${SECRET}</script>` })) }
    await assert.rejects(upload(), (err: unknown) => err instanceof AicnError && err.code === ErrorCode.IPFS && /did not answer with a CID/.test(err.message) && !err.message.includes(SECRET))
  })

  it('reads at most 64 KiB of the answer', async () => {
    handler = (_req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 'x')
      const write = (): void => { while (res.write(chunk)) { /* fill */ } }
      res.on('drain', write)
      res.on('error', () => {})
      write()
    }
    await assert.rejects(upload(), /answered more than 65536 bytes/)
  })

  it('does not follow redirects', async () => {
    const target = createServer((_req, res) => { res.end('{"Hash":"QmRedirected"}') })
    target.listen(0, '127.0.0.1')
    await once(target, 'listening')
    let targetHits = 0
    target.on('request', () => { targetHits++ })
    try {
      handler = (_req, res) => { res.writeHead(307, { location: `http://127.0.0.1:${(target.address() as AddressInfo).port}/api/v0/add` }); res.end() }
      await assert.rejects(upload(), { code: ErrorCode.IPFS })
      assert.equal(targetHits, 0)
    } finally {
      target.close()
    }
  })

  it('ends at the job\'s deadline with the timeout code', async () => {
    handler = () => { /* never answers */ }
    const before = hits
    await assert.rejects(upload(Date.now() + 200), { code: ErrorCode.TIMEOUT })
    // No retry. (Whether the one request reached the server before the deadline depends on the machine's load.)
    assert.ok(hits - before <= 1, `${hits - before} requests`)
    server.closeAllConnections()
  })
})
