// Model names as gateway clients write them: a plain model name, or "project/model" to be explicit. Only
// what the fresh view can route to counts. Any peer can announce any project, so a plain name must not be
// something a stranger can take over or break:
// - the projects the operator lists in `Gateway.Projects` come first, in their order;
// - otherwise a plain name keeps the project it first resolved to for as long as that project serves it,
//   so a newcomer announcing the same name elsewhere neither steals it nor makes it ambiguous;
// - a name that was never unique and is served by several projects must be written "project/model".
// The list behind /v1/models is computed at most once a second and bounded.
import { AicnError, ErrorCode } from '../core/errors.ts'
import type { NetworkView } from '../registry/view.ts'

export interface ResolvedModel { project: string, model: string }

export interface OpenAiModel { id: string, object: 'model', created: number, owned_by: string, project: string, model: string, type: number, nodes: number }

interface Routable { project: string, model: string, type: number, nodes: number }

/** Names looked at per project, and the most models /v1/models lists. */
const MAX_NAMES = 10_000
const MAX_LISTED = 2_000
/** Plain names remembered with their first project; the oldest are forgotten past this. */
const MAX_REMEMBERED = 10_000
const CACHE_MS = 1_000

export interface ModelDirectoryOptions {
  /** `Gateway.Projects`: where plain names resolve first, in this order. */
  projects?: string[]
  now?: () => number
}

export class ModelDirectory {
  readonly #view: NetworkView
  readonly #preferred: string[]
  readonly #now: () => number
  readonly #firstProject = new Map<string, string>()
  #cached?: { at: number, all: Routable[], byName: Map<string, Routable[]> }

  constructor (view: NetworkView, options: ModelDirectoryOptions = {}) {
    this.#view = view
    this.#preferred = options.projects ?? []
    this.#now = options.now ?? Date.now
  }

  /** What /v1/models lists: a model under its plain name where that name resolves to it. */
  list (): OpenAiModel[] {
    return this.#routable().all.slice(0, MAX_LISTED).map((m) => ({
      id: this.#plainOwner(m.model)?.project === m.project ? m.model : `${m.project}/${m.model}`,
      object: 'model',
      created: 0,
      owned_by: m.project,
      project: m.project,
      model: m.model,
      type: m.type,
      nodes: m.nodes
    }))
  }

  resolve (name: string): ResolvedModel {
    const owner = this.#plainOwner(name)
    if (owner !== undefined) return { project: owner.project, model: name }
    const plain = this.#routable().byName.get(name) ?? []
    if (plain.length > 1) {
      throw new AicnError(ErrorCode.PARAM, `model "${name}" is served by several projects (${plain.slice(0, 10).map((m) => m.project).join(', ')}); name it as "project/${name}"`)
    }
    // Model names may contain "/" themselves (e.g. "meta-llama/Llama-3-8B"), so try every split point.
    for (let at = name.indexOf('/'); at > 0; at = name.indexOf('/', at + 1)) {
      const project = name.slice(0, at)
      const model = name.slice(at + 1)
      if ((this.#routable().byName.get(model) ?? []).some((m) => m.project === project)) return { project, model }
    }
    throw new AicnError(ErrorCode.NO_NODE, `The model \`${name}\` does not exist or no node serves it right now`, { status: 404 })
  }

  /** The project a plain name stands for, if any: configured first, then the one project serving it,
   * then the project it stood for before others appeared. */
  #plainOwner (name: string): Routable | undefined {
    const serving = this.#routable().byName.get(name) ?? []
    if (serving.length === 0) return undefined
    for (const project of this.#preferred) {
      const preferred = serving.find((m) => m.project === project)
      if (preferred !== undefined) return preferred
    }
    if (serving.length === 1) {
      this.#remember(name, serving[0].project)
      return serving[0]
    }
    const first = this.#firstProject.get(name)
    return first === undefined ? undefined : serving.find((m) => m.project === first)
  }

  #remember (name: string, project: string): void {
    if (this.#firstProject.get(name) === project) return
    this.#firstProject.delete(name)
    this.#firstProject.set(name, project)
    if (this.#firstProject.size > MAX_REMEMBERED) this.#firstProject.delete(this.#firstProject.keys().next().value as string)
  }

  /** Every routable (project, model) with the number of nodes that serve it, recomputed at most once a second. */
  #routable (): { all: Routable[], byName: Map<string, Routable[]> } {
    const now = this.#now()
    if (this.#cached !== undefined && now - this.#cached.at < CACHE_MS) return this.#cached
    const all: Routable[] = []
    const byName = new Map<string, Routable[]>()
    for (const project of this.#view.projects(MAX_NAMES)) {
      for (const model of this.#view.models(project, MAX_NAMES)) {
        const candidates = this.#view.candidates(project, model)
        if (candidates.length === 0) continue
        const entry = { project, model, type: candidates[0].type, nodes: candidates.length }
        all.push(entry)
        byName.set(model, [...(byName.get(model) ?? []), entry])
      }
    }
    this.#cached = { at: now, all, byName }
    return this.#cached
  }
}
