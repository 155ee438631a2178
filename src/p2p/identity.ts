// secp256k1 identities in the Go node's formats (docs/config.md, "Network identity and addresses"): the key file holds the raw 36-byte
// key protobuf, the config holds its standard base64, and the peer ID (16Uiu2HA…) inlines the public key.
import { readFile, writeFile } from 'node:fs/promises'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'

export interface Identity {
  privateKey: PrivateKey
  peerId: string
  /** base64 of the private key protobuf, the config's `Identity.PrivKey` */
  privKeyBase64: string
  /** base64 of the public key protobuf */
  pubKeyBase64: string
}

export function identityFromPrivateKey (privateKey: PrivateKey): Identity {
  return {
    privateKey,
    peerId: peerIdFromPrivateKey(privateKey).toString(),
    privKeyBase64: Buffer.from(privateKeyToProtobuf(privateKey)).toString('base64'),
    pubKeyBase64: Buffer.from(publicKeyToProtobuf(privateKey.publicKey)).toString('base64')
  }
}

export async function generateIdentity (): Promise<Identity> {
  return identityFromPrivateKey(await generateKeyPair('secp256k1'))
}

/** Decodes `Identity.PrivKey` (base64 key protobuf). Throws a plain Error that says what is wrong. */
export function identityFromBase64 (privKey: string): Identity {
  const bytes = Buffer.from(privKey, 'base64')
  if (bytes.length === 0 || bytes.toString('base64').replace(/=+$/, '') !== privKey.trim().replace(/=+$/, '')) {
    throw new Error('private key is not valid base64')
  }
  return identityFromProtobuf(bytes)
}

export function identityFromProtobuf (bytes: Uint8Array): Identity {
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new Error(`not a libp2p private key protobuf (${(err as Error).message})`)
  }
  return identityFromPrivateKey(key)
}

/** Reads a key file (raw key protobuf). */
export async function readKeyFile (path: string): Promise<Identity> {
  const bytes = await readFile(path)
  try {
    return identityFromProtobuf(bytes)
  } catch (err) {
    throw new Error(`${path} is not a valid key file: ${(err as Error).message}`)
  }
}

/** Writes a key file with mode 0600; never overwrites an existing file. */
export async function writeKeyFile (path: string, identity: Identity): Promise<void> {
  await writeFile(path, privateKeyToProtobuf(identity.privateKey), { mode: 0o600, flag: 'wx' })
}
