// Node-to-node queries (peer identity, host info, a node's projects) on a point-to-point stream:
// one length-prefixed protobuf `Message` (the Go node's envelope, proto/aicn.proto) each way.
// Unlike the Go node's broadcast RPC, nothing is flooded to the network, the answer can only come from
// the peer we asked, and a request whose header claims another sender is refused.
import { randomUUID } from 'node:crypto'
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, Startable, Stream } from '@libp2p/interface'
import { protocol } from '../../proto/index.ts'
import { AicnError, ErrorCode, defaultMessage, statusForCode } from '../../core/errors.ts'
import type { Logger } from '../../core/logger.ts'
import type { ProtocolComponents } from '../../p2p/components.ts'

export const RPC_PROTOCOL = '/aicn/rpc/1.0.0'

export interface RpcOptions {
  agentVersion: string
  log: Logger
  /** largest request or response accepted, in bytes (default 4 MiB) */
  maxMessageBytes?: number
  /** how long a request may take end to end (default 15 s) */
  timeoutMs?: number
  /** largest request served, in bytes (default 64 KiB: queries are a few hundred bytes; 64 streams per
   * connection could otherwise each park 4 MiB of an unfinished message, issue 19) */
  maxRequestBytes?: number
  /** a requester has this long to send its whole request (default 5 s) */
  requestTimeoutMs?: number
  /** false: answer nobody (a node in Go-wire mode speaks only the Go node's protocols); requests still
   * work. Default true. */
  serve?: boolean
}

export interface RpcCallOptions {
  /** aborts the call, e.g. when the HTTP client went away */
  signal?: AbortSignal
  /** overrides the service's default timeout for this call */
  timeoutMs?: number
}

/** Answers a request: returns the serialized `<Type>Body{res}`, or throws an AicnError. */
export type RpcHandler = (request: protocol.Message, remote: PeerId) => Promise<Uint8Array>

/** What the RPC service takes from libp2p (src/p2p/components.ts). */
export type RpcComponents = ProtocolComponents

export class RpcService implements Startable {
  private readonly components: RpcComponents
  private readonly serves: boolean
  private serving = false
  private readonly handlers = new Map<number, RpcHandler>()
  private readonly agentVersion: string
  private readonly log: Logger
  private readonly maxMessageBytes: number
  private readonly maxRequestBytes: number
  private readonly requestTimeoutMs: number
  readonly timeoutMs: number

  constructor (components: RpcComponents, options: RpcOptions) {
    this.components = components
    this.serves = options.serve ?? true
    this.agentVersion = options.agentVersion
    this.log = options.log
    this.maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024
    this.timeoutMs = options.timeoutMs ?? 15_000
    this.maxRequestBytes = options.maxRequestBytes ?? 64 * 1024
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5_000
  }

  handle (type: protocol.MessageType, handler: RpcHandler): void {
    this.handlers.set(type, handler)
  }

  readonly [Symbol.toStringTag] = '@aicn/rpc'

  /** Called by libp2p as the node starts, before it listens: the handler is in place for the first
   * identify our peers get. */
  async start (): Promise<void> {
    if (!this.serves || this.serving) return
    this.serving = true
    await this.components.registrar.handle(RPC_PROTOCOL, (stream, connection) => {
      this.serve(stream, connection).catch((err: Error) => {
        this.log.debug({ err: err.message, peer: connection.remotePeer.toString() }, 'rpc stream failed')
        stream.abort(err)
      })
    }, { maxInboundStreams: 64 })
  }

  async stop (): Promise<void> {
    if (!this.serving) return
    this.serving = false
    await this.components.registrar.unhandle(RPC_PROTOCOL)
  }

