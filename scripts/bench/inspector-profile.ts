// A V8 CPU profile of a window of another Node process's life, through its inspector (the process runs
// with --inspect=127.0.0.1:0 and prints its WebSocket URL; Node 20 needs --experimental-websocket for the
// WebSocket client here). `--cpu-prof` covers a whole run; this covers only what is asked, e.g. a rest
// phase (swarm.ts --rest-profile).
import { writeFile } from 'node:fs/promises'

interface Cdp { call: (method: string, params?: unknown) => Promise<any>, close: () => void }

async function connect (url: string): Promise<Cdp> {
  const Ws = (globalThis as any).WebSocket
  if (Ws === undefined) throw new Error('no WebSocket client: run node with --experimental-websocket')
  const ws = new Ws(url)
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject })
  let next = 1
  const pending = new Map<number, (m: any) => void>()
  ws.onmessage = (event: { data: string }) => {
    const message = JSON.parse(event.data)
    if (message.id !== undefined) pending.get(message.id)?.(message)
  }
  return {
    call: async (method, params) => await new Promise((resolve, reject) => {
      const id = next++
      pending.set(id, (m) => { pending.delete(id); if (m.error !== undefined) reject(new Error(JSON.stringify(m.error))); else resolve(m.result) })
      ws.send(JSON.stringify({ id, method, params }))
    }),
    close: () => { ws.close() }
  }
}

/** The inspector URL a process printed ("Debugger listening on ws://…"), if any. */
export function inspectorUrl (output: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1]
}

/** Starts profiling; the returned function stops and writes the profile to `file`. */
export async function startProfile (url: string, file: string): Promise<() => Promise<void>> {
  const cdp = await connect(url)
  await cdp.call('Profiler.enable')
  await cdp.call('Profiler.setSamplingInterval', { interval: 1000 })
  await cdp.call('Profiler.start')
  return async () => {
    const { profile } = await cdp.call('Profiler.stop')
    await writeFile(file, JSON.stringify(profile))
    cdp.close()
  }
}
