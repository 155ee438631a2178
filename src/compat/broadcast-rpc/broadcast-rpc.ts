// The Go node's "broadcast RPC" (docs/protocols.md, "Broadcast request/response"): requests and responses are protobuf `Message`s published on
// the pubsub topic, addressed by header.receiver, bodies encrypted with ./crypto.ts. We speak it so that Go
// nodes can ask us and we can ask them; between aicn nodes the point-to-point RPC is used instead.
//
// Where Go is loose we are strict, without breaking Go peers (who fill these fields honestly):
// * a request is answered only when the pubsub author (signed `from`) is the header's node_id (else anyone could
//   ask in another node's name);
// * a response is accepted only from the peer we asked, by `from` and node_id, and decrypted only with that
//   peer's own key (nobody else can answer, fail or forge a reply for our requests);
// * each request completes once, duplicates and late replies are ignored (two replies
//   to one request could crash the Go node);
// * error replies and responses are never answered (two nodes would answer each other's
//   errors forever);
// * handlers run at most `maxConcurrent` at a time, excess requests get a "busy" error reply (the
//   topic is open: anyone can send requests);
// * messages over the size limit are dropped unread, answers over it become a BUFFER error reply
//   (the Go node's publish failed, only logged, and its client waited out the whole timeout).
import { randomUUID } from 'node:crypto'
import { publicKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey, PublicKey, Startable } from '@libp2p/interface'
import { protocol } from '../../proto/index.ts'
import { AicnError, ErrorCode, defaultMessage } from '../../core/errors.ts'
import type { Logger } from '../../core/logger.ts'
import type { HostInfo } from '../../hostinfo/index.ts'
import type { PeerInfo } from '../../p2p/peer-info.ts'
import type { PubSub, PubSubMessage } from '../../p2p/pubsub.ts'
import { isBroadcast } from '../../proto/broadcast.ts'
import { hostInfoToProto } from '../../hostinfo/wire.ts'
import { fromGoCode, toGoCode } from '../codes.ts'
import { decryptBody, encryptBody } from '../crypto.ts'

/** go-libp2p-pubsub's limit for one message. */
export const MAX_BROADCAST_MESSAGE_BYTES = 1024 * 1024
export const MAX_CONCURRENT_HANDLERS = 32
export const BUSY_MESSAGE = 'node is busy, try again later'

const T = protocol.MessageType
/** How long a handler may run: the Go requester's waits (2 min; chat 3 min; image 5 min). */
const HANDLER_TIMEOUT_MS: Record<number, number> = {
  [T.PEER_IDENTITY]: 2 * 60_000,
  [T.HOST_INFO]: 2 * 60_000,
  [T.AI_PROJECT]: 2 * 60_000,
  [T.CHAT_COMPLETION]: 3 * 60_000,
  [T.IMAGE_GENERATION]: 5 * 60_000
}

export interface BroadcastHandlers {
  peerIdentity: () => Promise<PeerInfo>
  hostInfo: () => Promise<HostInfo>
  aiProjects: () => Promise<protocol.AIProjectResponse.$Properties>
  chat: (req: protocol.ChatCompletionRequest.$Properties, signal: AbortSignal) => Promise<protocol.ChatCompletionResponse.$Properties>
  image: (req: protocol.ImageGenerationRequest.$Properties, signal: AbortSignal) => Promise<protocol.ImageGenerationResponse.$Properties>
}

/** What the broadcast RPC takes from libp2p: our peer id and the pubsub service (named `pubsub`,
 * src/p2p/host.ts). */
export interface BroadcastComponents {
  peerId: PeerId
  pubsub: PubSub
}

export interface BroadcastRpcOptions {
  topic: string
  privateKey: PrivateKey
  agentVersion: string
  log: Logger
  /** largest message sent or accepted, in bytes (default 1 MiB, go-libp2p-pubsub's limit) */
  maxMessageBytes?: number
  /** handlers running at once before requests are refused as busy (default 32) */
  maxConcurrent?: number
}

