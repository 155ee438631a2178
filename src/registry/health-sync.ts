// Keeps the health checker watching exactly the registered models, and feeds its verdicts back into the
// registry, which announces a model whose server is down as unavailable.
import type { Logger } from '../core/logger.ts'
import type { HealthChecker, HealthListener } from './health.ts'
import type { LocalRegistry } from './local.ts'

const SEPARATOR = '\u0000'

/** Keeps the checker in step with the registry; each model added or removed is one info line. */
export function watchRegisteredModels (local: LocalRegistry, health: HealthChecker, log?: Logger): () => void {
  const watched = new Map<string, string>()
  const describe = (key: string): { project: string, model: string, cid?: string } => {
    const [project = '', model = '', cid = ''] = key.split(SEPARATOR)
    return { project, model, ...(cid === '' ? {} : { cid }) }
  }
  const sync = (): void => {
    const wanted = new Map<string, string>()
    for (const p of local.projects()) {
      for (const m of p.models) wanted.set([p.project, m.model, m.cid].join(SEPARATOR), m.api)
    }
    for (const key of watched.keys()) {
      if (!wanted.has(key)) {
        health.unwatch(key)
        watched.delete(key)
        const m = describe(key)
        log?.info(m, `model ${m.project}/${m.model} unregistered`)
      }
    }
    for (const [key, api] of wanted) {
      if (watched.get(key) === api) continue
      let url: URL
      try { url = new URL(api) } catch { continue }
      health.watch(key, url)
      const m = describe(key)
      // The API URL is the operator's own (it is in the config), never a job's input.
      log?.info({ ...m, api: url.origin + url.pathname }, `model ${m.project}/${m.model} registered at ${url.origin}${url.pathname}`)
      watched.set(key, api)
    }
  }
  sync()
  return local.onChange((reason) => { if (reason === 'registration') sync() })
}

/** The health checker's key of a registered model. */
export function healthKey (project: string, model: string, cid: string): string {
  return [project, model, cid].join(SEPARATOR)
}

/** The health checker's callback: a key is "project\0model\0cid". Each flip is one info/warn line
 * for the operator (issue 15: a model server going down used to be silent). */
export function applyHealth (local: LocalRegistry, log?: Logger): HealthListener {
  return (key, available, reason) => {
    const [project = '', model = '', cid = ''] = key.split(SEPARATOR)
    local.setAvailable(project, model, cid, available)
    const what = { project, model, ...(cid === '' ? {} : { cid }) }
    if (available) log?.info(what, `model ${project}/${model} is up`)
    else log?.warn({ ...what, reason }, `model ${project}/${model} is down: ${reason}`)
  }
}
