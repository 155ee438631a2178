// What every panel shows comes from one poll of the node, every two seconds while the page is visible
// (and at once when it becomes visible again): the node's status, its identity and its network view.
import { call, callRaw, errorText } from './api.ts'
import type { NetworkSnapshot, NodeStatus, PeerInfo } from './types.ts'

export interface Snapshot {
  status?: NodeStatus
  id?: PeerInfo
  network?: NetworkSnapshot
  /** the last poll's failure, '' when it succeeded */
  error: string
  /** Date.now() of the last successful poll */
  updated?: number
}

const INTERVAL_MS = 2000

export class Poller {
  snapshot: Snapshot = { error: '' }
  readonly #listeners = new Set<(s: Snapshot) => void>()
  #timer: number | undefined
  #running: Promise<void> | undefined

  subscribe (listener: (s: Snapshot) => void): void {
    this.#listeners.add(listener)
    if (this.snapshot.updated !== undefined || this.snapshot.error !== '') listener(this.snapshot)
  }

  start (): void {
    document.addEventListener('visibilitychange', () => { if (!document.hidden) void this.refresh() })
    void this.refresh()
  }

  /** Polls now (or joins the poll under way) and schedules the next. */
  async refresh (): Promise<void> {
    this.#running ??= this.#poll().finally(() => { this.#running = undefined })
    await this.#running
  }

  async #poll (): Promise<void> {
    window.clearTimeout(this.#timer)
    try {
      const [status, id, network] = await Promise.all([
        call<NodeStatus>('/api/v0/node/status'),
        callRaw<PeerInfo>('/api/v0/id'),
        call<NetworkSnapshot>('/api/v0/network/view')
      ])
      this.snapshot = { status, id, network, error: '', updated: Date.now() }
    } catch (err) {
      this.snapshot = { ...this.snapshot, error: errorText(err) }
    }
    for (const listener of this.#listeners) listener(this.snapshot)
    this.#timer = window.setTimeout(() => { if (!document.hidden) void this.refresh() }, INTERVAL_MS)
  }
}
