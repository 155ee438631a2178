// Which wire protocol to use with a peer: our native ones with aicn nodes, the Go node's with Go nodes
// (identify tells which a peer speaks), transparently for the HTTP API and the gateway. A node in Go-wire
// mode uses only the Go node's protocols.
import type { PeerId } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { Host } from '../p2p/host.ts'
import { locatePeer } from '../p2p/locate.ts'
import type { protocol } from '../proto/index.ts'
import type { BroadcastRpc } from '../compat/broadcast-rpc/index.ts'
import type { ChatProxy } from '../compat/chat-proxy/index.ts'
import { JOB_PROTOCOLS, type JobProtocol } from '../protocols/job/index.ts'
import { RPC_PROTOCOL, type RpcCallOptions, type RpcService } from '../protocols/rpc/index.ts'
import type { QueryRequester } from '../protocols/query-requester.ts'
import type { JobRequest, JobResponse, JobSender } from '../core/job-types.ts'

const DEFAULT_QUERY_TIMEOUT_MS = 15_000
/** A signal for calls that nobody cancels. */
const NEVER = new AbortController().signal

export class PeerTransport implements QueryRequester, JobSender {
  private readonly host: Host
  private readonly rpc: RpcService
  private readonly jobs: JobProtocol
  private readonly broadcast: BroadcastRpc
  private readonly chatProxy: ChatProxy
  private readonly goWire: boolean
  /** each peer's protocols as identify last reported them, so a job costs no peer-store read */
  private readonly protocols = new Map<string, string[]>()

  constructor (deps: { host: Host, rpc: RpcService, jobs: JobProtocol, broadcast: BroadcastRpc, chatProxy: ChatProxy, goWire: boolean }) {
    this.host = deps.host
    this.host.addEventListener('peer:identify', (event) => { this.protocols.set(event.detail.peerId.toString(), event.detail.protocols) })
    this.host.addEventListener('peer:disconnect', (event) => { this.protocols.delete(event.detail.toString()) })
    this.rpc = deps.rpc
    this.jobs = deps.jobs
    this.broadcast = deps.broadcast
    this.chatProxy = deps.chatProxy
    this.goWire = deps.goWire
  }

  /** One deadline, `call.timeoutMs` or 15 s, covers the whole query: finding the node (a DHT lookup when
   * we know no address for it, itself at most 10 s: p2p/locate.ts), then asking it. */
  async request (peer: PeerId, type: protocol.MessageType, body: Uint8Array, call: RpcCallOptions = {}): Promise<Uint8Array> {
    const deadline = Date.now() + (call.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS)
    const rest = (): { signal?: AbortSignal, timeoutMs: number } => ({ signal: call.signal, timeoutMs: Math.max(1, deadline - Date.now()) })
    const viaBroadcast = async (): Promise<Uint8Array> => await this.broadcast.request(peer, type, body, rest())
    // Go nodes are asked through pubsub, which needs no address of theirs.
    if (this.goWire || await this.speaks(peer, [RPC_PROTOCOL]) === false) return await viaBroadcast()
    try {
      await locatePeer(this.host, peer, { signal: call.signal ?? NEVER, deadline })
      return await this.rpc.request(peer, type, body, rest())
    } catch (err) {
      // We did not know the peer yet; now that identify ran, it may turn out to be a Go node.
      if (isRouting(err) && await this.speaks(peer, [RPC_PROTOCOL]) === false) return await viaBroadcast()
      throw err
    }
  }

  async run (peer: PeerId, request: JobRequest, signal: AbortSignal): Promise<JobResponse> {
    // A node we have no address for is looked up with a deadline of its own (404 when the network does
    // not know it), not for as long as the job may run.
    await locatePeer(this.host, peer, { signal, deadline: request.head.deadline })
    if (this.goWire || await this.speaks(peer, JOB_PROTOCOLS) === false) return await this.chatProxy.run(peer, request, signal)
    try {
      return await this.jobs.run(peer, request, signal)
    } catch (err) {
      if (isRouting(err) && await this.speaks(peer, JOB_PROTOCOLS) === false) return await this.chatProxy.run(peer, request, signal)
      throw err
    }
  }

  /** true / false (speaks one of `protocolIds`) once identify has told us the peer's protocols; undefined
   * while we do not know. */
  private async speaks (peer: PeerId, protocolIds: string[]): Promise<boolean | undefined> {
    let protocols = this.protocols.get(peer.toString())
    if (protocols === undefined) {
      try {
        protocols = (await this.host.peerStore.get(peer)).protocols
      } catch {
        return undefined
      }
    }
    return protocols.length === 0 ? undefined : protocolIds.some((id) => protocols.includes(id))
  }
}

function isRouting (err: unknown): boolean {
  return err instanceof AicnError && err.code === ErrorCode.ROUTING
}
