// Node ids from user input (HTTP parameters, job targets), parsed once and cached.
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../core/errors.ts'

/** Parsed node ids, since parsing a secp256k1 id (its inlined public key) costs about 0.2 ms and the
 * same few ids come back with every job. Bounded: cleared when it grows past PEER_ID_CACHE_SIZE. */
const peerIds = new Map<string, PeerId>()
const PEER_ID_CACHE_SIZE = 10_000

/** Parses a node id from user input, with the API's parameter error. */
export function parsePeerId (nodeId: string): PeerId {
  const cached = peerIds.get(nodeId)
  if (cached !== undefined) return cached
  let peerId: PeerId
  try {
    peerId = peerIdFromString(nodeId)
  } catch {
    throw new AicnError(ErrorCode.PARAM, `"${nodeId}" is not a valid node id`)
  }
  if (peerIds.size >= PEER_ID_CACHE_SIZE) peerIds.clear()
  peerIds.set(nodeId, peerId)
  return peerId
}
