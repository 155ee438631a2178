// `/api/v0` registration and project endpoints (README.md, "Models and projects").
import { AicnError, ErrorCode } from '../../core/errors.ts'
import type { LocalRegistry, ModelInput } from '../../registry/local.ts'
import { LIST_DEFAULT, PEERS_DEFAULT, PEERS_MAX, type NetworkRegistry } from '../../protocols/network.ts'
import { Params } from '../../web/params.ts'
import { ok, type Reply } from '../../web/reply.ts'
import type { Route, RouteContext } from '../../web/route.ts'
import { remoteCall } from './remote-call.ts'

const BOTH: Array<'GET' | 'POST'> = ['GET', 'POST']
const route = (path: string, methods: Array<'GET' | 'POST'>, handler: Route['handler']): Route => ({ path: `/api/v0${path}`, methods, handler })
/** Registration changes what this node offers the network: only its operator may (src/api/access.ts). */
const admin = (path: string, handler: Route['handler']): Route => ({ path: `/api/v0${path}`, methods: ['POST'], handler, access: 'admin' })

/** One model of a register call; keys in any case (`Model` or `model`, as the Go node accepts). */
function modelInput (params: Params, where = ''): ModelInput {
  try {
    return {
      model: params.string('model', { required: true, maxLength: 256, identifier: true }),
      api: params.string('api', { required: true, maxLength: 2048 }),
      type: params.int('type', { default: 0, min: 0, max: 4 }),
      cid: params.string('cid', { default: '', maxLength: 256, identifier: true })
    }
  } catch (err) {
    // Name the list entry, e.g. `models[1]: missing field "api"`.
    if (err instanceof AicnError && where !== '') throw new AicnError(err.code, `${where}: ${err.message}`)
    throw err
  }
}

function modelsList (rc: RouteContext): ModelInput[] {
  const models = rc.params.raw('models')
  if (!Array.isArray(models)) throw new AicnError(ErrorCode.PARAM, 'models must be a list of {"model","api","type","cid"}')
  if (models.length > 1000) throw new AicnError(ErrorCode.PARAM, 'models lists more than 1000 models')
  return models.map((entry, index) => {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new AicnError(ErrorCode.PARAM, `models[${index}] must be an object`)
    return modelInput(Params.from({}, entry), `models[${index}]`)
  })
}

const project = (rc: RouteContext): string => rc.params.string('project', { required: true, maxLength: 256, identifier: true })

/** Whether a just-registered model's server answers: true/false, or undefined when not known in time. */
export type ModelProbe = (project: string, model: string, cid: string) => Promise<boolean | undefined>

/** The register answer: still `"ok"` (the Go node's clients check it), with `data` saying which model
 * servers do not answer yet, so an operator sees at once why a model is not routed (issue 15). */
async function registered (probe: ModelProbe | undefined, projectName: string, models: ModelInput[]): Promise<Reply> {
  if (probe === undefined) return ok(undefined, 'ok')
  const verdicts = await Promise.all(models.map(async (m) => await probe(projectName, m.model, m.cid)))
  const down = models.filter((_, i) => verdicts[i] === false).map((m) => m.model)
  if (down.length === 0) return ok(undefined, 'ok')
  return ok({
    not_answering: down,
    warning: `the model server of ${down.join(', ')} does not answer yet; it is probed every few seconds and routed to as soon as it answers`
  }, 'ok')
}

export function registryRoutes (local: LocalRegistry, network: NetworkRegistry, probe?: ModelProbe): Route[] {
  return [
    admin('/ai/project/register', async (rc) => {
      const name = project(rc)
      const models = modelsList(rc)
      await local.registerProject(name, models)
      return await registered(probe, name, models)
    }),
    admin('/ai/project/unregister', async (rc) => ok(undefined, await local.unregisterProject(project(rc)))),
    admin('/ai/model/register', async (rc) => {
      const name = project(rc)
      const model = modelInput(rc.params)
      await local.registerModel(name, model)
      return await registered(probe, name, [model])
    }),
    admin('/ai/model/unregister', async (rc) => ok(undefined, await local.unregisterModel(
      project(rc), rc.params.string('model', { required: true, maxLength: 256, identifier: true }), rc.params.string('cid', { default: '', maxLength: 256, identifier: true })))),
    route('/ai/project/peer', BOTH, async (rc) => ok(await network.projectsOf(rc.params.string('node_id', { required: true }), remoteCall(rc)))),
    route('/peers', BOTH, async () => ok(network.nodes())),
    route('/ai/projects/list', BOTH, async (rc) => ok(network.projects(count(rc, LIST_DEFAULT)))),
    route('/ai/projects/models', BOTH, async (rc) => ok(network.models(project(rc), count(rc, LIST_DEFAULT)))),
    route('/ai/projects/peers', BOTH, async (rc) => ok(network.peers(project(rc), rc.params.string('model', { required: true, maxLength: 256, identifier: true }), Math.min(count(rc, PEERS_DEFAULT), PEERS_MAX))))
  ]
}

/** `number`: how many entries at most; 0 or absent means the default. */
function count (rc: RouteContext, fallback: number): number {
  const n = rc.params.int('number', { default: 0, min: 0, max: 100_000 })
  return n === 0 ? fallback : n
}
