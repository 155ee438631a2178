// gossipsub checks a message's signature before it looks in its seen-cache, unless it is given a "fast
// message ID" that it can check first. Without one, every copy of a message that arrives from another mesh
// peer costs a full secp256k1 verification (1.7 ms on the benchmark machine). An input node in a star
// topology receives each heartbeat back from up to D workers, which made signature checks of duplicates
// the largest part of its idle CPU and of its cost per job at N = 20 (docs/benchmarks.md, "Scale").
//
// The ID is the message's author and sequence number, exactly what the message ID (the Go node's, see
// src/p2p/patches/pubsub-go-rules.ts) is made of, so two messages with the same fast ID are the same message. gossipsub only caches a
// fast ID once its message passed validation: a forged copy that arrives first is checked and dropped
// without poisoning the cache, one that arrives later is dropped as a duplicate unchecked.

/** The part of gossipsub's RPC.Message this needs. */
export interface RawPubsubMessage { from?: Uint8Array, seqno?: Uint8Array }

export function fastMessageId (message: RawPubsubMessage): string {
  const from = message.from ?? new Uint8Array()
  const seqno = message.seqno ?? new Uint8Array()
  // The length prefix keeps (from, seqno) pairs of different lengths apart.
  return `${from.length}:${Buffer.from(from).toString('base64')}${Buffer.from(seqno).toString('base64')}`
}
