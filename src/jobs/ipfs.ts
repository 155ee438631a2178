// Uploads generated images to a project's IPFS node through its HTTP RPC (`/api/v0/add`), as the
// `ipfs_node` parameter of image/gen asks (seed 002).
import { randomBytes } from 'node:crypto'
import { AicnError, ErrorCode } from '../errors.ts'

export interface IpfsImage { cid: string, image_name: string }

const UPLOAD_TIMEOUT_MS = 60_000

export function checkIpfsNode (text: string): URL {
  let url: URL
  try { url = new URL(text) } catch { throw new AicnError(ErrorCode.PARAM, `ipfs_node "${text}" is not a URL such as http://127.0.0.1:5001`) }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new AicnError(ErrorCode.PARAM, 'ipfs_node must use http or https')
  return url
}

export async function uploadImage (node: URL, png: Uint8Array, signal: AbortSignal): Promise<IpfsImage> {
  const imageName = `${randomBytes(8).toString('hex')}.png`
  const form = new FormData()
  form.append('file', new Blob([png], { type: 'image/png' }), imageName)
  const endpoint = new URL('/api/v0/add', node)
  let response: Response
  try {
    response = await fetch(endpoint, { method: 'POST', body: form, signal: AbortSignal.any([signal, AbortSignal.timeout(UPLOAD_TIMEOUT_MS)]) })
  } catch (err) {
    throw new AicnError(ErrorCode.IPFS, `cannot reach the IPFS node at ${node.origin}: ${(err as Error).message}`)
  }
  const text = await response.text()
  if (!response.ok) throw new AicnError(ErrorCode.IPFS, `the IPFS node answered HTTP ${response.status}: ${text.slice(0, 200)}`)
  // `add` answers one JSON object per line; the last one is the file.
  const last = text.trim().split('\n').pop() ?? ''
  let hash: unknown
  try { hash = (JSON.parse(last) as { Hash?: unknown }).Hash } catch {}
  if (typeof hash !== 'string' || hash === '') throw new AicnError(ErrorCode.IPFS, 'the IPFS node did not answer with a CID')
  return { cid: hash, image_name: imageName }
}
