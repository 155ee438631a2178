// Pre-shared keys for libp2p private networks. The config holds 64 hex characters (as the Go node);
// @libp2p/pnet wants the swarm-key file format, so we build that from the hex.
import { randomBytes } from 'node:crypto'

export const PSK_HEX_PATTERN = /^[0-9a-fA-F]{64}$/

export function generatePskHex (): string {
  return randomBytes(32).toString('hex')
}

/** The bytes of a kubo-style `swarm.key` file for a 64-hex-character key. */
export function swarmKeyFromHex (hex: string): Uint8Array {
  if (!PSK_HEX_PATTERN.test(hex)) {
    throw new Error('a pre-shared key must be exactly 64 hex characters')
  }
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${hex.toLowerCase()}`)
}
