// The Go node's broadcast RPC between real libp2p nodes in this process (tcp + noise + yamux + gossipsub on
// 127.0.0.1): A asks, B answers with fake handlers, C is a bare node that sniffs the topic, plays a Go node
// and forges replies. Also the result-code tables and the protobuf ⇄ model JSON conversions.
import '../../../src/core/polyfill.ts'
import { after, before, beforeEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { generateKeyPair, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../../../src/core/errors.ts'
import { silentLogger } from '../../../src/core/logger.ts'
import { protocol } from '../../../src/proto/index.ts'
import type { PubSub, PubSubMessage } from '../../../src/p2p/pubsub.ts'
import type { HostInfo } from '../../../src/hostinfo/index.ts'
import type { JobRequest, JobResponse, JobRunner } from '../../../src/core/job-types.ts'
import { BroadcastRpc, BUSY_MESSAGE, type BroadcastComponents, type BroadcastHandlers } from '../../../src/compat/broadcast-rpc/broadcast-rpc.ts'
import { fromGoCode, GoCode, toGoCode } from '../../../src/compat/codes.ts'
import { decryptBody, encryptBody } from '../../../src/compat/crypto.ts'
import {
  chatJsonFromResponse, chatRequestFromJson, chatRequestToModelJson, chatResponseFromModelJson,
  imageJsonFromResponse, imageRequestFromJson, imageRequestToModelJson, imageResponseFromModelJson, makeBroadcastHandlers
} from '../../../src/compat/broadcast-rpc/go-jobs.ts'
import { waitFor } from '../../helpers/wait.ts'
import { hasCode } from '../../helpers/errors.ts'

const TOPIC = 'DeepBrainChain'
const T = protocol.MessageType
const KiB = 1024
const encoder = new TextEncoder()
/** Where a mocked Date (node:test mock.timers) stands still in the deadline checks. */
const NOW = Date.UTC(2026, 0, 1)
const decoder = new TextDecoder()

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((res) => { resolve = res })
  return { promise, resolve }
}

function contains (haystack: Uint8Array, needle: string): boolean {
  return Buffer.from(haystack).includes(Buffer.from(needle))
}

// ---- pure parts ----

describe('result codes', () => {
  const ours = Object.values(ErrorCode)

  test('every code of ours survives a trip to the Go table and back', () => {
    for (const code of ours) assert.equal(fromGoCode(toGoCode(code)), code, `code ${code}`)
    assert.equal(new Set(ours.map(toGoCode)).size, ours.length, 'no two codes of ours share a Go code')
  })

  test('the shifted numbers map to the same meaning', () => {
    assert.equal(toGoCode(ErrorCode.PROTOBUF), GoCode.PROTOBUF)
    assert.equal(toGoCode(ErrorCode.TIMEOUT), 1005)
    assert.equal(toGoCode(ErrorCode.MODEL), 1007)
    assert.equal(toGoCode(ErrorCode.DECRYPT), 1014)
    assert.equal(toGoCode(ErrorCode.STREAM), 1018)
    assert.equal(toGoCode(ErrorCode.INTERNAL), 5000)
    assert.equal(fromGoCode(1003), ErrorCode.PARSE)
    assert.equal(fromGoCode(1019), ErrorCode.UNSUPPORTED)
    assert.equal(fromGoCode(1017), ErrorCode.NO_NODE)
  })

  test('codes neither table knows (a model server\'s own) pass through', () => {
    for (const code of [0, 42, 4242, 1020, 400, 5001]) {
      assert.equal(toGoCode(code), code)
      assert.equal(fromGoCode(code), code)
    }
  })
})

describe('chat and image conversions', () => {
  /** through the wire, as the receiver sees it (float32 rounding included) */
  const wireChat = (req: protocol.ChatCompletionRequest.$Properties): protocol.ChatCompletionRequest =>
    protocol.ChatCompletionBody.decode(protocol.ChatCompletionBody.encode({ req }).finish()).req as protocol.ChatCompletionRequest

  test('a chat request becomes model JSON with each content re-emitted verbatim', () => {
    const req = wireChat({
      project: 'P',
      model: 'm',
      messages: [
        { role: 'system', content: encoder.encode('"Be brief"') },
        { role: 'user', content: encoder.encode('[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"http://x/1.png"}}]') },
        { role: 'user', content: encoder.encode('"Hello"') }
      ],
      stream: true,
      temperature: 0.7,
      top_p: 0
    })
    assert.equal(req.messages[2].content?.byteLength, 7)
    assert.equal(decoder.decode(chatRequestToModelJson(req)),
      '{"model":"m","messages":[{"role":"system","content":"Be brief"},' +
      '{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"http://x/1.png"}}]},' +
      '{"role":"user","content":"Hello"}],"stream":false,"temperature":0.7}')
  })

  test('top_p and the wallet fields are forwarded when set; bad content is a parameter error', () => {
    const json = JSON.parse(decoder.decode(chatRequestToModelJson(wireChat({ model: 'm', messages: [], top_p: 0.9, wallet: { wallet: 'w', signature: '', hash: 'h' } }))))
    assert.deepEqual(json, { model: 'm', messages: [], stream: false, top_p: 0.9, wallet: 'w', hash: 'h' })
    assert.throws(() => chatRequestToModelJson({ model: 'm', messages: [{ role: 'user', content: encoder.encode('"Hel') }] }), hasCode(ErrorCode.PARAM))
    assert.throws(() => chatRequestToModelJson({ model: 'm', messages: [{ role: 'user', content: encoder.encode('"a" "b"') }] }), hasCode(ErrorCode.PARAM))
    assert.match(decoder.decode(chatRequestToModelJson({ model: 'm', messages: [{ role: 'user' }] })), /"content":null/)
  })

  test('our JSON becomes the request a Go node expects, and back', () => {
    const req = wireChat(chatRequestFromJson({ project: 'P', model: 'm', cid: 'c', messages: [{ role: 'user', content: 'Hello' }, { role: 'user', content: [{ type: 'text', text: 'x' }] }], temperature: 0.5, stream: true, wallet: 'w' }))
    assert.equal(decoder.decode(req.messages[0].content), '"Hello"')
    assert.equal(decoder.decode(req.messages[1].content), '[{"type":"text","text":"x"}]')
    assert.equal(req.stream, false)
    assert.equal(req.temperature, 0.5)
    assert.equal(req.project, 'P')
    assert.equal(req.cid, 'c')
    assert.equal(req.wallet?.wallet, 'w')
    assert.equal(decoder.decode(chatRequestToModelJson(req)), '{"model":"m","messages":[{"role":"user","content":"Hello"},{"role":"user","content":[{"type":"text","text":"x"}]}],"stream":false,"temperature":0.5,"wallet":"w"}')
  })

  const modelChat = {
    id: 'chatcmpl-9',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: 'Hi there' }, finish_reason: 'stop' }, { index: 1, message: { role: 'assistant', content: null }, finish_reason: 'tool_calls' }],
    usage: { completion_tokens: 3, prompt_tokens: 5, total_tokens: 8 }
  }

  test('a model\'s chat answer keeps id and object through protobuf and back to JSON', () => {
    const res = chatResponseFromModelJson(modelChat)
    const wire = protocol.ChatCompletionBody.decode(protocol.ChatCompletionBody.encode({ res }).finish()).res as protocol.ChatCompletionResponse
    assert.deepEqual(chatJsonFromResponse(wire), {
      id: 'chatcmpl-9',
      object: 'chat.completion',
      created: 1_700_000_000,
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hi there' }, finish_reason: 'stop' }, { index: 1, message: { role: 'assistant', content: '' }, finish_reason: 'tool_calls' }],
      usage: { completion_tokens: 3, prompt_tokens: 5, total_tokens: 8 }
    })
    // A Go node's answer has neither; the object is always chat.completion for a non-streamed chat.
    const fromGo = chatJsonFromResponse({ created: 1, choices: [] })
    assert.equal(fromGo.id, '')
    assert.equal(fromGo.object, 'chat.completion')
    assert.throws(() => chatResponseFromModelJson([1, 2]), hasCode(ErrorCode.MODEL))
  })

  test('images: request to model JSON (step forwarded, zeros left out), answers both ways', () => {
    const req = imageRequestFromJson({ project: 'P', model: 'sd', prompt: 'a cat', n: 2, size: '512x512', step: 20, response_format: 'url', cid: 'c' })
    assert.equal(req.number, 2)
    assert.equal(req.cid, 'c')
    assert.deepEqual(JSON.parse(decoder.decode(imageRequestToModelJson(req))), { model: 'sd', prompt: 'a cat', n: 2, size: '512x512', step: 20, response_format: 'url' })
    const res = imageResponseFromModelJson({ created: 1_700_000_001, data: [{ url: 'http://img/1.png', revised_prompt: 'a cute cat' }, { b64_json: 'AAAA' }] })
    assert.deepEqual(imageJsonFromResponse(res), { created: 1_700_000_001, data: [{ url: 'http://img/1.png', revised_prompt: 'a cute cat' }, { b64_json: 'AAAA' }] })
  })

  describe('makeBroadcastHandlers', () => {
    const jobs: Array<{ request: JobRequest, body: string }> = []
    let answer: Partial<JobResponse> & { json?: unknown } = {}
    const runner: JobRunner = async (request) => {
      const chunks: Uint8Array[] = []
      for await (const chunk of request.body) chunks.push(chunk)
      jobs.push({ request, body: Buffer.concat(chunks).toString() })
      if (answer.error !== undefined) return { status: 404, contentType: '', nodeId: 'n', cid: '', error: answer.error, body: (async function * () {})() }
      const bytes = encoder.encode(JSON.stringify(answer.json))
      return { status: answer.status ?? 200, contentType: 'application/json', nodeId: 'n', cid: 'c', body: (async function * () { yield bytes })() }
    }
    const info = { peer_id: 'n', protocol_version: 'aicn/0.0.1', agent_version: 'v', addresses: [], protocols: [] }
    const handlers = makeBroadcastHandlers({ runner, peerInfo: async () => info, hostInfo: async () => hostInfo, projects: () => ({ node_type: 4 }), nodeId: 'n' })
    const signal = new AbortController().signal

    beforeEach(() => { jobs.length = 0; answer = {} })

    test('a chat runs as a CHAT job with the model JSON, within 3 minutes', async (t) => {
      // A clock that stands still: the deadline (src/core/deadlines.ts) is checked exactly.
      t.mock.timers.enable({ apis: ['Date'], now: NOW })
      answer = { json: modelChat }
      const res = await handlers.chat({ project: 'P', model: 'm', cid: 'c', messages: [{ role: 'user', content: encoder.encode('"Hello"') }] }, signal)
      assert.equal(res.id, 'chatcmpl-9')
      assert.equal(res.choices?.[0].message?.content, 'Hi there')
      const { head } = jobs[0].request
      assert.deepEqual([head.project, head.model, head.cid, head.kind, head.stream, head.contentType], ['P', 'm', 'c', 0, false, 'application/json'])
      assert.equal(head.deadline, NOW + 180_000)
      assert.equal(jobs[0].body, '{"model":"m","messages":[{"role":"user","content":"Hello"}],"stream":false}')
      assert.equal((await handlers.aiProjects()).node_type, 4)
      assert.equal((await handlers.peerIdentity()).agent_version, 'v')
    })

    test('an image runs as an IMAGE_GEN job within 5 minutes', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: NOW })
      answer = { json: { created: 5, data: [{ url: 'u' }] } }
      const res = await handlers.image({ project: 'P', model: 'sd', prompt: 'p', number: 1 }, signal)
      assert.deepEqual(res, { created: 5, choices: [{ url: 'u', b64_json: '', revised_prompt: '' }] })
      assert.equal(jobs[0].request.head.kind, 1)
      assert.equal(jobs[0].request.head.deadline, NOW + 300_000)
    })

    test('model failures come back as AicnErrors with the model\'s code', async () => {
      answer = { error: { code: ErrorCode.MODEL, message: 'not served here' } }
      await assert.rejects(handlers.chat({ model: 'x' }, signal), hasCode(ErrorCode.MODEL, /not served here/))
      answer = { json: { code: 4321, message: 'quota' } }
      await assert.rejects(handlers.chat({ model: 'x' }, signal), hasCode(4321, /quota/))
    })
  })
})

