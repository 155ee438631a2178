// The RPC service (src/protocols/rpc/) on in-memory streams and stub components
// (test/helpers/memory-peers.ts): what it registers as a libp2p service, its answers and its errors.
import '../../../src/core/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { lpStream } from '@libp2p/utils'
import { protocol } from '../../../src/proto/index.ts'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import { RPC_PROTOCOL, RpcService, rpc } from '../../../src/protocols/rpc/index.ts'
import { memoryPeers } from '../../helpers/memory-peers.ts'

const hasCode = (code: number, message?: RegExp) => (err: unknown): boolean => {
  assert.ok(err instanceof AicnError, `an AicnError, not ${String(err)}`)
  assert.equal(err.code, code)
  if (message !== undefined) assert.match(err.message, message)
  return true
}

test('as a libp2p service: start registers /aicn/rpc/1.0.0, stop removes it; serve: false registers nothing', async () => {
  const [a, b] = await memoryPeers(2)
  const service = rpc({ agentVersion: 'test', log: silentLogger })(a.components)
  assert.ok(service instanceof RpcService)
  await service.start()
  await service.start()
  assert.deepEqual(a.protocols(), [RPC_PROTOCOL])
  await service.stop()
  assert.deepEqual(a.protocols(), [])

  const quiet = new RpcService(b.components, { agentVersion: 'test', log: silentLogger, serve: false })
  await quiet.start()
  assert.deepEqual(b.protocols(), [])
  await quiet.stop()
})

test('a query is answered by the handler of its type, with the asked peer\'s id in the header', async () => {
  const [a, b] = await memoryPeers(2)
  const client = new RpcService(a.components, { agentVersion: 'test-a', log: silentLogger, serve: false })
  const server = new RpcService(b.components, { agentVersion: 'test-b', log: silentLogger })
  const seen: string[] = []
  server.handle(protocol.MessageType.HOST_INFO, async (request, remote) => {
    seen.push(remote.toString(), request.header?.node_id ?? '')
    return new TextEncoder().encode('host info of b')
  })
  await server.start()
  const body = await client.request(b.peerId, protocol.MessageType.HOST_INFO, new Uint8Array(0))
  assert.equal(new TextDecoder().decode(body), 'host info of b')
  assert.deepEqual(seen, [a.peerId.toString(), a.peerId.toString()], 'the handler learns who asked')
  await server.stop()
})

test('a type nobody handles is UNSUPPORTED; a handler\'s own error reaches the requester with its code', async () => {
  const [a, b] = await memoryPeers(2)
  const client = new RpcService(a.components, { agentVersion: 'test', log: silentLogger, serve: false })
  const server = new RpcService(b.components, { agentVersion: 'test', log: silentLogger })
  server.handle(protocol.MessageType.AI_PROJECT, async () => { throw new AicnError(ErrorCode.PERMISSION, 'not for you') })
  await server.start()
  await assert.rejects(client.request(b.peerId, protocol.MessageType.HOST_INFO, new Uint8Array(0)), hasCode(ErrorCode.UNSUPPORTED))
  await assert.rejects(client.request(b.peerId, protocol.MessageType.AI_PROJECT, new Uint8Array(0)), hasCode(ErrorCode.PERMISSION, /not for you/))
  await server.stop()
})

test('a request whose header names another sender is refused', async () => {
  const [a, b, c] = await memoryPeers(3)
  const server = new RpcService(b.components, { agentVersion: 'test', log: silentLogger })
  server.handle(protocol.MessageType.HOST_INFO, async () => new Uint8Array([1]))
  await server.start()
  // a asks b, claiming to be c
  const stream = await a.components.connectionManager.openStream(b.peerId, [RPC_PROTOCOL])
  const lp = lpStream(stream)
  await lp.write(protocol.Message.encode({ header: { id: 'x', node_id: c.peerId.toString(), receiver: b.peerId.toString() }, type: protocol.MessageType.HOST_INFO }).finish())
  const answer = protocol.Message.decode((await lp.read()).subarray())
  assert.equal(answer.result_code, ErrorCode.PERMISSION)
  assert.equal(answer.header?.node_id, b.peerId.toString())
  await server.stop()
})

test('a peer that does not answer: TIMEOUT after the call\'s own timeout; an unknown peer: ROUTING', async () => {
  const [a, b] = await memoryPeers(2)
  const client = new RpcService(a.components, { agentVersion: 'test', log: silentLogger, serve: false })
  await b.components.registrar.handle(RPC_PROTOCOL, () => { /* reads nothing, answers nothing */ })
  // AbortSignal.timeout() does not keep the process alive, and in-memory streams hold no socket that would.
  const keepAlive = setTimeout(() => {}, 10_000)
  // The message names the limit that fired: the call's own 100 ms, not the service's default.
  await assert.rejects(client.request(b.peerId, protocol.MessageType.HOST_INFO, new Uint8Array(0), { timeoutMs: 100 }), hasCode(ErrorCode.TIMEOUT, /within 100 ms$/))
  clearTimeout(keepAlive)
  const [stranger] = await memoryPeers(1)
  await assert.rejects(client.request(stranger.peerId, protocol.MessageType.HOST_INFO, new Uint8Array(0)), hasCode(ErrorCode.ROUTING))
})
