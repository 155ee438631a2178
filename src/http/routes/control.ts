// `/api/v0` node-control endpoints (seed 002). Shapes follow the seed: the envelope where it shows one,
// bare JSON for id, swarm/peers, swarm/addrs and pubsub/peers. Read endpoints take GET and POST.
import type { NodeControl, RemoteCall } from '../../control.ts'
import { parseDuration } from '../../config/duration.ts'
import { AicnError, ErrorCode } from '../../errors.ts'
import { ok, raw, text, type Reply } from '../reply.ts'
import type { Route, RouteContext } from '../server.ts'

const BOTH: Array<'GET' | 'POST'> = ['GET', 'POST']
const POST: Array<'GET' | 'POST'> = ['POST']

function route (path: string, methods: Array<'GET' | 'POST'>, handler: (rc: RouteContext) => Promise<Reply>): Route {
  return { path: `/api/v0${path}`, methods, handler }
}

const MAX_TIMEOUT_MS = 5 * 60_000

/** Queries that reach another node take an optional `timeout` (a Go duration such as "5s", as kubo's API). */
function remoteCall (rc: RouteContext): RemoteCall {
  const text = rc.params.optionalString('timeout')
  if (text === undefined || text === '') return { signal: rc.signal }
  let timeoutMs: number
  try {
    timeoutMs = parseDuration(text)
  } catch {
    throw new AicnError(ErrorCode.PARAM, `timeout "${text}" is not a duration such as "10s"`)
  }
  if (timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) throw new AicnError(ErrorCode.PARAM, 'timeout must be between 1ms and 5m')
  return { signal: rc.signal, timeoutMs }
}

export function controlRoutes (control: NodeControl): Route[] {
  const nodeId = (rc: RouteContext): string => rc.params.string('node_id', { required: true })
  const nodeAddr = (rc: RouteContext): string => rc.params.string('node_addr', { required: true })
  return [
    route('/id', BOTH, async () => raw(await control.id())),
    route('/peers', BOTH, async () => ok(await control.peers())),
    route('/peer', BOTH, async (rc) => ok(await control.peer(nodeId(rc), remoteCall(rc)))),
    route('/host/info', BOTH, async (rc) => ok(await control.hostInfo(nodeId(rc), remoteCall(rc)))),
    route('/swarm/peers', BOTH, async () => raw(control.swarmPeers())),
    route('/swarm/addrs', BOTH, async () => raw(await control.swarmAddrs())),
    route('/swarm/connect', POST, async (rc) => { await control.swarmConnect(nodeAddr(rc)); return ok() }),
    route('/swarm/disconnect', POST, async (rc) => { await control.swarmDisconnect(nodeAddr(rc)); return ok() }),
    route('/pubsub/peers', BOTH, async () => raw(control.pubsubPeers())),
    route('/rendezvous/peers', BOTH, async (rc) => ok(await control.rendezvousPeers(rc.signal))),
    route('/bootstrap/list', BOTH, async () => ok(control.bootstrapList())),
    route('/bootstrap/add', POST, async (rc) => { await control.bootstrapAdd(nodeAddr(rc)); return ok() }),
    route('/bootstrap/rm', POST, async (rc) => { await control.bootstrapRm(nodeAddr(rc)); return ok() }),
    route('/debug/metrics/prometheus', BOTH, async () => { const m = await control.metrics(); return text(m.body, m.contentType) }),
    { path: '/metrics', methods: ['GET'], handler: async () => { const m = await control.metrics(); return text(m.body, m.contentType) } }
  ]
}
