// View sync (/aicn/view/1.0.0) as a libp2p service (view-sync.ts): a node that joins gets the network's
// view, as signed heartbeats, from the node it joined through. The heartbeats give it what it serves and
// take what it receives (serveWith(), before the node starts: src/protocols/heartbeat/heartbeats.ts);
// list it before them in the services map, since they take it as a component.
//
//   services: { viewSync: viewSync({ topic, refreshMs, requestsPerMinute, log }), heartbeats: … }
import { ViewSync, type ViewSyncComponents, type ViewSyncInit } from './view-sync.ts'

export { MAX_SYNC_ENTRIES, MIN_REFRESH_MS, RESYNC_MS, SignedHeartbeats, VIEW_PROTOCOL, ViewSync, signEntry, type SignedEntry, type SignedPubSubMessage, type SyncResult, type ViewSource, type ViewSyncComponents, type ViewSyncInit } from './view-sync.ts'

export function viewSync (init: ViewSyncInit): (components: ViewSyncComponents) => ViewSync {
  return (components) => new ViewSync(components, init)
}
