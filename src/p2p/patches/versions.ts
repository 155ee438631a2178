// Which versions of the patched libraries the patches in this folder were tested against, and the
// start-up check that reads the installed versions (README.md in this folder has the table and the why).
// A performance patch on an untested version is left out with a warning (the library's own behaviour is
// correct, only slower); a patch without which the node would misbehave on the network refuses to start.
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

export type PatchName = 'yamux-window' | 'lp-decoder' | 'identify-protocol-version' | 'gossipsub-go-rules' | 'floodsub-go-rules' | 'protobufjs-long' | 'pnet-cipher-memory' | 'gossipsub-topic-limit' | 'peer-store-unchanged-writes'

export interface PatchSpec {
  name: PatchName
  /** the npm package whose internals the patch relies on */
  pkg: string
  /** exact versions the patch was tested against (package.json pins them) */
  tested: readonly string[]
  /** on another version: 'skip' runs without the patch, 'refuse' stops the node */
  onUntested: 'skip' | 'refuse'
}

export const PATCHES: readonly PatchSpec[] = [
  { name: 'yamux-window', pkg: '@chainsafe/libp2p-yamux', tested: ['8.0.1'], onUntested: 'skip' },
  { name: 'lp-decoder', pkg: '@libp2p/utils', tested: ['7.4.1'], onUntested: 'skip' },
  { name: 'identify-protocol-version', pkg: '@libp2p/identify', tested: ['4.1.14'], onUntested: 'skip' },
  { name: 'gossipsub-go-rules', pkg: '@libp2p/gossipsub', tested: ['17.1.1'], onUntested: 'refuse' },
  { name: 'floodsub-go-rules', pkg: '@libp2p/floodsub', tested: ['11.0.28'], onUntested: 'refuse' },
  { name: 'protobufjs-long', pkg: 'protobufjs', tested: ['8.8.1'], onUntested: 'refuse' },
  { name: 'pnet-cipher-memory', pkg: 'xsalsa20', tested: ['1.2.0'], onUntested: 'skip' },
  { name: 'gossipsub-topic-limit', pkg: '@libp2p/gossipsub', tested: ['17.1.1'], onUntested: 'refuse' },
  { name: 'peer-store-unchanged-writes', pkg: '@libp2p/peer-store', tested: ['12.0.28'], onUntested: 'skip' }
]

export class UntestedLibraryError extends Error {
  constructor (readonly spec: PatchSpec, readonly installed: string | undefined) {
    super(`${spec.pkg} ${installed ?? '(not found)'} is not a version the ${spec.name} patch was tested with ` +
      `(${spec.tested.join(', ')}); without it the node would misbehave on the network. Install the tested ` +
      'version (npm ci) or re-test the patch (src/p2p/patches/README.md)')
    this.name = 'UntestedLibraryError'
  }
}

const require = createRequire(import.meta.url)

/** The version in the package.json of `pkg` as this module resolves it; undefined when not installed.
 * The file is read from the package's folder: packages' export maps do not list package.json. */
export function installedVersion (pkg: string, paths: readonly string[] = require.resolve.paths(pkg) ?? []): string | undefined {
  for (const dir of paths) {
    const file = join(dir, pkg, 'package.json')
    if (!existsSync(file)) continue
    const version = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version
    return typeof version === 'string' ? version : undefined
  }
  return undefined
}

export interface PatchCheck { enabled: Set<PatchName>, skipped: Array<{ spec: PatchSpec, installed: string | undefined }> }

/** Decides which patches apply; throws UntestedLibraryError for a 'refuse' patch on an untested version. */
export function checkPatchedVersions (versionOf: (pkg: string) => string | undefined = installedVersion, specs: readonly PatchSpec[] = PATCHES): PatchCheck {
  const result: PatchCheck = { enabled: new Set(), skipped: [] }
  for (const spec of specs) {
    const installed = versionOf(spec.pkg)
    if (installed !== undefined && spec.tested.includes(installed)) {
      result.enabled.add(spec.name)
    } else if (spec.onUntested === 'refuse') {
      throw new UntestedLibraryError(spec, installed)
    } else {
      result.skipped.push({ spec, installed })
    }
  }
  return result
}
