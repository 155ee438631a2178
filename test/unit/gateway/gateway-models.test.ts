// Plain model names on /v1 (src/gateway/models.ts): configured projects first, a name keeps its first
// project, a stranger cannot take a name over or make it ambiguous; /v1/models bounded and cached.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ModelDirectory } from '../../../src/gateway/models.ts'
import type { NetworkView } from '../../../src/registry/view.ts'

/** A view stub: project → model → how many nodes serve it. */
function viewOf (served: Record<string, Record<string, number>>): NetworkView & { reads: number } {
  const stub = {
    reads: 0,
    projects: () => { stub.reads++; return Object.keys(served).sort() },
    models: (project: string) => Object.keys(served[project] ?? {}).sort(),
    candidates: (project: string, model: string) => Array.from({ length: served[project]?.[model] ?? 0 }, (_, i) => ({ nodeId: `n${i}`, cid: '', type: 0, busy: 0, lastHeard: 0 }))
  }
  return stub as unknown as NetworkView & { reads: number }
}

describe('ModelDirectory', () => {
  it('resolves a plain name served by one project, and project/model names with slashes in the model', () => {
    let now = 0
    const served: Record<string, Record<string, number>> = { A: { m1: 1, 'meta-llama/Llama-3': 2 } }
    const directory = new ModelDirectory(viewOf(served), { now: () => now })
    assert.deepEqual(directory.resolve('m1'), { project: 'A', model: 'm1' })
    assert.deepEqual(directory.resolve('A/meta-llama/Llama-3'), { project: 'A', model: 'meta-llama/Llama-3' })
    assert.throws(() => directory.resolve('nope'), (err: any) => err.status === 404)
    now += 2_000
  })

  it('a stranger announcing the same name in another project neither takes it over nor makes it ambiguous', () => {
    let now = 0
    const served: Record<string, Record<string, number>> = { A: { m1: 1 } }
    const directory = new ModelDirectory(viewOf(served), { now: () => now })
    assert.equal(directory.resolve('m1').project, 'A')
    served.Evil = { m1: 50 }
    now += 2_000
    assert.equal(directory.resolve('m1').project, 'A')
    assert.deepEqual(directory.list().map((m) => m.id).sort(), ['Evil/m1', 'm1'])
    delete served.A
    now += 2_000
    assert.equal(directory.resolve('m1').project, 'Evil', 'once A is gone, the one project left serves it')
  })

  it('a name served by several projects from the start must be written project/model, unless configured', () => {
    const served = { A: { m2: 1 }, B: { m2: 1 } }
    assert.throws(() => new ModelDirectory(viewOf(served)).resolve('m2'), (err: any) => err.status === 400 && /several projects/.test(err.message))
    const configured = new ModelDirectory(viewOf(served), { projects: ['B', 'A'] })
    assert.equal(configured.resolve('m2').project, 'B')
    assert.deepEqual(configured.list().map((m) => m.id).sort(), ['A/m2', 'm2'])
    assert.equal(new ModelDirectory(viewOf(served)).resolve('B/m2').project, 'B')
  })

  it('reads the view at most once a second and lists at most 2,000 models', () => {
    let now = 0
    const many: Record<string, number> = {}
    for (let i = 0; i < 3000; i++) many[`m${i}`] = 1
    const view = viewOf({ Big: many })
    const directory = new ModelDirectory(view, { now: () => now })
    assert.equal(directory.list().length, 2000)
    directory.list()
    directory.resolve('m5')
    assert.equal(view.reads, 1)
    now += 1_000
    directory.list()
    assert.equal(view.reads, 2)
  })
})