// ---- on the network ----

const hostInfo: HostInfo = {
  os: { os: 'linux', platform: 'debian', platform_family: 'debian', platform_version: '12', kernel_version: '6.1', kernel_arch: 'x86_64' },
  cpu: [{ model_name: 'Test CPU', total_cores: 4, total_threads: 8 }],
  memory: { total_physical_bytes: 8 * 2 ** 30, total_usable_bytes: 7 * 2 ** 30 },
  disk: [],
  gpu: [{ vendor: 'NVIDIA', product: 'Test GPU' }]
}

interface Peer {
  node: Libp2p<{ pubsub: PubSub }>
  key: PrivateKey
  id: string
  pubsub: PubSub
  /** how many messages this node published */
  published: () => number
}

async function createPeer (): Promise<Peer> {
  const key = await generateKeyPair('secp256k1')
  const node = await createLibp2p({
    privateKey: key,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true }) as any }
  }) as unknown as Libp2p<{ pubsub: PubSub }>
  const pubsub = node.services.pubsub
  // Count publishes, to prove that some messages are never answered.
  let count = 0
  const publish = pubsub.publish.bind(pubsub)
  pubsub.publish = async (topic, data) => { count++; return await publish(topic, data) }
  pubsub.subscribe(TOPIC)
  return { node, key, id: node.peerId.toString(), pubsub, published: () => count }
}

