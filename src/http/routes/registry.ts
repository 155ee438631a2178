// `/api/v0` registration and project endpoints (seed 002 and seed 000; reference §9.4.3–9.4.4).
import { AicnError, ErrorCode } from '../../errors.ts'
import type { LocalRegistry, ModelInput } from '../../registry/local.ts'
import { LIST_DEFAULT, PEERS_DEFAULT, PEERS_MAX, type NetworkRegistry } from '../../registry/network.ts'
import { Params } from '../params.ts'
import { ok } from '../reply.ts'
import type { Route, RouteContext } from '../router.ts'
import { remoteCall } from './remote-call.ts'

const BOTH: Array<'GET' | 'POST'> = ['GET', 'POST']
const route = (path: string, methods: Array<'GET' | 'POST'>, handler: Route['handler']): Route => ({ path: `/api/v0${path}`, methods, handler })
/** Registration changes what this node offers the network: only its operator may (src/http/access.ts). */
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

export function registryRoutes (local: LocalRegistry, network: NetworkRegistry): Route[] {
  return [
    admin('/ai/project/register', async (rc) => ok(undefined, await local.registerProject(project(rc), modelsList(rc)))),
    admin('/ai/project/unregister', async (rc) => ok(undefined, await local.unregisterProject(project(rc)))),
    admin('/ai/model/register', async (rc) => ok(undefined, await local.registerModel(project(rc), modelInput(rc.params)))),
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