export interface BroadcastCallOptions {
  signal?: AbortSignal
  timeoutMs: number
}

interface Pending {
  peer: string
  /** the peer's public key protobuf, the only key we accept an encrypted answer from */
  peerKey?: Uint8Array
  type: protocol.MessageType
  settle: (outcome: { body: Uint8Array } | { error: AicnError }) => void
}

/** A decoded `<Type>Body`: which oneof case is set, and the request if it is one. */
interface ParsedBody { data?: string, req?: unknown }

export class BroadcastRpc implements Startable {
  private readonly components: BroadcastComponents
  private readonly topic: string
  private readonly privateKey: PrivateKey
  private readonly ownKey: Uint8Array
  private readonly self: string
  private readonly agentVersion: string
  private readonly log: Logger
  private readonly maxMessageBytes: number
  private readonly maxConcurrent: number
  private readonly pending = new Map<string, Pending>()
  private handlers?: BroadcastHandlers
  private serving?: BroadcastHandlers
  private stopping = new AbortController()
  private active = 0
  private readonly onMessage = (event: CustomEvent<PubSubMessage>): void => { this.receive(event.detail) }

  constructor (components: BroadcastComponents, options: BroadcastRpcOptions) {
    this.components = components
    this.topic = options.topic
    this.privateKey = options.privateKey
    this.ownKey = publicKeyToProtobuf(options.privateKey.publicKey)
    this.self = components.peerId.toString()
    this.agentVersion = options.agentVersion
    this.log = options.log
    this.maxMessageBytes = options.maxMessageBytes ?? MAX_BROADCAST_MESSAGE_BYTES
    this.maxConcurrent = options.maxConcurrent ?? MAX_CONCURRENT_HANDLERS
  }

  readonly [Symbol.toStringTag] = '@aicn/broadcast-rpc'

  /** What answers Go nodes' requests (src/compat/broadcast-rpc/go-jobs.ts). Set it before the node starts. */
  serveWith (handlers: BroadcastHandlers): void {
    this.serving = handlers
  }

  start (): void {}

  /** Once pubsub runs: listens on the topic, answers requests addressed to us and completes our own. */
  afterStart (): void {
    if (this.handlers !== undefined || this.serving === undefined) return
    this.handlers = this.serving
    this.stopping = new AbortController()
    const pubsub = this.components.pubsub
    if (!pubsub.getTopics().includes(this.topic)) pubsub.subscribe(this.topic)
    pubsub.addEventListener('message', this.onMessage)
  }

  /** libp2p calls this before it stops pubsub. */
  beforeStop (): void {
    this.stop()
  }

  /** Stops listening, aborts running handlers and fails the requests still waiting. The topic stays
   * subscribed: heartbeats share it. */
  stop (): void {
    if (this.handlers === undefined) return
    this.handlers = undefined
    this.components.pubsub.removeEventListener('message', this.onMessage)
    this.stopping.abort()
    for (const entry of [...this.pending.values()]) entry.settle({ error: new AicnError(ErrorCode.INTERNAL, 'the node is stopping') })
  }

