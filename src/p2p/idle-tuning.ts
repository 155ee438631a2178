// What wakes an idle node, and how often (issue 18; counted with strace and a timer census of an idle
// worker, docs/benchmarks.md "Start-up and idle"). On this kind of VM an idle vCPU halts and every wake-up
// costs far more than the work it does, so each periodic timer has to earn its keep:
// - gossipsub's heartbeat (mesh upkeep, IHAVE gossip to non-mesh peers) runs every second by default. A
//   worker's mesh is its input node or two; a new peer joins the mesh at the next heartbeat, and messages
//   are pushed along the mesh as they come, not at heartbeats. Workers beat every WORKER_GOSSIP_HEARTBEAT_MS;
//   a relaying (input) node keeps the default: its heartbeat is what grafts joining workers quickly.
// - gossipsub's peer-score decay runs on its own 1 s timer. Scores matter where peers are many (the input
//   node); on a worker it decays every WORKER_SCORE_DECAY_MS (penalties there last longer, which only
//   ever hits a misbehaving peer).
// - libp2p's connection monitor pings every connection every 10 s (an input node with 1,000 workers: 100
//   ping streams a second). Every CONNECTION_PING_MS instead; a dead peer whose TCP connection does not
//   close is noticed that much later (a closed one at once, src/registry/liveness/index.ts).
// - prom-client's event-loop delay histogram samples every EVENT_LOOP_SAMPLE_MS (its default, 10 ms, was
//   100 wake-ups a second on its own).

/** gossipsub heartbeat of a node that does not relay (gossipsub's default: 1 s). */
export const WORKER_GOSSIP_HEARTBEAT_MS = 2_000
/** gossipsub peer-score decay interval of a node that does not relay (gossipsub's default: 1 s). */
export const WORKER_SCORE_DECAY_MS = 10_000
/** libp2p connection monitor ping interval (libp2p's default: 10 s). */
export const CONNECTION_PING_MS = 30_000
/** How often prom-client's nodejs_eventloop_lag metrics sample the event loop (its default: 10 ms). */
export const EVENT_LOOP_SAMPLE_MS = 5_000

/** gossipsub options for a node that relays (`hub`) or not. */
export function gossipTimers (hub: boolean): { heartbeatInterval?: number, scoreParams?: { decayInterval: number } } {
  return hub ? {} : { heartbeatInterval: WORKER_GOSSIP_HEARTBEAT_MS, scoreParams: { decayInterval: WORKER_SCORE_DECAY_MS } }
}
