// The node's databases on disk, all under App.Datastore: libp2p's peer store, the connection history, the
// network's view (pruned every heartbeat interval) and the gateway's keys and usage.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { LevelDatastore } from 'datastore-level'
import type { Config } from '../config/types.ts'
import type { Logger } from '../core/logger.ts'
import { openGatewayDb, type GatewayDb } from '../gateway/store.ts'
import { ConnectionHistory } from '../p2p/history.ts'
import { NetworkView } from '../registry/view.ts'
import { GO_DEFAULT_INTERVAL_MS, routingWindowMs } from '../registry/rhythm.ts'
import type { StopSteps } from './stop-steps.ts'

export interface NodeStorage {
  datastore: LevelDatastore
  history: ConnectionHistory
  view: NetworkView
  gatewayDb: GatewayDb
}

/** Opens every database (each added to `steps` as it opens) and starts the view's pruning. */
export async function openStorage (config: Config, heartbeatMs: number, log: Logger, steps: StopSteps): Promise<NodeStorage> {
  const dir = config.App.Datastore
  const peerstorePath = join(dir, 'peerstore')
  await mkdir(peerstorePath, { recursive: true })
  const datastore = new LevelDatastore(peerstorePath)
  await datastore.open()
  steps.add('peer store', async () => { await datastore.close() })
  const history = new ConnectionHistory(join(dir, 'conns.db'), log)
  await history.open()
  steps.add('connection history', async () => { await history.close() })
  // A node counts for routing while heard within three of its own heartbeat intervals (rhythm.ts); an
  // entry saved by an older version, without its interval, gets the window of a Go node's default.
  const view = new NetworkView({ path: join(dir, 'view.db'), routingFreshMs: routingWindowMs(GO_DEFAULT_INTERVAL_MS), log })
  await view.open()
  steps.add('network view', async () => { await view.close() })
  const pruner = setInterval(() => { view.prune() }, heartbeatMs)
  pruner.unref()
  steps.add('view pruning', () => { clearInterval(pruner) })
  const gatewayDb = await openGatewayDb(join(dir, 'gateway.db'))
  steps.add('gateway database', async () => { await gatewayDb.close() })
  return { datastore, history, view, gatewayDb }
}
