// Peers without sockets for the unit tests of our libp2p services: each peer gets the components a
// protocol service takes (src/p2p/components.ts), and opening a stream to another peer creates an
// in-memory stream pair (@libp2p/utils streamPair) whose far end goes to the handler that peer
// registered. Real TCP, noise and yamux stay in the integration tests.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import type { Connection, PeerId, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import type { ProtocolComponents } from '../../src/p2p/components.ts'

export interface MemoryPeer {
  peerId: PeerId
  components: ProtocolComponents
  /** the protocols this peer handles now */
  protocols: () => string[]
  /** peers whose connections this peer closed (a budget's penalty) */
  hungUp: string[]
}

export async function memoryPeers (count: number): Promise<MemoryPeer[]> {
  const handlers = new Map<string, Map<string, { handler: StreamHandler, options?: StreamHandlerOptions }>>()
  const peers: MemoryPeer[] = []
  for (let i = 0; i < count; i++) {
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const own = new Map<string, { handler: StreamHandler, options?: StreamHandlerOptions }>()
    handlers.set(peerId.toString(), own)
    const hungUp: string[] = []
    peers.push({
      peerId,
      hungUp,
      protocols: () => [...own.keys()].sort(),
      components: {
        peerId,
        registrar: {
          handle: async (protocol, handler, options) => {
            if (own.has(protocol)) throw new Error(`${protocol} is handled already`)
            own.set(protocol, { handler, options })
          },
          unhandle: async (protocol) => { own.delete(protocol) }
        },
        connectionManager: {
          openStream: async (peer, protocol) => await open(peerId, peer, Array.isArray(protocol) ? protocol : [protocol]),
          closeConnections: async (peer) => { hungUp.push(peer.toString()) }
        }
      }
    })
  }

  async function open (from: PeerId, to: PeerId, protocols: string[]): Promise<Stream> {
    const remote = handlers.get(to.toString())
    if (remote === undefined) throw new Error(`no route to ${to.toString()}`)
    const protocol = protocols.find((p) => remote.has(p))
    if (protocol === undefined) throw new Error('protocol selection failed')
    const [outbound, inbound] = await streamPair({ protocol })
    inbound.protocol = protocol
    const connection = { remotePeer: from } as unknown as Connection
    void Promise.resolve(remote.get(protocol)?.handler(inbound, connection)).catch((err: Error) => { inbound.abort(err) })
    return outbound
  }

  return peers
}
