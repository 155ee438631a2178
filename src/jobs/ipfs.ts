// Uploads generated images to a project's IPFS node through its HTTP RPC (`/api/v0/add`), as the
// `ipfs_node` parameter of image/gen asks (README.md, "Model calls"). The client names the URL, so it is an SSRF vector
// (issue 13, part 6): only IPFS nodes the operator allowed are called (`Jobs.IpfsNodes`, by default any
// loopback address), redirects are not followed, and what the IPFS node answers is never shown to the
// client beyond its status: a requester must not be able to read other services' pages through us.
import { randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { AicnError, ErrorCode } from '../core/errors.ts'
import { collect } from '../core/iterables.ts'

export interface IpfsImage { cid: string, image_name: string }

const UPLOAD_TIMEOUT_MS = 60_000
/** `add` answers one small JSON line per file; anything much larger is not an IPFS node. */
const MAX_ANSWER_BYTES = 64 * 1024

function paramError (message: string): AicnError {
  return new AicnError(ErrorCode.PARAM, message)
}

/** A loopback host as a URL spells it: 127.0.0.0/8, ::1 (also IPv4-mapped), localhost, *.localhost. */
export function isLoopbackHost (hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase()
  if (host === 'localhost' || host.endsWith('.localhost')) return true
  if (isIP(host) === 4) return host.startsWith('127.')
  if (isIP(host) === 6) return host === '::1' || /^::ffff:(127\.|7f[0-9a-f]{2}:)/.test(host)
  return false
}

/** The origins of `Jobs.IpfsNodes` (entries were validated when the config loaded: src/config/validate.ts). */
export function ipfsOrigins (allowed: readonly string[]): Set<string> {
  const origins = new Set<string>()
  for (const entry of allowed) {
    try { origins.add(new URL(entry).origin) } catch {}
  }
  return origins
}

/** The client's `ipfs_node` parsed, if the operator allows it: listed in `allowed` (origins), or, when
 * the list is empty, on loopback. Throws AicnError(PARAM) saying why not. */
export function checkIpfsNode (text: string, allowed: ReadonlySet<string> = new Set()): URL {
  let url: URL
  try { url = new URL(text) } catch { throw paramError(`ipfs_node ${JSON.stringify(text.slice(0, 200))} is not a URL such as http://127.0.0.1:5001`) }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw paramError('ipfs_node must use http or https')
  if (url.username !== '' || url.password !== '') throw paramError('ipfs_node must not contain a user name or password')
  const ok = allowed.size === 0 ? isLoopbackHost(url.hostname) : allowed.has(url.origin)
  if (!ok) {
    const rule = allowed.size === 0 ? 'this node uploads only to an IPFS node on its own loopback address' : 'it is not one of the IPFS nodes this node is configured to use'
    throw paramError(`ipfs_node ${url.origin} is not allowed: ${rule} (Jobs.IpfsNodes)`)
  }
  return url
}

/** Adds one image; `deadline` (ms since epoch) is the job's, so the upload cannot outlast the `timeout`
 * the client asked for. */
export async function uploadImage (node: URL, png: Uint8Array, signal: AbortSignal, deadline = Date.now() + UPLOAD_TIMEOUT_MS): Promise<IpfsImage> {
  const imageName = `${randomBytes(8).toString('hex')}.png`
  const form = new FormData()
  form.append('file', new Blob([png], { type: 'image/png' }), imageName)
  const endpoint = new URL('/api/v0/add', node)
  const timeout = AbortSignal.timeout(Math.max(1, Math.min(UPLOAD_TIMEOUT_MS, deadline - Date.now())))
  let response: Response
  try {
    response = await fetch(endpoint, { method: 'POST', body: form, redirect: 'error', signal: AbortSignal.any([signal, timeout]) })
  } catch (err) {
    if (timeout.aborted) throw new AicnError(ErrorCode.TIMEOUT, `the IPFS node at ${node.origin} did not answer before the job's deadline`)
    throw new AicnError(ErrorCode.IPFS, `cannot reach the IPFS node at ${node.origin}${reasonCode(err)}`)
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => {})
    throw new AicnError(ErrorCode.IPFS, `the IPFS node at ${node.origin} answered HTTP ${response.status}`)
  }
  let bytes: Uint8Array | undefined
  try {
    bytes = response.body === null ? new Uint8Array(0) : await collect(response.body as unknown as AsyncIterable<Uint8Array>, MAX_ANSWER_BYTES)
  } catch {
    if (timeout.aborted) throw new AicnError(ErrorCode.TIMEOUT, `the IPFS node at ${node.origin} did not answer before the job's deadline`)
    throw new AicnError(ErrorCode.IPFS, `the IPFS node at ${node.origin} broke off its answer`)
  }
  if (bytes === undefined) throw new AicnError(ErrorCode.IPFS, `the IPFS node at ${node.origin} answered more than ${MAX_ANSWER_BYTES} bytes`)
  // `add` answers one JSON object per line; the last one is the file.
  const last = Buffer.from(bytes).toString('utf8').trim().split('\n').pop() ?? ''
  let hash: unknown
  try { hash = (JSON.parse(last) as { Hash?: unknown }).Hash } catch {}
  if (typeof hash !== 'string' || !/^[A-Za-z0-9]{1,256}$/.test(hash)) throw new AicnError(ErrorCode.IPFS, `the IPFS node at ${node.origin} did not answer with a CID`)
  return { cid: hash, image_name: imageName }
}

/** A system error code (ECONNREFUSED, ENOTFOUND…) for the message; never the text of an answer. */
function reasonCode (err: unknown): string {
  const code = (err as { cause?: { code?: unknown } })?.cause?.code
  return typeof code === 'string' && /^[A-Z_]{2,40}$/.test(code) ? ` (${code})` : ''
}
