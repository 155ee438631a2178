// The configuration module's contract. A config file is the Go node's worker.json / input.json
// (docs/config.md): the same keys (matched case-insensitively), the same defaults at load, the same
// duration strings. Read it with loadConfig, change it in memory, write it back with saveConfig.
// Every problem is a ConfigError whose message names the key, e.g.
// `Swarm.ConnMgr.Type: must be "basic" or "none" (got "x")`. docs/config.md describes every key.

export type { AIModelConfig, AIProjectConfig, Config, ModelType } from './types.ts'
export { parseDuration, formatDuration } from '../core/duration.ts'
export {
  DEFAULT_API_ADDR,
  DEFAULT_PROTOCOL_PREFIX,
  DEFAULT_TOPIC_NAME,
  GO_NODE_PSK
} from './defaults.ts'
export { normalizeConfig, loadConfig, type LoadOptions } from './load.ts'
export { validateConfig, parseHostPort, type ValidateOptions } from './validate.ts'
export { removeStaleTemps, saveConfig, serializeConfig } from './save.ts'
export { createConfigTemplate, DEFAULT_LISTEN, type TemplateMode, type TemplateOptions } from './templates.ts'
