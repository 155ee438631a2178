// Peers without sockets for the unit tests of our libp2p services: each peer gets the components a
// protocol service takes (src/p2p/components.ts), and opening a stream to another peer of the same
// network creates an in-memory stream pair (@libp2p/utils streamPair) whose far end goes to the handler
// that peer registered. `host` is the same peer behind the few calls of libp2p's node API that tests
// make (handle, dialProtocol, dial, stop). Real TCP, noise and yamux stay in the integration tests and in
// the wire-level unit tests (job-protocol, job-budgets, compat-broadcast).
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import type { Connection, PeerId, PrivateKey, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { ProtocolComponents } from '../../src/p2p/components.ts'

export interface MemoryHost {
  peerId: PeerId
  handle: (protocols: string | string[], handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
  unhandle: (protocols: string | string[]) => Promise<void>
  dialProtocol: (peer: PeerId, protocols: string | string[]) => Promise<Stream>
  hangUp: (peer: PeerId) => Promise<void>
  /** peers of one network reach each other without dialling: nothing to do */
  dial: (addr?: Multiaddr) => Promise<void>
  getMultiaddrs: () => Multiaddr[]
  /** one connection that holds every stream of this peer still open */
  getConnections: () => Array<Pick<Connection, 'streams'>>
  /** no events are dispatched: peers do not identify each other */
  addEventListener: (type: string, listener: unknown) => void
  removeEventListener: (type: string, listener: unknown) => void
  /** aborts every stream this peer has, both ways, and removes its handlers */
  stop: () => Promise<void>
}

export interface MemoryPeer {
  peerId: PeerId
  components: ProtocolComponents
  host: MemoryHost
  /** the protocols this peer handles now */
  protocols: () => string[]
  /** peers whose connections this peer closed (a budget's penalty) */
  hungUp: string[]
}

interface Registered { handler: StreamHandler, options?: StreamHandlerOptions }

/** Peers that reach each other, and nobody else. */
export class MemoryNetwork {
  private readonly handlers = new Map<string, Map<string, Registered>>()
  private readonly streams = new Map<string, Set<Stream>>()

  /** A new peer of this network, with `privateKey`'s id (a new Ed25519 key by default). */
  async peer (privateKey?: PrivateKey): Promise<MemoryPeer> {
    const peerId = peerIdFromPrivateKey(privateKey ?? await generateKeyPair('Ed25519'))
    const id = peerId.toString()
    const own = new Map<string, Registered>()
    this.handlers.set(id, own)
    this.streams.set(id, new Set())
    const hungUp: string[] = []
    const components: ProtocolComponents = {
      peerId,
      registrar: {
        handle: async (protocol, handler, options) => {
          if (own.has(protocol)) throw new Error(`${protocol} is handled already`)
          own.set(protocol, { handler, options })
        },
        unhandle: async (protocol) => { own.delete(protocol) }
      },
      connectionManager: {
        openStream: async (peer, protocol) => await this.open(peerId, peer, Array.isArray(protocol) ? protocol : [protocol]),
        closeConnections: async (peer) => { hungUp.push(peer.toString()) }
      }
    }
    const list = (protocols: string | string[]): string[] => Array.isArray(protocols) ? protocols : [protocols]
    const host: MemoryHost = {
      peerId,
      handle: async (protocols, handler, options) => { for (const p of list(protocols)) await components.registrar.handle(p, handler, options) },
      unhandle: async (protocols) => { for (const p of list(protocols)) await components.registrar.unhandle(p) },
      dialProtocol: async (peer, protocols) => await components.connectionManager.openStream(peer, protocols),
      hangUp: async (peer) => { await components.connectionManager.closeConnections(peer) },
      dial: async () => {},
      getMultiaddrs: () => [],
      getConnections: () => [{ streams: [...this.streams.get(id) ?? []] }],
      addEventListener: () => {},
      removeEventListener: () => {},
      stop: async () => {
        own.clear()
        for (const stream of this.streams.get(id) ?? []) stream.abort(new Error('the peer stopped'))
      }
    }
    return { peerId, components, host, hungUp, protocols: () => [...own.keys()].sort() }
  }

  private async open (from: PeerId, to: PeerId, protocols: string[]): Promise<Stream> {
    const remote = this.handlers.get(to.toString())
    if (remote === undefined) throw new Error(`no route to ${to.toString()}`)
    const protocol = protocols.find((p) => remote.has(p))
    if (protocol === undefined) throw new Error('protocol selection failed')
    const [outbound, inbound] = await streamPair({ protocol })
    inbound.protocol = protocol
    this.track(from, outbound)
    this.track(to, inbound)
    const connection = { remotePeer: from } as unknown as Connection
    void Promise.resolve(remote.get(protocol)?.handler(inbound, connection)).catch((err: Error) => { inbound.abort(err) })
    return outbound
  }

  private track (peer: PeerId, stream: Stream): void {
    const streams = this.streams.get(peer.toString())
    streams?.add(stream)
    stream.addEventListener('close', () => { streams?.delete(stream) }, { once: true })
  }
}

/** `count` peers of one network. */
export async function memoryPeers (count: number): Promise<MemoryPeer[]> {
  const network = new MemoryNetwork()
  return await Promise.all(Array.from({ length: count }, async () => await network.peer()))
}

/** A job runner that holds every job until the job is aborted (a node stopping, a requester gone), and
 * `running`, which resolves once the first job began. */
export function runnerHeldUntilAborted (): { runner: (request: unknown, signal: AbortSignal) => Promise<never>, running: Promise<void> } {
  let began!: () => void
  const running = new Promise<void>((resolve) => { began = resolve })
  const runner = async (_request: unknown, signal: AbortSignal): Promise<never> => {
    began()
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
    throw signal.reason
  }
  return { runner, running }
}
