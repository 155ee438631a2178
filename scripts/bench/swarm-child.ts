// A process that hosts many simulated workers (./swarm-peer.ts) for scripts/bench/swarm.ts, driven over
// IPC. Commands: start (make the peers), join (connect them to the input node, a bounded number of dials
// at a time), status, watch/arrivals (spread rounds), register (one peer announces a new model), stop.
import '../../src/core/polyfill.ts'
import { cpuUsage } from 'node:process'
import { SimPeer, SwarmProcess, type SwarmSettings } from './swarm-peer.ts'
import type { ViewProject } from '../../src/registry/view-types.ts'

export interface ChildStart { type: 'start', from: number, to: number, settings: SwarmSettings, projects: Array<{ project: string, model: string }>, dialConcurrency: number, joinTimeoutMs: number }
export type ChildCommand =
  | ChildStart
  | { type: 'join', id: number }
  | { type: 'status', id: number }
  | { type: 'watch', id: number, model: string }
  | { type: 'watched', id: number, model: string }
  | { type: 'arrivals', id: number, model: string }
  | { type: 'register', id: number, index: number, model: string, project: string }
  | { type: 'stop', id: number }

/** The address peer `index` dials from: one address per peer, all in 127.0.0.0/8, never 127.0.0.1. */
export function sourceAddress (index: number): string {
  return `127.1.${Math.floor(index / 250)}.${(index % 250) + 1}`
}

let proc: SwarmProcess | undefined
const peers: SimPeer[] = []
let start: ChildStart | undefined

function reply (id: number, body: Record<string, unknown>): void {
  process.send?.({ id, ...body })
}

function projectsOf (index: number, projects: ChildStart['projects']): ViewProject[] {
  const p = projects[index % projects.length]!
  return [{ project: p.project, models: [{ model: p.model, cid: '', type: 0, busy: 0, available: true }] }]
}

async function joinAll (): Promise<{ joined: number, failed: number, attempts: number }> {
  const deadline = Date.now() + start!.joinTimeoutMs
  let next = 0
  let failed = 0
  const lane = async (): Promise<void> => {
    while (next < peers.length) {
      const peer = peers[next++]!
      try { await peer.join(deadline) } catch { failed++ }
    }
  }
  await Promise.all(Array.from({ length: start!.dialConcurrency }, lane))
  return { joined: peers.filter((p) => p.joined).length, failed, attempts: peers.reduce((s, p) => s + p.dialAttempts, 0) }
}

process.on('message', (command: ChildCommand) => {
  void (async () => {
    switch (command.type) {
      case 'start': {
        start = command
        proc = new SwarmProcess(command.settings)
        for (let i = command.from; i < command.to; i++) peers.push(new SimPeer(i, proc, sourceAddress(i), projectsOf(i, command.projects)))
        // Key generation and node creation, a few at a time so the event loop keeps breathing.
        for (let i = 0; i < peers.length; i += 20) await Promise.all(peers.slice(i, i + 20).map(async (p) => { await p.start() }))
        process.send?.({ id: 0, started: peers.length })
        return
      }
      case 'join':
        reply(command.id, await joinAll())
        return
      case 'status': {
        const known = peers.filter((p) => p.joined).map((p) => p.knownCount)
        const usage = cpuUsage()
        reply(command.id, {
          joined: peers.filter((p) => p.joined).length,
          minKnown: known.length === 0 ? 0 : Math.min(...known),
          received: proc!.received,
          published: proc!.published,
          prunes: proc!.prunes,
          synced: proc!.synced,
          syncErrors: proc!.syncErrors,
          knowInput: peers.filter((p) => p.knows(start!.settings.inputAddr.split('/p2p/')[1]!)).length,
          inputWithoutSync: proc!.inputWithoutSync,
          disconnects: peers.reduce((n, p) => n + p.disconnects, 0),
          cpuMs: (usage.user + usage.system) / 1000,
          rssMb: process.memoryUsage().rss / 1048576
        })
        return
      }
      case 'watch':
        proc!.watches.set(command.model, new Map())
        reply(command.id, {})
        return
      case 'watched':
        reply(command.id, { count: proc!.watches.get(command.model)?.size ?? 0 })
        return
      case 'arrivals': {
        const arrivals = proc!.watches.get(command.model)
        proc!.watches.delete(command.model)
        reply(command.id, { arrivals: arrivals === undefined ? [] : [...arrivals] })
        return
      }
      case 'register': {
        const peer = peers.find((p) => p.index === command.index)
        if (peer === undefined) { reply(command.id, { error: 'no such peer here' }); return }
        peer.projects = [...peer.projects, { project: command.project, models: [{ model: command.model, cid: '', type: 0, busy: 0, available: true }] }]
        reply(command.id, { at: await peer.publish(), nodeId: peer.id })
        return
      }
      case 'stop':
        await Promise.all(peers.map(async (p) => { await p.stop() }))
        reply(command.id, {})
        process.exit(0)
    }
  })().catch((err: Error) => {
    process.send?.({ id: (command as { id?: number }).id ?? 0, error: err.stack ?? err.message })
  })
})

// The parent going away ends us too.
process.on('disconnect', () => { process.exit(0) })
