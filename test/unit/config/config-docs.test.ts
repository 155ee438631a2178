import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { normalizeConfig, serializeConfig, validateConfig } from '../../../src/config/index.ts'

/** The package root, whether the test runs from test/unit or from dist/test/unit. */
function packageRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir)
  return dir
}

test('the example files in docs/config.md are valid, canonical configs', async () => {
  const text = await readFile(join(packageRoot(), 'docs', 'config.md'), 'utf8')
  const examples = [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1])
  assert.equal(examples.length, 2)
  for (const example of examples) {
    const config = normalizeConfig(JSON.parse(example))
    await validateConfig(config, { checkDatastore: false })
    assert.equal(serializeConfig(config), example, 'the example is written exactly as saveConfig would')
  }
})
