// The models this node serves: what `AIProjects` in the config says, plus live busy counters and
// health. Every change is saved in the config (atomically, one change at a time) before it takes effect
// and before the API answers, so a registration survives kill -9 and concurrent calls never interleave.
import { AicnError, ErrorCode } from '../core/errors.ts'
import { badName, badToken } from '../core/identifiers.ts'
import type { ConfigStore } from '../config/store.ts'
import type { AIModelConfig, Config } from '../config/types.ts'

export const MODEL_TYPES = { CHAT: 0, IMAGE_GEN: 1, IMAGE_EDIT: 2, EMBEDDING: 3, COMPLETION: 4 } as const
const MAX_TYPE = 4

export interface LocalModel {
  project: string
  model: string
  api: string
  type: number
  cid: string
  busy: number
  available: boolean
}

export interface LocalProject { project: string, models: LocalModel[] }

export type ChangeReason = 'registration' | 'busy' | 'health'

/** What a register call carries for one model, before validation. */
export interface ModelInput { model: string, api: string, type: number, cid: string }

const key = (project: string, model: string, cid: string): string => `${project}\u0000${model}\u0000${cid}`

export class LocalRegistry {
  private readonly store: ConfigStore
  private readonly checkApi: (api: string) => Promise<unknown>
  private readonly busy = new Map<string, number>()
  private readonly unavailable = new Set<string>()
  private readonly listeners = new Set<(reason: ChangeReason) => void>()

  constructor (store: ConfigStore, checkApi: (api: string) => Promise<unknown>) {
    this.store = store
    this.checkApi = checkApi
  }

