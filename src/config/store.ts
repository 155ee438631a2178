// The running node's config: one in-memory copy, changed only through `update`, which saves the new
// version atomically before it becomes current. Updates run one at a time, so concurrent API calls
// (register, bootstrap add/rm) can never interleave or lose each other's changes.
import type { Config } from './types.ts'
import { saveConfig } from './save.ts'

export class ConfigStore {
  readonly path: string
  private config: Config
  private queue: Promise<unknown> = Promise.resolve()

  constructor (path: string, config: Config) {
    this.path = path
    this.config = config
  }

  get current (): Readonly<Config> {
    return this.config
  }

  /** Applies `mutate` to a copy, saves it, then makes it current; on failure nothing changes. */
  async update<T> (mutate: (draft: Config) => T): Promise<T> {
    const run = async (): Promise<T> => {
      const draft = structuredClone(this.config)
      const result = mutate(draft)
      await saveConfig(this.path, draft)
      this.config = draft
      return result
    }
    const next = this.queue.then(run, run)
    this.queue = next.catch(() => {})
    return await next
  }
}
