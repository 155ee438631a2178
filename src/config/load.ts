// Reading a config file the way the Go node does (encoding/json + LoadConfig): keys matched
// case-insensitively, unknown keys ignored, JSON types checked, defaults filled in; then validation.
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { ConfigError } from '../core/errors.ts'
import { CONFIG_SPEC, type FieldSpec } from './defaults.ts'
import type { Config } from './types.ts'
import { validateConfig, type ValidateOptions } from './validate.ts'

export type LoadOptions = ValidateOptions

/**
 * Turns parsed JSON into a complete Config with canonical key names. Keys match case-insensitively
 * at every level (an exact match wins, like Go's encoding/json), unknown keys are ignored, `null`
 * counts as absent, and defaults are filled in (docs/config.md, "How the file is read"). A value of the wrong JSON type is a
 * ConfigError naming the key; all such problems are reported together, one per line.
 */
export function normalizeConfig (raw: unknown): Config {
  if (!isPlainObject(raw)) throw new ConfigError('the configuration must be a JSON object')
  const problems: string[] = []
  const config = normalizeValue(CONFIG_SPEC, raw, '', problems)
  if (problems.length > 0) throw new ConfigError(problems.join('\n'))
  return config as Config
}

function normalizeValue (spec: FieldSpec, value: unknown, path: string, problems: string[]): unknown {
  switch (spec.kind) {
    case 'string':
      if (value == null || value === '') return spec.default ?? ''
      if (typeof value === 'string') return value
      problems.push(`${path}: must be a string`)
      return ''
    case 'integer':
      if (value == null || value === 0) return spec.default ?? 0
      if (typeof value !== 'number') {
        problems.push(`${path}: must be a number`)
      } else if (!Number.isSafeInteger(value)) {
        problems.push(`${path}: must be a whole number`)
      } else {
        return value
      }
      return 0
    case 'number':
      if (value == null) return spec.default ?? 0
      if (typeof value === 'number' && Number.isFinite(value)) return value
      problems.push(`${path}: must be a number`)
      return 0
    case 'boolean':
      if (spec.forced !== undefined) return spec.forced
      if (value == null) return false
      if (typeof value === 'boolean') return value
      problems.push(`${path}: must be true or false`)
      return false
    case 'array':
      if (value == null) return []
      if (!Array.isArray(value)) {
        problems.push(`${path}: must be an array`)
        return []
      }
      return value.map((item, index) => normalizeValue(spec.items, item, `${path}[${index}]`, problems))
    case 'object': {
      if (value != null && !isPlainObject(value)) problems.push(`${path}: must be an object`)
      const source = isPlainObject(value) ? value : {}
      const out: Record<string, unknown> = {}
      for (const [name, fieldSpec] of Object.entries(spec.fields)) {
        const key = findKey(source, name)
        const fieldPath = path === '' ? name : `${path}.${name}`
        out[name] = normalizeValue(fieldSpec, key === undefined ? undefined : source[key], fieldPath, problems)
      }
      return out
    }
  }
}

/** Go's encoding/json rule: the exact key if present, else the first key equal ignoring case. */
function findKey (source: Record<string, unknown>, name: string): string | undefined {
  if (Object.hasOwn(source, name)) return name
  const lower = name.toLowerCase()
  return Object.keys(source).find((key) => key.toLowerCase() === lower)
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Reads, normalizes and validates a config file. Relative `App.Datastore` and `App.LogFile` are
 * resolved against the config file's directory (not the working directory), so a node can be
 * started from anywhere.
 */
export async function loadConfig (path: string, options: LoadOptions = {}): Promise<Config> {
  const file = resolve(path)
  const dir = dirname(file)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') {
      throw new ConfigError(`config file ${file} not found; create one with "aicn init worker --dir ${dir}"`, { cause: err })
    }
    throw new ConfigError(`config file ${file} cannot be read: ${(err as Error).message}`, { cause: err })
  }

  let raw: unknown
  try {
    // Editors on Windows like to prepend a byte-order mark; it is not JSON but means no harm.
    raw = JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }

  const config = normalizeConfig(raw)
  if (config.App.Datastore !== '') config.App.Datastore = resolve(dir, config.App.Datastore)
  if (config.App.LogFile !== '') config.App.LogFile = resolve(dir, config.App.LogFile)
  await validateConfig(config, options)
  return config
}