  onChange (listener: (reason: ChangeReason) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  projects (): LocalProject[] {
    return this.store.current.AIProjects.map((p) => ({
      project: p.Project,
      models: p.Models.map((m) => this.describe(p.Project, m))
    }))
  }

  hasModels (): boolean {
    return this.store.current.AIProjects.some((p) => p.Models.length > 0)
  }

  /** The model to run a job on: the given CID, or the least busy one, preferring those whose server
   * answers health checks (a job addressed here still tries a model marked down: it may be back). */
  find (project: string, model: string, cid = ''): LocalModel | undefined {
    const models = this.projects().find((p) => p.project === project)?.models.filter((m) => m.model === model) ?? []
    if (cid !== '') return models.find((m) => m.cid === cid)
    return models.sort((a, b) => Number(b.available) - Number(a.available) || a.busy - b.busy)[0]
  }

  /** Counts a job on the model until the returned function is called (once). */
  acquire (m: LocalModel): () => void {
    const k = key(m.project, m.model, m.cid)
    this.busy.set(k, (this.busy.get(k) ?? 0) + 1)
    this.emit('busy')
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.busy.get(k) ?? 1) - 1
      if (left <= 0) this.busy.delete(k)
      else this.busy.set(k, left)
      this.emit('busy')
    }
  }

  setAvailable (project: string, model: string, cid: string, available: boolean): void {
    const k = key(project, model, cid)
    if (available === !this.unavailable.has(k)) return
    if (available) this.unavailable.delete(k)
    else this.unavailable.add(k)
    this.emit('health')
  }

  /** Registers a project with exactly these models (replacing the project's previous list). */
  async registerProject (project: string, inputs: ModelInput[]): Promise<'ok'> {
    requireCleanName(project, 'project')
    if (inputs.length === 0) throw new AicnError(ErrorCode.PARAM, 'models must list at least one model')
    const models: AIModelConfig[] = []
    for (const [index, input] of inputs.entries()) {
      const model = await this.validate(input, `models[${index}]`)
      if (models.some((m) => m.Model === model.Model && m.CID === model.CID)) {
        throw new AicnError(ErrorCode.PARAM, `models[${index}]: model "${model.Model}" with cid "${model.CID}" is listed twice`)
      }
      models.push(model)
    }
    await this.change((config) => {
      const existing = config.AIProjects.find((p) => p.Project === project)
      if (existing !== undefined) existing.Models = models
      else config.AIProjects.push({ Project: project, Models: models })
    })
    return 'ok'
  }

  async unregisterProject (project: string): Promise<'ok' | 'not existed'> {
    requireName(project, 'project')
    return await this.change((config) => {
      const before = config.AIProjects.length
      config.AIProjects = config.AIProjects.filter((p) => p.Project !== project)
      return config.AIProjects.length === before ? 'not existed' : 'ok'
    })
  }

  /** Adds the model, or replaces the one with the same (project, model, CID). */
  async registerModel (project: string, input: ModelInput): Promise<'ok'> {
    requireCleanName(project, 'project')
    const model = await this.validate(input, '')
    await this.change((config) => {
      const existing = config.AIProjects.find((p) => p.Project === project)
      if (existing === undefined) {
        config.AIProjects.push({ Project: project, Models: [model] })
        return
      }
      const at = existing.Models.findIndex((m) => m.Model === model.Model && m.CID === model.CID)
      if (at >= 0) existing.Models[at] = model
      else existing.Models.push(model)
    })
    return 'ok'
  }

  /** Removes the model with exactly this CID; the project goes too when it has no model left. */
  async unregisterModel (project: string, model: string, cid: string): Promise<'ok' | 'not existed'> {
    requireName(project, 'project')
    requireName(model, 'model')
    return await this.change((config) => {
      const existing = config.AIProjects.find((p) => p.Project === project)
      const at = existing?.Models.findIndex((m) => m.Model === model && m.CID === cid) ?? -1
      if (existing === undefined || at < 0) return 'not existed'
      existing.Models.splice(at, 1)
      if (existing.Models.length === 0) config.AIProjects = config.AIProjects.filter((p) => p !== existing)
      return 'ok'
    })
  }

  private async change<T> (mutate: (config: Config) => T): Promise<T> {
    let result: T
    try {
      result = await this.store.update(mutate)
    } catch (err) {
      throw new AicnError(ErrorCode.INTERNAL, `could not save the config: ${(err as Error).message}`)
    }
    this.emit('registration')
    return result
  }

  private async validate (input: ModelInput, where: string): Promise<AIModelConfig> {
    const prefix = where === '' ? '' : `${where}: `
    try {
      requireCleanName(input.model, 'model')
      if (input.api === '') throw new AicnError(ErrorCode.PARAM, 'model api can not be empty')
      if (!Number.isInteger(input.type) || input.type < 0 || input.type > MAX_TYPE) {
        throw new AicnError(ErrorCode.PARAM, `type must be 0 (chat), 1 (text to image), 2 (image edit), 3 (embeddings) or 4 (text completion), not ${input.type}`)
      }
      if (input.cid.length > 256) throw new AicnError(ErrorCode.PARAM, 'cid is longer than 256 characters')
      // The cid goes into response headers (X-AICN-CID): a CR LF there once leaked the busy counter.
      const badCid = badToken('cid', input.cid, 256)
      if (badCid !== undefined) throw new AicnError(ErrorCode.PARAM, badCid)
      await this.checkApi(input.api)
    } catch (err) {
      if (err instanceof AicnError && prefix !== '') throw new AicnError(err.code, prefix + err.message)
      throw err
    }
    return { Model: input.model, API: input.api, Type: input.type, CID: input.cid }
  }

  private describe (project: string, m: AIModelConfig): LocalModel {
    const k = key(project, m.Model, m.CID)
    return { project, model: m.Model, api: m.API, type: m.Type, cid: m.CID, busy: this.busy.get(k) ?? 0, available: !this.unavailable.has(k) }
  }

  private emit (reason: ChangeReason): void {
    for (const listener of this.listeners) listener(reason)
  }
}

function requireName (value: string, field: string): void {
  if (value.trim() === '') throw new AicnError(ErrorCode.PARAM, `${field} name can not be empty`)
  if (value.length > 256) throw new AicnError(ErrorCode.PARAM, `${field} name is longer than 256 characters`)
}

/** requireName for a name being registered (unregistering still takes any name a config holds). */
function requireCleanName (value: string, field: string): void {
  requireName(value, field)
  // The job protocols refuse such names where they arrive (src/core/identifiers.ts): a model
  // registered with one could never be reached, and its names reach heartbeats, logs and headers.
  const bad = badName(field, value)
  if (bad !== undefined) throw new AicnError(ErrorCode.PARAM, `${field} name: ${bad}`)
}
