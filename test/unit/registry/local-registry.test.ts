import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createConfigTemplate } from '../../../src/config/index.ts'
import { ConfigStore } from '../../../src/config/store.ts'
import { AicnError } from '../../../src/core/errors.ts'
import { LocalRegistry, type ChangeReason } from '../../../src/registry/local.ts'

async function withRegistry (run: (registry: LocalRegistry, path: string, changes: ChangeReason[]) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'aicn-registry-'))
  try {
    const config = createConfigTemplate('worker', { peerId: 'x', privKey: 'y', datastore: dir })
    const path = join(dir, 'worker.json')
    const registry = new LocalRegistry(new ConfigStore(path, config), async (api) => {
      if (!api.startsWith('http://127.0.0.1')) throw new AicnError(1001, 'model api host is not an address of this machine')
    })
    const changes: ChangeReason[] = []
    registry.onChange((reason) => changes.push(reason))
    await run(registry, path, changes)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const api = 'http://127.0.0.1:1042/v1/chat/completions'
const saved = async (path: string): Promise<any[]> => JSON.parse(await readFile(path, 'utf8')).AIProjects

test('register model upserts by (project, model, cid) and saves before answering', async () => {
  await withRegistry(async (registry, path, changes) => {
    await registry.registerModel('P', { model: 'm', api, type: 0, cid: '' })
    await registry.registerModel('P', { model: 'm', api, type: 0, cid: 'gpu1' })
    await registry.registerModel('P', { model: 'm', api: 'http://127.0.0.1:2/v1', type: 4, cid: 'gpu1' })
    assert.deepEqual(await saved(path), [{ Project: 'P', Models: [{ Model: 'm', API: api, Type: 0, CID: '' }, { Model: 'm', API: 'http://127.0.0.1:2/v1', Type: 4, CID: 'gpu1' }] }])
    assert.deepEqual(changes, ['registration', 'registration', 'registration'])
  })
})

test('unregistering the last model removes the project; unknown ones are "not existed"', async () => {
  await withRegistry(async (registry, path) => {
    await registry.registerModel('P', { model: 'm', api, type: 0, cid: 'a' })
    assert.equal(await registry.unregisterModel('P', 'm', ''), 'not existed')
    assert.equal(await registry.unregisterModel('P', 'm', 'a'), 'ok')
    assert.deepEqual(await saved(path), [])
    assert.equal(await registry.unregisterProject('P'), 'not existed')
  })
})

test('register project replaces the project\'s list and rejects bad entries without saving', async () => {
  await withRegistry(async (registry, path) => {
    await registry.registerProject('P', [{ model: 'a', api, type: 0, cid: '' }, { model: 'b', api, type: 1, cid: '' }])
    await registry.registerProject('P', [{ model: 'c', api, type: 3, cid: '' }])
    assert.deepEqual((await saved(path))[0].Models.map((m: any) => m.Model), ['c'])
    await assert.rejects(registry.registerProject('P', [{ model: 'd', api, type: 0, cid: '' }, { model: 'd', api, type: 0, cid: '' }]), /listed twice/)
    await assert.rejects(registry.registerProject('P', [{ model: 'd', api: 'http://8.8.8.8/v1', type: 0, cid: '' }]), /models\[0\]: model api host/)
    await assert.rejects(registry.registerProject('', [{ model: 'd', api, type: 0, cid: '' }]), /project name can not be empty/)
    await assert.rejects(registry.registerModel('P', { model: 'd', api, type: 7, cid: '' }), /type must be/)
    assert.deepEqual((await saved(path))[0].Models.map((m: any) => m.Model), ['c'])
  })
})

test('busy counters: acquire and release once; find picks the least busy available model', async () => {
  await withRegistry(async (registry, _path, changes) => {
    await registry.registerProject('P', [{ model: 'm', api, type: 0, cid: 'a' }, { model: 'm', api, type: 0, cid: 'b' }])
    const first = registry.find('P', 'm')
    assert.ok(first !== undefined)
    const release = registry.acquire(first)
    assert.equal(registry.find('P', 'm', first.cid)?.busy, 1)
    assert.notEqual(registry.find('P', 'm')?.cid, first.cid)
    release()
    release()
    assert.equal(registry.find('P', 'm', first.cid)?.busy, 0)
    registry.setAvailable('P', 'm', 'a', false)
    registry.setAvailable('P', 'm', 'a', false)
    assert.equal(registry.find('P', 'm')?.cid, 'b')
    registry.setAvailable('P', 'm', 'b', false)
    assert.equal(registry.find('P', 'm')?.available, false, 'a model marked down is still found as a last resort')
    assert.deepEqual(changes.filter((c) => c !== 'registration'), ['busy', 'busy', 'health', 'health'])
  })
})

test('concurrent registrations are all kept', async () => {
  await withRegistry(async (registry, path) => {
    await Promise.all(Array.from({ length: 30 }, async (_, i) => await registry.registerModel('P', { model: `m${i}`, api, type: 0, cid: '' })))
    assert.equal((await saved(path))[0].Models.length, 30)
    assert.equal(registry.projects()[0]?.models.length, 30)
  })
})

test('names with control characters, and a cid that cannot go into a header, are refused at registration', async () => {
  await withRegistry(async (registry) => {
    await assert.rejects(registry.registerModel('P', { model: 'm', api, type: 0, cid: 'a\r\nX-Evil: 1' }), /cid contains a character that cannot go into a header/)
    await assert.rejects(registry.registerModel('P\n', { model: 'm', api, type: 0, cid: '' }), /project name: project contains a control character/)
    await assert.rejects(registry.registerProject('P', [{ model: 'm\u0000', api, type: 0, cid: '' }]), /model contains a control character/)
    assert.equal(registry.find('P', 'm'), undefined)
  })
})
