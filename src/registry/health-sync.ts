// Keeps the health checker watching exactly the registered models, and feeds its verdicts back into the
// registry, which announces a model whose server is down as unavailable.
import type { HealthChecker } from './health.ts'
import type { LocalRegistry } from './local.ts'

const SEPARATOR = '\u0000'

export function watchRegisteredModels (local: LocalRegistry, health: HealthChecker): () => void {
  const watched = new Map<string, string>()
  const sync = (): void => {
    const wanted = new Map<string, string>()
    for (const p of local.projects()) {
      for (const m of p.models) wanted.set([p.project, m.model, m.cid].join(SEPARATOR), m.api)
    }
    for (const key of watched.keys()) {
      if (!wanted.has(key)) {
        health.unwatch(key)
        watched.delete(key)
      }
    }
    for (const [key, api] of wanted) {
      if (watched.get(key) === api) continue
      let url: URL
      try { url = new URL(api) } catch { continue }
      health.watch(key, url)
      watched.set(key, api)
    }
  }
  sync()
  return local.onChange((reason) => { if (reason === 'registration') sync() })
}

/** The health checker's callback: a key is "project\0model\0cid". */
export function applyHealth (local: LocalRegistry): (key: string, available: boolean) => void {
  return (key, available) => {
    const [project, model, cid] = key.split(SEPARATOR)
    local.setAvailable(project ?? '', model ?? '', cid ?? '', available)
  }
}
