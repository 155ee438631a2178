// The start-up check of the patched libraries' versions (src/p2p/patches/versions.ts).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkPatchedVersions, installedVersion, PATCHES, UntestedLibraryError, type PatchSpec } from '../../../src/p2p/patches/versions.ts'
import { PACKAGE_ROOT } from '../../../src/core/package-root.ts'

const specs: PatchSpec[] = [
  { name: 'yamux-window', pkg: 'perf-lib', tested: ['1.2.3'], onUntested: 'skip' },
  { name: 'gossipsub-go-rules', pkg: 'wire-lib', tested: ['4.5.6', '4.5.7'], onUntested: 'refuse' }
]

test('tested versions enable their patches', () => {
  const versions: Record<string, string> = { 'perf-lib': '1.2.3', 'wire-lib': '4.5.7' }
  const check = checkPatchedVersions((pkg) => versions[pkg], specs)
  assert.deepEqual([...check.enabled], ['yamux-window', 'gossipsub-go-rules'])
  assert.deepEqual(check.skipped, [])
})

test('a performance patch on an untested or missing version is skipped, and says which version it found', () => {
  for (const found of ['1.2.4', undefined]) {
    const check = checkPatchedVersions((pkg) => pkg === 'perf-lib' ? found : '4.5.6', specs)
    assert.deepEqual([...check.enabled], ['gossipsub-go-rules'])
    assert.deepEqual(check.skipped, [{ spec: specs[0], installed: found }])
  }
})

test('a patch the network needs refuses to start on an untested version', () => {
  assert.throws(() => checkPatchedVersions((pkg) => pkg === 'perf-lib' ? '1.2.3' : '4.6.0', specs), (err: unknown) => {
    assert.ok(err instanceof UntestedLibraryError)
    assert.equal(err.installed, '4.6.0')
    assert.match(err.message, /wire-lib 4\.6\.0 is not a version the gossipsub-go-rules patch was tested with \(4\.5\.6, 4\.5\.7\)/)
    return true
  })
})

test('the installed version is read from the package folder, whatever its exports map says', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-patch-versions-'))
  try {
    await mkdir(join(dir, 'node_modules', '@scope', 'lib'), { recursive: true })
    await writeFile(join(dir, 'node_modules', '@scope', 'lib', 'package.json'), JSON.stringify({ name: '@scope/lib', version: '9.8.7', exports: { '.': './index.js' } }))
    const paths = [join(dir, 'elsewhere', 'node_modules'), join(dir, 'node_modules')]
    assert.equal(installedVersion('@scope/lib', paths), '9.8.7')
    assert.equal(installedVersion('@scope/missing', paths), undefined)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('every patched library is installed at a tested version, pinned exactly in package.json', async () => {
  const manifest = JSON.parse(await readFile(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>, overrides?: Record<string, string> }
  for (const spec of PATCHES) {
    const installed = installedVersion(spec.pkg)
    assert.ok(installed !== undefined && spec.tested.includes(installed), `${spec.pkg} ${installed} is one of ${spec.tested.join(', ')}`)
    // A package we do not depend on directly (xsalsa20, through @libp2p/pnet) is pinned by an override.
    assert.equal(manifest.dependencies[spec.pkg] ?? manifest.overrides?.[spec.pkg], installed, `${spec.pkg} is pinned to the installed version`)
  }
  assert.equal(checkPatchedVersions().skipped.length, 0)
})
