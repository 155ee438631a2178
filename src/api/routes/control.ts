// `/api/v0` node-control endpoints (README.md, "API"). Shapes follow the Go node's API: the envelope where it has one,
// bare JSON for id, swarm/peers, swarm/addrs and pubsub/peers. Read endpoints take GET and POST; the ones
// that change the node's connections or config are admin routes (src/api/access.ts).
import type { HostInfo } from '../../hostinfo/index.ts'
import type { PeerInfo } from '../../p2p/peer-info.ts'
import type { SwarmPeer } from '../../p2p/swarm.ts'
import { remoteCall, type RemoteCall } from './remote-call.ts'
import { ok, raw, text, type Reply } from '../../web/reply.ts'
import type { Access } from '../../web/route.ts'
import type { Route, RouteContext } from '../../web/route.ts'

/** What these routes ask of the node; src/node/control.ts implements it (the API never imports node/). */
export interface ControlOperations {
  id: () => Promise<PeerInfo>
  peer: (nodeId: string, call: RemoteCall) => Promise<PeerInfo>
  hostInfo: (nodeId: string, call: RemoteCall) => Promise<HostInfo>
  swarmPeers: () => SwarmPeer[]
  swarmAddrs: () => Promise<Array<{ peer: string, addrs: string[] }>>
  swarmConnect: (nodeAddr: string) => Promise<void>
  swarmDisconnect: (nodeAddr: string) => Promise<void>
  pubsubPeers: () => string[]
  rendezvousPeers: (signal: AbortSignal) => Promise<string[]>
  bootstrapList: () => string[]
  bootstrapAdd: (nodeAddr: string) => Promise<void>
  bootstrapRm: (nodeAddr: string) => Promise<void>
  metrics: () => Promise<{ body: string, contentType: string }>
}

const BOTH: Array<'GET' | 'POST'> = ['GET', 'POST']
const POST: Array<'GET' | 'POST'> = ['POST']

function route (path: string, methods: Array<'GET' | 'POST'>, handler: (rc: RouteContext) => Promise<Reply>, access: Access = 'open'): Route {
  return { path: `/api/v0${path}`, methods, handler, access }
}

export function controlRoutes (control: ControlOperations): Route[] {
  const nodeId = (rc: RouteContext): string => rc.params.string('node_id', { required: true })
  const nodeAddr = (rc: RouteContext): string => rc.params.string('node_addr', { required: true })
  return [
    route('/id', BOTH, async () => raw(await control.id())),
    route('/peer', BOTH, async (rc) => ok(await control.peer(nodeId(rc), remoteCall(rc)))),
    route('/host/info', BOTH, async (rc) => ok(await control.hostInfo(nodeId(rc), remoteCall(rc)))),
    route('/swarm/peers', BOTH, async () => raw(control.swarmPeers())),
    route('/swarm/addrs', BOTH, async () => raw(await control.swarmAddrs())),
    route('/swarm/connect', POST, async (rc) => { await control.swarmConnect(nodeAddr(rc)); return ok() }, 'admin'),
    route('/swarm/disconnect', POST, async (rc) => { await control.swarmDisconnect(nodeAddr(rc)); return ok() }, 'admin'),
    route('/pubsub/peers', BOTH, async () => raw(control.pubsubPeers())),
    route('/rendezvous/peers', BOTH, async (rc) => ok(await control.rendezvousPeers(rc.signal))),
    route('/bootstrap/list', BOTH, async () => ok(control.bootstrapList())),
    route('/bootstrap/add', POST, async (rc) => { await control.bootstrapAdd(nodeAddr(rc)); return ok() }, 'admin'),
    route('/bootstrap/rm', POST, async (rc) => { await control.bootstrapRm(nodeAddr(rc)); return ok() }, 'admin'),
    route('/debug/metrics/prometheus', BOTH, async () => { const m = await control.metrics(); return text(m.body, m.contentType) }),
    { path: '/metrics', methods: ['GET'], handler: async () => { const m = await control.metrics(); return text(m.body, m.contentType) } }
  ]
}
