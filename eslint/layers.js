// The layers of src/ and the lint rule that holds them (docs/architecture.md explains each folder).
//
// A folder may import only folders of a lower layer, never one beside it or above it; `core` imports
// nothing of ours; `compat` (the Go node's protocols) sits beside `protocols` and uses only the basics.
// The rule is ESLint's own `no-restricted-imports` with one regex per folder, matched against the
// relative import path: `../` (any number of them) followed by a forbidden folder name. It sees
// `import`, `import type` and `export … from`. test/unit/core/layers.test.ts checks the same table against
// the real import graph (dynamic imports included) and that no two folders import each other.
//
// Used by eslint.config.js as one more spread: `...layers`.

/** Bottom to top; folders on one line are one layer and may not import each other. */
export const LAYERS = [
  ['core'], // errors table, logger, durations, job types, body iterables, answer checks, version
  ['proto', 'config', 'web'], // wire schema; config load/validate/save; the HTTP route contract (no Koa)
  ['hostinfo', 'p2p', 'models'], // machine info; libp2p host and stream helpers; model-server client
  ['metrics', 'registry'], // node metrics; local models and the network view
  ['protocols', 'compat'], // native protocols (heartbeats, jobs, rpc, queries); the Go node's protocols
  ['jobs'], // dispatch: local or remote, node selection, uploads
  ['gateway'], // OpenAI-compatible /v1: keys, limits, pricing, metering
  ['api'], // Koa: listeners, guards, access, errors, /api/v0 routes, console files
  ['node'], // the one place that builds concrete classes and wires them (incl. the HTTP server)
  ['cli'] // `aicn` commands
]

/** Folders that may import less than everything below them. */
export const ONLY = {
  // The Go compatibility protocols stand beside the native ones on the basics alone, so either can
  // change without the other (issue 17).
  compat: ['core', 'proto', 'hostinfo', 'p2p']
}

const rank = new Map(LAYERS.flatMap((folders, i) => folders.map((f) => [f, i])))

/** The folders `folder` may import (its own excepted). */
export function allowedImports (folder) {
  const below = [...rank].filter(([, r]) => r < rank.get(folder)).map(([f]) => f)
  return ONLY[folder] ?? below
}

function forbiddenFor (folder) {
  const allowed = new Set(allowedImports(folder))
  return [...rank.keys()].filter((f) => f !== folder && !allowed.has(f))
}

function rule (folder) {
  const forbidden = forbiddenFor(folder)
  const patterns = [{
    // Nothing in src/ reaches into the tests, the scripts or the console's browser code.
    regex: '^(\\.\\./)+(test|scripts|console)/',
    message: 'src/ does not import test/, scripts/ or console/.'
  }]
  if (folder === 'core') {
    patterns.push({ regex: '^\\.\\./', message: 'src/core/ is the leaf layer: it imports nothing of ours (docs/architecture.md).' })
  } else if (forbidden.length > 0) {
    patterns.push({
      regex: `^(\\.\\./)+(${forbidden.join('|')})/`,
      message: `src/${folder}/ may import only ${allowedImports(folder).join(', ')} (layers in eslint/layers.js, docs/architecture.md).`
    })
  }
  return {
    name: `aicn/layers/${folder}`,
    files: [`src/${folder}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns }] }
  }
}

export const layers = [...rank.keys()].map(rule)

export default layers