/** The components the broadcast RPC takes from libp2p (src/compat/broadcast-rpc/broadcast-rpc.ts). */
function servicesOf (peer: Peer): BroadcastComponents {
  return { peerId: peer.node.peerId, pubsub: peer.pubsub }
}

describe('the broadcast RPC', () => {
  let a: Peer
  let b: Peer
  let c: Peer
  let rpcA: BroadcastRpc
  let rpcB: BroadcastRpc
  /** everything C sees on the topic */
  const sniffed: Array<{ from: string, message: protocol.Message, data: Uint8Array }> = []
  /** everything A sees on the topic */
  const seenByA: Array<{ from: string, message: protocol.Message }> = []
  let gate = deferred()
  const B_LIMIT = 256 * KiB

  const handlers: BroadcastHandlers = {
    peerIdentity: async () => ({ peer_id: b.id, protocol_version: 'aicn/0.0.1', agent_version: 'fake-b/1.0', addresses: ['/ip4/127.0.0.1/tcp/4001'], protocols: ['/aicn/rpc/1.0.0'] }),
    hostInfo: async () => hostInfo,
    aiProjects: async () => ({ projects: [{ project: 'P', models: [{ model: 'm', api: '', type: 0, idle: 1, cid: 'c' }] }], node_type: 4 }),
    chat: async (req) => {
      const model = req.model ?? ''
      if (model === 'broken') throw new AicnError(ErrorCode.MODEL, 'the model is down')
      if (model === 'crash') throw new Error('boom')
      if (model === 'slow') await gate.promise
      const asked = decoder.decode(req.messages?.[0]?.content ?? new Uint8Array(0))
      const content = model === 'huge' ? 'x'.repeat(B_LIMIT) : `answer to ${asked}`
      return { id: 'chatcmpl-1', object: 'chat.completion', created: 1_700_000_000, choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { completion_tokens: 2, prompt_tokens: 1, total_tokens: 3 } }
    },
    image: async (req) => ({ created: 1_700_000_001, choices: [{ url: `http://img/${req.prompt ?? ''}.png` }] })
  }
  const idle: BroadcastHandlers = { ...handlers, chat: async () => { throw new Error('A serves nothing') } }

  const chatBody = (model: string, content: string): Uint8Array =>
    protocol.ChatCompletionBody.encode({ req: { project: 'P', model, messages: [{ role: 'user', content: encoder.encode(JSON.stringify(content)) }] } }).finish()
  const chat = async (model: string, content: string, timeoutMs = 10_000): Promise<protocol.ChatCompletionResponse> => {
    const body = await rpcA.request(b.node.peerId, T.CHAT_COMPLETION, chatBody(model, content), { timeoutMs })
    return protocol.ChatCompletionBody.decode(body).res as protocol.ChatCompletionResponse
  }
  /** the next message C sees that matches */
  const sniff = async (match: (m: { from: string, message: protocol.Message }) => boolean, after: number): Promise<{ from: string, message: protocol.Message, data: Uint8Array }> => {
    let found: { from: string, message: protocol.Message, data: Uint8Array } | undefined
    await waitFor(() => (found = sniffed.slice(after).find(match)) !== undefined, 5_000, 'a message on the topic')
    return found as { from: string, message: protocol.Message, data: Uint8Array }
  }
  /** publishes a Message from C */
  const fromC = async (message: protocol.Message.$Properties): Promise<void> => {
    await c.pubsub.publish(TOPIC, protocol.Message.encode(message).finish())
  }

  before(async () => {
    [a, b, c] = await Promise.all([createPeer(), createPeer(), createPeer()])
    await a.node.dial(b.node.getMultiaddrs()[0])
    await a.node.dial(c.node.getMultiaddrs()[0])
    await b.node.dial(c.node.getMultiaddrs()[0])
    for (const p of [a, b, c]) await waitFor(() => p.pubsub.getSubscribers(TOPIC).length === 2, 10_000, 'topic subscriptions')
    c.pubsub.addEventListener('message', (event: CustomEvent<PubSubMessage>) => {
      const { data, from } = event.detail
      try {
        sniffed.push({ from: from?.toString() ?? '', message: protocol.Message.decode(data), data })
      } catch {}
    })
    rpcA = new BroadcastRpc(servicesOf(a), { topic: TOPIC, privateKey: a.key, agentVersion: 'aicn-a/0.1.0', log: silentLogger })
    rpcB = new BroadcastRpc(servicesOf(b), { topic: TOPIC, privateKey: b.key, agentVersion: 'aicn-b/0.1.0', log: silentLogger, maxMessageBytes: B_LIMIT, maxConcurrent: 2 })
    rpcA.serveWith(idle)
    rpcA.afterStart()
    rpcB.serveWith(handlers)
    rpcB.afterStart()
    // Added after the RPC's own listener: when A's test listener sees a message, the RPC has handled it.
    a.pubsub.addEventListener('message', (event: CustomEvent<PubSubMessage>) => {
      try {
        seenByA.push({ from: event.detail.from?.toString() ?? '', message: protocol.Message.decode(event.detail.data) })
      } catch {}
    })
  })

  after(async () => {
    rpcA?.stop()
    rpcB?.stop()
    await Promise.all([a, b, c].map(async (p) => await p?.node.stop()))
  })

  test('PEER_IDENTITY, HOST_INFO and AI_PROJECT round trips', async () => {
    const identity = protocol.PeerIdentityBody.decode(await rpcA.request(b.node.peerId, T.PEER_IDENTITY, protocol.PeerIdentityBody.encode({ req: {} }).finish(), { timeoutMs: 10_000 })).res
    assert.equal(identity?.agent_version, 'fake-b/1.0')
    assert.equal(identity?.protocol_version, 'aicn/0.0.1')
    assert.deepEqual(identity?.listen_addrs, ['/ip4/127.0.0.1/tcp/4001'])
    assert.deepEqual(identity?.protocols, ['/aicn/rpc/1.0.0'])

    const host = protocol.HostInfoBody.decode(await rpcA.request(b.node.peerId, T.HOST_INFO, protocol.HostInfoBody.encode({ req: {} }).finish(), { timeoutMs: 10_000 })).res
    assert.equal(host?.cpu?.[0].model_name, 'Test CPU')
    assert.equal(Number(host?.memory?.total_physical_bytes), 8 * 2 ** 30)
    assert.equal(host?.gpu?.[0].product, 'Test GPU')

    const projects = protocol.AIProjectBody.decode(await rpcA.request(b.node.peerId, T.AI_PROJECT, protocol.AIProjectBody.encode({ req: {} }).finish(), { timeoutMs: 10_000 })).res
    assert.equal(projects?.node_type, 4)
    assert.equal(projects?.projects?.[0].models?.[0].cid, 'c')
  })

  test('a chat round trip is encrypted on the wire both ways, with Go\'s header rules', async () => {
    const mark = sniffed.length
    const res = await chat('m', 'secret prompt')
    assert.equal(res.choices[0].message?.content, 'answer to "secret prompt"')
    assert.equal(res.id, 'chatcmpl-1')

    const request = await sniff((m) => m.from === a.id && m.message.type === T.CHAT_COMPLETION, mark)
    const rh = request.message.header as protocol.MessageHeader
    assert.equal(rh.node_id, a.id)
    assert.equal(rh.receiver, b.id)
    assert.match(rh.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    assert.equal(rh.client_version, 'aicn-a/0.1.0')
    assert.deepEqual(new Uint8Array(rh.node_pub_key), publicKeyToProtobuf(a.key.publicKey))
    assert.ok(!contains(request.message.body, 'secret prompt'), 'the prompt is not readable on the topic')
    // Only B can open it.
    assert.equal(protocol.ChatCompletionBody.decode(decryptBody(b.key, rh.node_pub_key, request.message.body)).req?.model, 'm')
    assert.throws(() => decryptBody(c.key, rh.node_pub_key, request.message.body), hasCode(ErrorCode.DECRYPT))

    const response = await sniff((m) => m.from === b.id && m.message.header?.id === rh.id, mark)
    const sh = response.message.header as protocol.MessageHeader
    assert.equal(sh.receiver, a.id)
    assert.equal(sh.node_id, b.id)
    assert.equal(Number(sh.timestamp), 1_700_000_000, 'a chat response carries the model\'s created')
    assert.deepEqual(new Uint8Array(sh.node_pub_key), publicKeyToProtobuf(b.key.publicKey))
    assert.equal(response.message.result_code, 0)
    assert.ok(!contains(response.message.body, 'answer to'), 'the answer is not readable on the topic')
  })

  test('an image round trip', async () => {
    const body = await rpcA.request(b.node.peerId, T.IMAGE_GENERATION, protocol.ImageGenerationBody.encode({ req: { model: 'sd', prompt: 'cat' } }).finish(), { timeoutMs: 10_000 })
    assert.deepEqual(imageJsonFromResponse(protocol.ImageGenerationBody.decode(body).res ?? {}), { created: 1_700_000_001, data: [{ url: 'http://img/cat.png' }] })
  })

  test('a handler\'s error reaches the requester with our code; the wire carries Go\'s', async () => {
    const mark = sniffed.length
    await assert.rejects(chat('broken', 'hi'), hasCode(ErrorCode.MODEL, /^the model is down$/))
    const reply = await sniff((m) => m.from === b.id && m.message.result_code !== 0, mark)
    assert.equal(reply.message.result_code, GoCode.MODEL)
    assert.equal(reply.message.body.byteLength, 0)
    assert.equal(reply.message.header?.node_pub_key?.byteLength, 0)
    await assert.rejects(chat('crash', 'hi'), hasCode(ErrorCode.INTERNAL, /boom/))
  })

  test('a node that does not run the service: timeout; a cancelled call ends at once', async () => {
    // The error names the bound that ended the call: the request's own 300 ms, not a default.
    await assert.rejects(rpcA.request(c.node.peerId, T.PEER_IDENTITY, protocol.PeerIdentityBody.encode({ req: {} }).finish(), { timeoutMs: 300 }), hasCode(ErrorCode.TIMEOUT, /did not answer within 300 ms/))
    const controller = new AbortController()
    setTimeout(() => { controller.abort() }, 50)
    await assert.rejects(rpcA.request(c.node.peerId, T.PEER_IDENTITY, protocol.PeerIdentityBody.encode({ req: {} }).finish(), { timeoutMs: 60_000, signal: controller.signal }), hasCode(ErrorCode.TIMEOUT, /cancelled/))
  })

  test('forged replies from a third node are ignored and the real answer wins', async () => {
    gate = deferred()
    const mark = sniffed.length
    const publishedByA = a.published()
    const answer = chat('slow', 'real question')
    const request = await sniff((m) => m.from === a.id && m.message.type === T.CHAT_COMPLETION, mark)
    const id = request.message.header?.id ?? ''
    const forgedRes = protocol.ChatCompletionBody.encode({ res: { created: 1, choices: [{ index: 0, message: { role: 'assistant', content: 'forged' } }] } }).finish()
    const sealed = encryptBody(c.key, a.key.publicKey, forgedRes)
    const cKey = publicKeyToProtobuf(c.key.publicKey)
    const head = (nodeId: string, key?: Uint8Array): protocol.MessageHeader.$Properties => ({ client_version: 'evil', timestamp: 1, id, node_id: nodeId, receiver: a.id, node_pub_key: key })
    const forgeries: protocol.Message.$Properties[] = [
      { header: head(c.id), type: T.CHAT_COMPLETION, result_code: GoCode.MODEL, result_message: 'forged error' },
      { header: head(c.id, cKey), type: T.CHAT_COMPLETION, body: sealed },
      // The asked node's id in the header, but the pubsub author is C.
      { header: head(b.id), type: T.CHAT_COMPLETION, result_code: GoCode.MODEL, result_message: 'forged error' },
      { header: head(b.id, cKey), type: T.CHAT_COMPLETION, body: sealed },
      { header: head(b.id), type: T.CHAT_COMPLETION, body: forgedRes }
    ]
    for (const forgery of forgeries) await fromC(forgery)
    await waitFor(() => seenByA.filter((m) => m.from === c.id && m.message.header?.id === id).length === forgeries.length, 5_000, 'A to receive the forgeries')
    gate.resolve()
    const res = await answer
    assert.equal(res.choices[0].message?.content, 'answer to "real question"')
    assert.equal(a.published(), publishedByA + 1, 'A answered none of the forgeries')
  })

  test('duplicate responses after completion cause no crash and no answer', async () => {
    const mark = sniffed.length
    await chat('m', 'once')
    const request = await sniff((m) => m.from === a.id && m.message.type === T.CHAT_COMPLETION, mark)
    const id = request.message.header?.id ?? ''
    const response = await sniff((m) => m.from === b.id && m.message.header?.id === id, mark)
    const publishedByA = a.published()
    // B itself repeats its answer (new seqno, so gossipsub does not drop it as already seen).
    await b.pubsub.publish(TOPIC, response.data)
    await b.pubsub.publish(TOPIC, response.data)
    await waitFor(() => seenByA.filter((m) => m.from === b.id && m.message.header?.id === id).length === 3, 5_000, 'A to receive the duplicates')
    assert.equal(a.published(), publishedByA)
    // A still works, and a whole round trip later its only publish is that request: it answered no duplicate.
    assert.equal((await chat('m', 'again')).choices[0].message?.content, 'answer to "again"')
    assert.equal(a.published(), publishedByA + 1)
  })

  test('error replies and responses for unknown ids, and requests on behalf of others, are never answered', async () => {
    const publishedByB = b.published()
    const res = encryptBody(c.key, b.key.publicKey, protocol.PeerIdentityBody.encode({ res: { agent_version: 'x' } }).finish())
    const cKey = publicKeyToProtobuf(c.key.publicKey)
    await fromC({ header: { id: randomUUID(), node_id: c.id, receiver: b.id }, type: T.CHAT_COMPLETION, result_code: GoCode.MODEL, result_message: 'dead loop?' })
    await fromC({ header: { id: randomUUID(), node_id: c.id, receiver: b.id, node_pub_key: cKey }, type: T.PEER_IDENTITY, body: res })
    await fromC({ header: { id: randomUUID(), node_id: a.id, receiver: b.id }, type: T.PEER_IDENTITY, body: protocol.PeerIdentityBody.encode({ req: {} }).finish() })
    // Then a proper request from C, playing a Go node that sends a plaintext body: answered, encrypted to C.
    const mark = sniffed.length
    const id = randomUUID()
    await fromC({ header: { client_version: 'v0.1.5', timestamp: 1, id, node_id: c.id, receiver: b.id }, type: T.PEER_IDENTITY, body: protocol.PeerIdentityBody.encode({ req: {} }).finish() })
    const reply = await sniff((m) => m.from === b.id && m.message.header?.id === id, mark)
    const header = reply.message.header as protocol.MessageHeader
    assert.equal(header.receiver, c.id)
    assert.equal(header.client_version, 'aicn-b/0.1.0')
    assert.equal(protocol.PeerIdentityBody.decode(decryptBody(c.key, header.node_pub_key, reply.message.body)).res?.agent_version, 'fake-b/1.0')
    // One more proper request, sent after everything above: once B answered it, B has handled the rest.
    const second = randomUUID()
    await fromC({ header: { id: second, node_id: c.id, receiver: b.id }, type: T.PEER_IDENTITY, body: protocol.PeerIdentityBody.encode({ req: {} }).finish() })
    await sniff((m) => m.from === b.id && m.message.header?.id === second, mark)
    assert.equal(b.published(), publishedByB + 2, 'B answered only the proper requests')
  })

  test('garbage on the topic is ignored; a body that does not decode gets Go\'s error reply', async () => {
    const publishedByA = a.published()
    const publishedByB = b.published()
    await c.pubsub.publish(TOPIC, randomBytes(200))
    await c.pubsub.publish(TOPIC, new Uint8Array([0xff, 0xff, 0xff, 0x01]))
    await fromC({ type: T.CHAT_COMPLETION, body: randomBytes(50) })
    await fromC({ header: { id: randomUUID(), node_id: c.id, receiver: b.id }, type: 99 as protocol.MessageType, body: new Uint8Array([0x0a, 0x00]) })
    const mark = sniffed.length
    const id = randomUUID()
    await fromC({ header: { id, node_id: c.id, receiver: b.id }, type: T.CHAT_COMPLETION, body: new Uint8Array([0x0a, 0x05, 0x01]) })
    const reply = await sniff((m) => m.from === b.id && m.message.header?.id === id, mark)
    assert.equal(reply.message.result_code, GoCode.PROTOBUF)
    const unsupported = sniffed.find((m) => m.from === b.id && m.message.type as number === 99)
    assert.equal(unsupported?.message.result_code, GoCode.UNSUPPORTED)
    assert.equal(a.published(), publishedByA)
    assert.equal(b.published(), publishedByB + 2)
    assert.equal((await chat('m', 'still fine')).choices[0].message?.content, 'answer to "still fine"')
  })

  test('size limits: an oversize request is refused before publishing, dropped unread by a smaller limit; an oversize answer is a BUFFER error', async () => {
    const publishedByA = a.published()
    await assert.rejects(chat('m', 'x'.repeat(1024 * KiB)), hasCode(ErrorCode.BUFFER))
    assert.equal(a.published(), publishedByA, 'nothing was published')
    const publishedByB = b.published()
    await assert.rejects(chat('m', 'x'.repeat(B_LIMIT), 1_500), hasCode(ErrorCode.TIMEOUT))
    assert.equal(b.published(), publishedByB, 'B ignored the message over its limit')
    await assert.rejects(chat('huge', 'hi'), hasCode(ErrorCode.BUFFER, /exceeds/))
  })

  test('handlers run at most maxConcurrent at a time; the excess is refused as busy', async () => {
    gate = deferred()
    let settled = 0
    const calls = ['1', '2', '3'].map(async (n) => await chat('slow', n).then((res) => ({ res }), (err: unknown) => ({ err })).finally(() => { settled++ }))
    await waitFor(() => settled === 1, 5_000, 'the excess request to be refused')
    // A fourth call is refused as well (a round trip later): the two are still running.
    await assert.rejects(chat('m', '4'), (err: unknown) => hasCode(ErrorCode.INTERNAL, new RegExp(BUSY_MESSAGE))(err))
    assert.equal(settled, 1, 'two are still running')
    gate.resolve()
    const outcomes = await Promise.all(calls)
    assert.equal(outcomes.filter((o) => 'res' in o).length, 2)
    const refused = outcomes.find((o) => 'err' in o) as { err: unknown }
    assert.ok(hasCode(ErrorCode.INTERNAL, new RegExp(BUSY_MESSAGE))(refused.err))
  })

  test('a request needs the service started and another node; stop() fails what is pending', async () => {
    const own = new BroadcastRpc(servicesOf(c), { topic: TOPIC, privateKey: c.key, agentVersion: 'c', log: silentLogger })
    const body = protocol.PeerIdentityBody.encode({ req: {} }).finish()
    await assert.rejects(own.request(a.node.peerId, T.PEER_IDENTITY, body, { timeoutMs: 1_000 }), hasCode(ErrorCode.INTERNAL, /not started/))
    own.serveWith(idle)
    own.afterStart()
    await assert.rejects(own.request(c.node.peerId, T.PEER_IDENTITY, body, { timeoutMs: 1_000 }), hasCode(ErrorCode.PARAM))
    gate = deferred()
    const seen = seenByA.length
    const pending = own.request(b.node.peerId, T.CHAT_COMPLETION, chatBody('slow', 'x'), { timeoutMs: 10_000 })
    // The request is on the topic (A heard it): it is pending when C stops.
    await waitFor(() => seenByA.slice(seen).some((m) => m.from === c.id && m.message.type === T.CHAT_COMPLETION), 5_000, 'the request on the topic')
    own.stop()
    await assert.rejects(pending, hasCode(ErrorCode.INTERNAL, /stopping/))
    gate.resolve()
  })
})
