#!/usr/bin/env node
// Part of `npm run build`: copies the web console's static files (console/*.html, *.css, *.svg) next to
// its compiled modules in dist/console/, which the daemon serves (src/api/console.ts).
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const from = 'console'
const to = join('dist', 'console')
mkdirSync(to, { recursive: true })
for (const name of readdirSync(from)) {
  if (/\.(html|css|svg)$/.test(name)) copyFileSync(join(from, name), join(to, name))
}
