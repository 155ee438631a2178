// Body encryption of the Go node's broadcast RPC (docs/protocols.md, "Broadcast request/response"), byte for byte: ECDH on secp256k1, the
// shared point's X coordinate (32 bytes, big-endian) used directly as the AES-256-GCM key, a random 12-byte
// nonce, no AAD; wire = nonce ‖ ciphertext ‖ tag. This construction is weak (no KDF, one static key per
// node pair, nothing binds the header) but it is what Go nodes speak, so it only lives at this boundary.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey, PublicKey } from '@libp2p/interface'
import { AicnError, ErrorCode } from '../core/errors.ts'

const NONCE_BYTES = 12
const TAG_BYTES = 16

export interface EncryptOptions {
  /** fixed nonce for test vectors; never pass one in production (a repeated nonce breaks GCM) */
  nonce?: Uint8Array
}

/** Encrypts a body for `peerPublicKey` (a libp2p secp256k1 key, or a 33/65-byte SEC1 point). */
export function encryptBody (ownPrivateKey: PrivateKey, peerPublicKey: PublicKey | Uint8Array, plaintext: Uint8Array, options: EncryptOptions = {}): Uint8Array {
  let key: Uint8Array
  try {
    key = sharedKey(ownPrivateKey, peerPoint(peerPublicKey))
  } catch (err) {
    throw new AicnError(ErrorCode.ENCRYPT, `cannot encrypt: ${(err as Error).message}`, { cause: err })
  }
  const nonce = options.nonce ?? randomBytes(NONCE_BYTES)
  if (nonce.byteLength !== NONCE_BYTES) throw new AicnError(ErrorCode.ENCRYPT, `the nonce must be ${NONCE_BYTES} bytes`)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  const sealed = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  return new Uint8Array(sealed.buffer, sealed.byteOffset, sealed.byteLength)
}

/** Decrypts a body sent by the holder of `senderPublicKeyProtobuf` (a header's node_pub_key: the libp2p
 * public key protobuf, 37 bytes for a compressed secp256k1 key). Throws an AicnError (DECRYPT) when the
 * key is not secp256k1, the input is too short or the tag does not verify. */
export function decryptBody (ownPrivateKey: PrivateKey, senderPublicKeyProtobuf: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.byteLength < NONCE_BYTES + TAG_BYTES) {
    throw new AicnError(ErrorCode.DECRYPT, `encrypted body of ${ciphertext.byteLength} bytes is shorter than nonce and tag`)
  }
  try {
    const key = sharedKey(ownPrivateKey, peerPoint(publicKeyFromProtobuf(senderPublicKeyProtobuf)))
    const nonce = ciphertext.subarray(0, NONCE_BYTES)
    const tag = ciphertext.subarray(ciphertext.byteLength - TAG_BYTES)
    const decipher = createDecipheriv('aes-256-gcm', key, nonce)
    decipher.setAuthTag(tag)
    const opened = Buffer.concat([decipher.update(ciphertext.subarray(NONCE_BYTES, ciphertext.byteLength - TAG_BYTES)), decipher.final()])
    return new Uint8Array(opened.buffer, opened.byteOffset, opened.byteLength)
  } catch (err) {
    throw new AicnError(ErrorCode.DECRYPT, `cannot decrypt: ${(err as Error).message}`, { cause: err })
  }
}

/** The 32-byte AES key both sides derive: X of ownPrivate × peerPoint. */
function sharedKey (ownPrivateKey: PrivateKey, point: Uint8Array): Uint8Array {
  if (ownPrivateKey.type !== 'secp256k1') throw new Error(`own key is ${ownPrivateKey.type}, not secp256k1`)
  // getSharedSecret returns the compressed shared point (0x02/0x03 ‖ X); validates the peer's point.
  return secp256k1.getSharedSecret(ownPrivateKey.raw, point, true).subarray(1)
}

function peerPoint (key: PublicKey | Uint8Array): Uint8Array {
  if (key instanceof Uint8Array) {
    if (key.byteLength !== 33 && key.byteLength !== 65) throw new Error(`a secp256k1 point has 33 or 65 bytes, not ${key.byteLength}`)
    return key
  }
  if (key.type !== 'secp256k1') throw new Error(`the peer's key is ${key.type}, not secp256k1`)
  return key.raw
}
