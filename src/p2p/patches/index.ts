// Patches of library internals, in one place (README.md in this folder: what each fixes, the tested
// versions, upstream). installLibraryPatches() checks the installed versions first: see versions.ts.
import type { Logger } from '../../core/logger.ts'
import { installQuietLengthPrefixedDecoder } from './lp-decoder.ts'
import { checkPatchedVersions, type PatchCheck, type PatchName } from './versions.ts'
import { installYamuxWindowHysteresis } from './yamux-window.ts'
import { installBoundedPnetCipher } from './pnet-memory.ts'

export { PROTOCOL_VERSION, withProtocolVersion } from './identify-protocol-version.ts'
export { applyGoRulesToFloodsub, goMessageId, skipAuthorInGossipsub } from './pubsub-go-rules.ts'
export { SkipUnchangedPeerRecords } from './peer-store-writes.ts'
export { installQuietLengthPrefixedDecoder, installYamuxWindowHysteresis }
export { checkPatchedVersions, installedVersion, PATCHES, UntestedLibraryError } from './versions.ts'
export type { PatchName, PatchSpec } from './versions.ts'

let checked: PatchCheck | undefined
let warned = false

/** Checks the patched libraries' versions once per process (throws UntestedLibraryError where running
 * unpatched is unsafe), installs the prototype patches that apply, and says which patches are on. */
export function installLibraryPatches (log?: Logger): ReadonlySet<PatchName> {
  checked ??= checkPatchedVersions()
  if (!warned && log !== undefined) {
    warned = true
    for (const { spec, installed } of checked.skipped) {
      log?.warn({ patch: spec.name, package: spec.pkg, installed: installed ?? null, tested: spec.tested },
        'library version not tested with our patch: running without it (src/p2p/patches/README.md)')
    }
  }
  if (checked.enabled.has('yamux-window')) installYamuxWindowHysteresis()
  if (checked.enabled.has('lp-decoder')) installQuietLengthPrefixedDecoder()
  if (checked.enabled.has('pnet-cipher-memory')) installBoundedPnetCipher()
  return checked.enabled
}
