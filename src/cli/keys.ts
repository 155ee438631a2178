// `aicn peerkey FILE` and `aicn psk`, printing what the Go node's -peerkey and -psk print.
import { access } from 'node:fs/promises'
import { generateIdentity, readKeyFile, writeKeyFile } from '../p2p/identity.ts'
import { generatePskHex } from '../p2p/psk.ts'
import type { Output } from './daemon.ts'

export async function runPeerKey (file: string, out: Output): Promise<void> {
  let identity
  if (await access(file).then(() => true, () => false)) {
    identity = await readKeyFile(file)
    out.line('Load peer key success')
  } else {
    identity = await generateIdentity()
    await writeKeyFile(file, identity)
    out.line(`Generate peer key success at ${file}`)
  }
  out.line(`Encode private key: ${identity.privKeyBase64}`)
  out.line(`Encode public key: ${identity.pubKeyBase64}`)
  out.line(`Transform Peer ID: ${identity.peerId}`)
}

export function runPsk (out: Output): void {
  out.line(`Generate Pre-Shared key: ${generatePskHex()}`)
}
