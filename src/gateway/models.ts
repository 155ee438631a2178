// Model names as gateway clients write them: a plain model name when exactly one project serves it, or
// "project/model" to be explicit. Only what the fresh view can route to counts.
import { AicnError, ErrorCode } from '../errors.ts'
import type { NetworkView } from '../registry/view.ts'

export interface ResolvedModel { project: string, model: string }

export interface OpenAiModel { id: string, object: 'model', created: number, owned_by: string, project: string, model: string, type: number, nodes: number }

const MAX_NAMES = 10_000

/** Every routable (project, model) with the number of nodes that serve it. */
function routable (view: NetworkView): Array<{ project: string, model: string, type: number, nodes: number }> {
  const out = []
  for (const project of view.projects(MAX_NAMES)) {
    for (const model of view.models(project, MAX_NAMES)) {
      const candidates = view.candidates(project, model)
      if (candidates.length > 0) out.push({ project, model, type: candidates[0].type, nodes: candidates.length })
    }
  }
  return out
}

export function listModels (view: NetworkView): OpenAiModel[] {
  const all = routable(view)
  const projectsOf = new Map<string, number>()
  for (const m of all) projectsOf.set(m.model, (projectsOf.get(m.model) ?? 0) + 1)
  return all.map((m) => ({
    // A name served by one project is listed plain; otherwise only "project/model" is unambiguous.
    id: projectsOf.get(m.model) === 1 ? m.model : `${m.project}/${m.model}`,
    object: 'model',
    created: 0,
    owned_by: m.project,
    project: m.project,
    model: m.model,
    type: m.type,
    nodes: m.nodes
  }))
}

export function resolveModel (view: NetworkView, name: string): ResolvedModel {
  const all = routable(view)
  const plain = all.filter((m) => m.model === name)
  if (plain.length === 1) return { project: plain[0].project, model: name }
  if (plain.length > 1) {
    throw new AicnError(ErrorCode.PARAM, `model "${name}" is served by several projects (${plain.map((m) => m.project).join(', ')}); name it as "project/${name}"`)
  }
  // Model names may contain "/" themselves (e.g. "meta-llama/Llama-3-8B"), so try every split point.
  for (let at = name.indexOf('/'); at > 0; at = name.indexOf('/', at + 1)) {
    const project = name.slice(0, at)
    const model = name.slice(at + 1)
    if (all.some((m) => m.project === project && m.model === model)) return { project, model }
  }
  throw new AicnError(ErrorCode.NO_NODE, `The model \`${name}\` does not exist or no node serves it right now`, { status: 404 })
}
