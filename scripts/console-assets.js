#!/usr/bin/env node
// Part of `npm run build`: lays out the web console in dist/console/, which the daemon serves
// (src/api/console.ts): its compiled modules, then its static files (console/*.html, *.css, *.svg).
// console/tsconfig.json compiles into dist/console-build/ with the repository as its root, because the
// console also compiles the answers' types it shares with the node (src/web/console-types.ts, imported
// with `import type` only, so nothing of it is needed at run time); the console's own modules are in
// dist/console-build/console/src/ and are copied up, so the page finds them beside index.html.
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const from = 'console'
const to = join('dist', 'console')
const modules = join('dist', 'console-build', 'console', 'src')
if (!existsSync(modules)) throw new Error(`${modules} is missing: run tsc -p console/tsconfig.json first`)
mkdirSync(to, { recursive: true })
cpSync(modules, to, { recursive: true })
for (const name of readdirSync(from)) {
  if (/\.(html|css|svg)$/.test(name)) copyFileSync(join(from, name), join(to, name))
}