  /** Asks `peer` and returns its serialized `<Type>Body{res}`. `body` is the serialized `<Type>Body{req}`.
   * Throws an AicnError with our code: the peer's result code, TIMEOUT, BUFFER, ENCRYPT, DECRYPT, … */
  async request (peer: PeerId, type: protocol.MessageType, body: Uint8Array, options: BroadcastCallOptions): Promise<Uint8Array> {
    if (this.handlers === undefined) throw new AicnError(ErrorCode.INTERNAL, 'the broadcast RPC is not started')
    const receiver = peer.toString()
    if (receiver === this.self) throw new AicnError(ErrorCode.PARAM, 'a node cannot ask itself over the topic')
    options.signal?.throwIfAborted()

    const id = randomUUID()
    const peerKey = secp256k1Key(peer.publicKey)
    let sealed: Uint8Array = body
    let nodePubKey: Uint8Array = new Uint8Array(0)
    if (peerKey !== undefined) {
      sealed = encryptBody(this.privateKey, peerKey, body)
      nodePubKey = this.ownKey
    } else if (type === T.CHAT_COMPLETION || type === T.IMAGE_GENERATION) {
      // As the Go node: prompts and answers are never sent in clear; simple queries may be.
      throw new AicnError(ErrorCode.ENCRYPT, `cannot encrypt for node ${receiver}: its id does not carry a secp256k1 key`)
    }
    const bytes = protocol.Message.encode({
      header: { client_version: this.agentVersion, timestamp: nowSeconds(), id, node_id: this.self, receiver, node_pub_key: nodePubKey },
      type,
      body: sealed
    }).finish()
    if (bytes.byteLength > this.maxMessageBytes) {
      throw new AicnError(ErrorCode.BUFFER, `the request (${bytes.byteLength} bytes) exceeds the ${this.maxMessageBytes}-byte message limit`)
    }

    const answer = this.register(id, receiver, peerKey, type, options)
    // It may settle (timeout, abort) while publish() is still running, before we await it.
    answer.catch(() => {})
    try {
      await this.components.pubsub.publish(this.topic, bytes)
    } catch (err) {
      this.pending.get(id)?.settle({ error: new AicnError(ErrorCode.ROUTING, `could not publish the request: ${(err as Error).message}`, { cause: err }) })
    }
    return await answer
  }

