#!/usr/bin/env node
// The published entry point: runs the compiled CLI (`npm run build` produces dist/). Run before a build,
// it says so in one line instead of Node's ERR_MODULE_NOT_FOUND stack.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const main = new URL('../dist/src/cli/main.js', import.meta.url)
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('Error: aicn is not built yet (dist/ is missing); run "npm run build" (or "npm start") in ' + fileURLToPath(new URL('..', import.meta.url)) + '\n')
  process.exit(1)
}
await import(main.href)