  /** Sends a request to `peerId` and returns the response body, or throws an AicnError. */
  async request (peerId: PeerId, type: protocol.MessageType, body: Uint8Array, call: RpcCallOptions = {}): Promise<Uint8Array> {
    const timeoutMs = call.timeoutMs ?? this.timeoutMs
    const timeout = AbortSignal.timeout(timeoutMs)
    const options = { signal: call.signal == null ? timeout : AbortSignal.any([call.signal, timeout]) }
    const id = randomUUID()
    const request = protocol.Message.encode({
      header: this.header(id, peerId.toString()),
      type,
      body
    }).finish()

    let stream: Stream
    try {
      stream = await this.components.connectionManager.openStream(peerId, [RPC_PROTOCOL], options)
    } catch (err) {
      throw dialError(peerId, err, timeout, timeoutMs)
    }
    try {
      const lp = lpStream(stream, { maxDataLength: this.maxMessageBytes })
      await lp.write(request, options)
      const bytes = await lp.read(options)
      await stream.close(options).catch(() => {})
      const response = decode(bytes.subarray())
      if (response.header?.id !== id || response.header?.node_id !== peerId.toString()) {
        throw new AicnError(ErrorCode.PROTOBUF, `node ${peerId.toString()} answered with a mismatched header`)
      }
      if (response.result_code !== 0) {
        throw new AicnError(response.result_code, response.result_message !== '' ? response.result_message : defaultMessage(response.result_code),
          { status: statusForCode(response.result_code) })
      }
      return response.body
    } catch (err) {
      stream.abort(err as Error)
      if (err instanceof AicnError) throw err
      if (timeout.aborted) throw new AicnError(ErrorCode.TIMEOUT, `node ${peerId.toString()} did not answer within ${timeoutMs} ms`)
      throw new AicnError(ErrorCode.STREAM, `request to node ${peerId.toString()} failed: ${(err as Error).message}`)
    }
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const options = { signal: AbortSignal.timeout(this.timeoutMs) }
    const lp = lpStream(stream, { maxDataLength: this.maxRequestBytes })
    const request = decode((await lp.read({ signal: AbortSignal.timeout(this.requestTimeoutMs) })).subarray())
    const remote = connection.remotePeer
    let reply: protocol.IMessage
    try {
      // The header must name the peer at the other end of this authenticated connection.
      if (request.header?.node_id !== remote.toString()) {
        throw new AicnError(ErrorCode.PERMISSION, 'header node_id does not match the connection\'s peer')
      }
      const handler = this.handlers.get(request.type)
      if (handler == null) throw new AicnError(ErrorCode.UNSUPPORTED, `message type ${request.type} is not supported`)
      reply = { type: request.type, body: await handler(request, remote) }
    } catch (err) {
      const error = err instanceof AicnError ? err : new AicnError(ErrorCode.INTERNAL, (err as Error).message)
      reply = { type: request.type, result_code: error.code, result_message: error.message }
    }
    reply.header = this.header(request.header?.id ?? '', remote.toString())
    // (maxDataLength bounds only what is read: the answer may be larger than any request.)
    await lp.write(protocol.Message.encode(reply).finish(), options)
    await stream.close(options)
  }

  private header (id: string, receiver: string): protocol.IMessageHeader {
    return {
      client_version: this.agentVersion,
      timestamp: Math.floor(Date.now() / 1000),
      id,
      node_id: this.components.peerId.toString(),
      receiver
    }
  }
}

function decode (bytes: Uint8Array): protocol.Message {
  try {
    return protocol.Message.decode(bytes)
  } catch (err) {
    throw new AicnError(ErrorCode.PROTOBUF, `malformed message: ${(err as Error).message}`)
  }
}

function dialError (peerId: PeerId, err: unknown, timeout: AbortSignal, timeoutMs: number): AicnError {
  if (timeout.aborted) return new AicnError(ErrorCode.TIMEOUT, `node ${peerId.toString()} could not be reached within ${timeoutMs} ms`)
  const message = (err as Error).message
  return new AicnError(ErrorCode.ROUTING, `cannot reach node ${peerId.toString()}: ${message}`, { status: 502, cause: err })
}