  /** The pending entry for a request: settles exactly once (answer, error, timeout, abort or stop) and
   * leaves the table in the same synchronous step, so a duplicate or late reply finds nothing. */
  private async register (id: string, peer: string, peerKey: PublicKey | undefined, type: protocol.MessageType, options: BroadcastCallOptions): Promise<Uint8Array> {
    return await new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => { entry.settle({ error: new AicnError(ErrorCode.TIMEOUT, `the request to node ${peer} was cancelled`) }) }
      const timer = setTimeout(() => {
        entry.settle({ error: new AicnError(ErrorCode.TIMEOUT, `node ${peer} did not answer within ${options.timeoutMs} ms`) })
      }, options.timeoutMs)
      const entry: Pending = {
        peer,
        peerKey: peerKey === undefined ? undefined : publicKeyToProtobuf(peerKey),
        type,
        settle: (outcome) => {
          if (this.pending.get(id) !== entry) return
          this.pending.delete(id)
          clearTimeout(timer)
          options.signal?.removeEventListener('abort', onAbort)
          if ('error' in outcome) reject(outcome.error)
          else resolve(outcome.body)
        }
      }
      this.pending.set(id, entry)
      options.signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** The Go node's dispatch by message type, with the checks that make it safe on an open topic. */
  private receive (message: PubSubMessage): void {
    if (message.topic !== this.topic || message.type !== 'signed' || message.from === undefined) return
    if (message.data.byteLength > this.maxMessageBytes) return
    let decoded: protocol.Message
    try {
      decoded = protocol.Message.decode(message.data)
    } catch {
      return
    }
    // Broadcasts are heartbeats (handled elsewhere); the rest must be addressed to us by someone else.
    if (isBroadcast(decoded) || decoded.header == null) return
    const header = decoded.header
    if (header.node_id === this.self || header.receiver !== this.self) return
    const from = message.from.toString()

    const pending = this.pending.get(header.id ?? '')
    if (pending !== undefined) {
      if (from !== pending.peer || header.node_id !== pending.peer) {
        this.log.debug({ id: header.id, from, nodeId: header.node_id, asked: pending.peer }, 'ignored a reply from a node we did not ask')
        return
      }
      this.complete(pending, decoded)
      return
    }
    // Dead-loop rule: an error reply to nothing pending is dropped, never answered.
    if (decoded.result_code !== 0) return
    if (from !== header.node_id) {
      this.log.debug({ from, nodeId: header.node_id }, 'ignored a request sent on behalf of another node')
      return
    }
    void this.serve(decoded, message.from).catch((err: Error) => {
      this.log.warn({ err: err.message, id: header.id }, 'broadcast request failed')
    })
  }

  /** Settles our pending request with the asked peer's reply. */
  private complete (pending: Pending, message: protocol.Message): void {
    const peer = pending.peer
    if (message.result_code !== 0) {
      const code = fromGoCode(message.result_code)
      pending.settle({ error: new AicnError(code, message.result_message !== '' ? message.result_message : defaultMessage(code)) })
      return
    }
    if (message.type !== pending.type) {
      pending.settle({ error: new AicnError(ErrorCode.PROTOBUF, `node ${peer} answered a type ${pending.type} request with type ${message.type}`) })
      return
    }
    try {
      const nodePubKey = message.header?.node_pub_key ?? new Uint8Array(0)
      let body = message.body
      if (nodePubKey.byteLength > 0 && body.byteLength > 0) {
        if (pending.peerKey === undefined || !equalBytes(nodePubKey, pending.peerKey)) {
          throw new AicnError(ErrorCode.DECRYPT, `node ${peer} encrypted its answer with a key that is not its own`)
        }
        body = decryptBody(this.privateKey, nodePubKey, body)
      }
      if (parseBody(message.type, body).data !== 'res') throw new AicnError(ErrorCode.PROTOBUF, `node ${peer} sent no response in its answer`)
      pending.settle({ body })
    } catch (err) {
      pending.settle({ error: err instanceof AicnError ? err : new AicnError(ErrorCode.PROTOBUF, (err as Error).message) })
    }
  }

  /** Answers a request addressed to us (the sender is authenticated by the caller). */
  private async serve (request: protocol.Message, requester: PeerId): Promise<void> {
    const handlers = this.handlers
    if (handlers === undefined) return
    const type = request.type
    const requesterKey = secp256k1Key(requester.publicKey)
    let reply: { body: Uint8Array, timestamp?: number } | { error: AicnError }
    try {
      if (HANDLER_TIMEOUT_MS[type] === undefined) throw new AicnError(ErrorCode.UNSUPPORTED, 'Not supported')
      const parsed = parseBody(type, this.open(request, requesterKey))
      // A response (late, duplicated or not ours) is never answered.
      if (parsed.data === 'res') return
      if (parsed.data !== 'req') throw new AicnError(ErrorCode.PROTOBUF, 'No request or response found')
      if (this.active >= this.maxConcurrent) throw new AicnError(ErrorCode.INTERNAL, BUSY_MESSAGE)
      this.active++
      try {
        const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(HANDLER_TIMEOUT_MS[type])])
        reply = await this.execute(handlers, type, parsed.req, signal)
      } finally {
        this.active--
      }
    } catch (err) {
      reply = { error: err instanceof AicnError ? err : new AicnError(ErrorCode.INTERNAL, (err as Error).message, { cause: err }) }
    }
    if (this.handlers === undefined) return
    await this.reply(request, requesterKey, reply)
  }

  /** The request's body in clear: decrypted when it carries a key and a body, as is otherwise (Go). */
  private open (request: protocol.Message, requesterKey: PublicKey | undefined): Uint8Array {
    const nodePubKey = request.header?.node_pub_key ?? new Uint8Array(0)
    if (nodePubKey.byteLength === 0 || request.body.byteLength === 0) return request.body
    // Go nodes put their own key here; anything else is not the requester speaking.
    if (requesterKey === undefined || !equalBytes(nodePubKey, publicKeyToProtobuf(requesterKey))) {
      throw new AicnError(ErrorCode.DECRYPT, 'node_pub_key is not the requesting node\'s key')
    }
    return decryptBody(this.privateKey, nodePubKey, request.body)
  }

  private async execute (handlers: BroadcastHandlers, type: protocol.MessageType, req: unknown, signal: AbortSignal): Promise<{ body: Uint8Array, timestamp?: number }> {
    switch (type) {
      case T.PEER_IDENTITY: {
        const info = await handlers.peerIdentity()
        const res = { protocol_version: info.protocol_version, agent_version: info.agent_version, listen_addrs: info.addresses, protocols: info.protocols }
        return { body: protocol.PeerIdentityBody.encode({ res }).finish() }
      }
      case T.HOST_INFO:
        return { body: protocol.HostInfoBody.encode({ res: hostInfoToProto(await handlers.hostInfo()) }).finish() }
      case T.AI_PROJECT:
        return { body: protocol.AIProjectBody.encode({ res: await handlers.aiProjects() }).finish() }
      case T.CHAT_COMPLETION: {
        const res = await handlers.chat(req as protocol.ChatCompletionRequest, signal)
        return { body: protocol.ChatCompletionBody.encode({ res }).finish(), timestamp: Number(res.created ?? 0) }
      }
      case T.IMAGE_GENERATION: {
        const res = await handlers.image(req as protocol.ImageGenerationRequest, signal)
        return { body: protocol.ImageGenerationBody.encode({ res }).finish(), timestamp: Number(res.created ?? 0) }
      }
      default:
        throw new AicnError(ErrorCode.UNSUPPORTED, 'Not supported')
    }
  }

  /** Publishes the answer (encrypted to the requester when it has a secp256k1 key, else in clear as Go
   * does), or an error reply with the Go node's code and no body. */
  private async reply (request: protocol.Message, requesterKey: PublicKey | undefined, outcome: { body: Uint8Array, timestamp?: number } | { error: AicnError }): Promise<void> {
    const header = {
      client_version: this.agentVersion,
      timestamp: nowSeconds(),
      id: request.header?.id ?? '',
      node_id: this.self,
      receiver: request.header?.node_id ?? ''
    }
    let bytes: Uint8Array | undefined
    if ('body' in outcome) {
      const sealed = requesterKey === undefined ? outcome.body : encryptBody(this.privateKey, requesterKey, outcome.body)
      bytes = protocol.Message.encode({
        header: { ...header, timestamp: outcome.timestamp ?? header.timestamp, node_pub_key: requesterKey === undefined ? undefined : this.ownKey },
        type: request.type,
        body: sealed
      }).finish()
      if (bytes.byteLength > this.maxMessageBytes) {
        outcome = { error: new AicnError(ErrorCode.BUFFER, `the answer (${bytes.byteLength} bytes) exceeds the ${this.maxMessageBytes}-byte message limit`) }
        bytes = undefined
      }
    }
    if (bytes === undefined && 'error' in outcome) {
      this.log.debug({ id: header.id, to: header.receiver, code: outcome.error.code, err: outcome.error.message }, 'broadcast request answered with an error')
      bytes = protocol.Message.encode({
        header,
        type: request.type,
        result_code: toGoCode(outcome.error.code),
        result_message: outcome.error.message
      }).finish()
    }
    if (bytes === undefined) return
    await this.components.pubsub.publish(this.topic, bytes)
  }
}

/** Decodes a `<Type>Body`; throws an AicnError (PROTOBUF) when the bytes are not one. */
function parseBody (type: protocol.MessageType, bytes: Uint8Array): ParsedBody {
  try {
    switch (type) {
      case T.PEER_IDENTITY: return protocol.PeerIdentityBody.decode(bytes)
      case T.HOST_INFO: return protocol.HostInfoBody.decode(bytes)
      case T.AI_PROJECT: return protocol.AIProjectBody.decode(bytes)
      case T.CHAT_COMPLETION: return protocol.ChatCompletionBody.decode(bytes)
      case T.IMAGE_GENERATION: return protocol.ImageGenerationBody.decode(bytes)
    }
  } catch (err) {
    throw new AicnError(ErrorCode.PROTOBUF, `Message type and body do not match: ${(err as Error).message}`)
  }
  throw new AicnError(ErrorCode.UNSUPPORTED, 'Not supported')
}

function secp256k1Key (key: PublicKey | undefined): PublicKey | undefined {
  return key?.type === 'secp256k1' ? key : undefined
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i])
}

function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}
