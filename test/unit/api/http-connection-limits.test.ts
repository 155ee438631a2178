// API.MaxConnections and API.MaxConnectionsPerIP (src/api/connection-limits.ts): the per-address count
// on stub sockets (a unit test cannot connect from a non-loopback address), the per-listener cap on a
// real node:http server on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { addressKey, limitConnections } from '../../../src/api/connection-limits.ts'
import { silentLogger } from '../../../src/core/logger.ts'

class StubSocket extends EventEmitter {
  destroyed = false
  constructor (readonly remoteAddress: string) { super() }
  destroy (): void {
    if (this.destroyed) return
    this.destroyed = true
    this.emit('close')
  }
}

function stubServer (): Server & EventEmitter {
  return new EventEmitter() as unknown as Server & EventEmitter
}

test('addressKey: IPv4 as is, IPv4-mapped as IPv4, IPv6 by /64, loopback not counted', () => {
  assert.equal(addressKey('203.0.113.7'), '203.0.113.7')
  assert.equal(addressKey('::ffff:203.0.113.7'), '203.0.113.7')
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
  assert.equal(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64', 'one /64, one count')
  assert.equal(addressKey('2001:0db8::1'), '2001:db8:0:0::/64')
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
  for (const loopback of ['127.0.0.1', '127.9.9.9', '::ffff:127.0.0.1', '::1', undefined, '']) assert.equal(addressKey(loopback), undefined, String(loopback))
})

test('a client address past API.MaxConnectionsPerIP is closed at once; closing frees its places; others unaffected', () => {
  const server = stubServer()
  const counter = limitConnections(server, { perListener: 100, perAddress: 3 }, 'API.WebAddr', silentLogger)
  const flood = Array.from({ length: 5 }, () => new StubSocket('198.51.100.9'))
  for (const socket of flood) server.emit('connection', socket)
  assert.deepEqual(flood.map((s) => s.destroyed), [false, false, false, true, true])
  assert.equal(counter.refused(), 2)

  const other = new StubSocket('198.51.100.10')
  server.emit('connection', other)
  assert.equal(other.destroyed, false, 'another address has its own count')
  const local = Array.from({ length: 10 }, () => new StubSocket('127.0.0.1'))
  for (const socket of local) server.emit('connection', socket)
  assert.ok(local.every((s) => !s.destroyed), 'loopback is not counted per address')

  flood[0].destroy()
  const again = new StubSocket('198.51.100.9')
  server.emit('connection', again)
  assert.equal(again.destroyed, false, 'a closed connection gives its place back')
  const oneTooMany = new StubSocket('198.51.100.9')
  server.emit('connection', oneTooMany)
  assert.equal(oneTooMany.destroyed, true)
  assert.equal(counter.refused(), 3)
})

test('a listener past API.MaxConnections closes new connections; the ones it holds keep working', async () => {
  const server = createServer((_req, res) => { res.end('ok') })
  const counter = limitConnections(server, { perListener: 3, perAddress: 3 }, 'API.Addr', silentLogger)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const open = async (): Promise<Socket> => await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => { resolve(socket) })
    socket.once('error', reject)
  })
  const held = [await open(), await open(), await open()]
  await new Promise<void>((resolve) => { const check = (): void => { server.getConnections((_e, n) => { if (n === 3) resolve(); else setImmediate(check) }) }; check() })
  const dropped = await open()
  await new Promise<void>((resolve) => { dropped.once('close', () => { resolve() }); dropped.resume() })
  assert.equal(counter.refused(), 1)

  // A held connection still gets its answer.
  const answer = await new Promise<string>((resolve) => {
    let text = ''
    held[0].on('data', (d: Buffer) => { text += d.toString() })
    held[0].once('end', () => { resolve(text) })
    held[0].write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
  })
  assert.match(answer, /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nok$/)
  for (const socket of held) socket.destroy()
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
})
