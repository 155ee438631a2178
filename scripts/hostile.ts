// Hostile peers and hostile model servers (issue 19), for test/integration/hostile.test.ts and
// scripts/bench/hostile.ts. Everything here is bounded in count, bytes and time, and talks to 127.0.0.1
// only. The peer is an in-process libp2p node with the network's key (scripts/fuzz.ts, startRogue).
import http from 'node:http'
import { readFile } from 'node:fs/promises'
import type { Libp2p } from 'libp2p'
import type { Stream, StreamCloseEvent } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { JOB_PROTOCOL } from '../src/protocols/job/job-protocol.ts'
import { CHAT_PROXY_PROTOCOL } from '../src/compat/chat-proxy/chat-proxy.ts'
import { JobKind } from '../src/core/job-types.ts'
import { encodeFrame, requestHeadFrame } from '../src/protocols/job/job-frames.ts'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { preSharedKey } from '@libp2p/pnet'
import { gossipsub, StrictSign } from '@libp2p/gossipsub'
import * as lp from 'it-length-prefixed'
import { swarmKeyFromHex } from '../src/p2p/psk.ts'
import { goMessageId } from '../src/p2p/patches/pubsub-go-rules.ts'
import { encodeHeartbeat, NODE_TYPE } from '../src/protocols/heartbeat-codec.ts'
import { VIEW_PROTOCOL } from '../src/registry/view-sync/index.ts'
import { protocol } from '../src/proto/index.ts'

const KiB = 1024
const MiB = 1024 * KiB

// ---- measuring

export async function rssBytes (pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid ?? 0}/status`, 'utf8')
  return 1024 * Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN)
}

/** Samples a process's RSS every `everyMs` until stop() is called; the highest value seen. */
export function rssPeak (pid: number | undefined, everyMs = 50): { stop: () => Promise<number> } {
  let peak = 0
  let running = true
  const loop = (async () => {
    while (running) {
      try { peak = Math.max(peak, await rssBytes(pid)) } catch {}
      await new Promise((resolve) => setTimeout(resolve, everyMs))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return peak
    }
  }
}

/** Asks `/api/v0/id` every `everyMs` until stop(); the slowest answer in ms (a failure counts as the
 * timeout). This is how a blocked event loop shows. */
export function idLatency (api: string, everyMs = 100, timeoutMs = 10_000): { stop: () => Promise<{ maxMs: number, failures: number, calls: number }> } {
  let maxMs = 0
  let failures = 0
  let calls = 0
  let running = true
  const loop = (async () => {
    while (running) {
      const started = performance.now()
      try {
        const response = await fetch(`${api}/api/v0/id`, { signal: AbortSignal.timeout(timeoutMs) })
        await response.arrayBuffer()
        if (response.status !== 200) failures++
      } catch {
        failures++
      }
      calls++
      maxMs = Math.max(maxMs, performance.now() - started)
      await new Promise((resolve) => setTimeout(resolve, everyMs))
    }
  })()
  return { stop: async () => { running = false; await loop; return { maxMs, failures, calls } } }
}

// ---- a hostile peer

async function whenClosed (stream: Stream): Promise<'reset' | 'closed'> {
  if (stream.status !== 'open') return stream.status === 'closed' ? 'closed' : 'reset'
  return await new Promise((resolve) => {
    stream.addEventListener('close', (evt: StreamCloseEvent) => { resolve(evt.error === undefined ? 'closed' : 'reset') }, { once: true })
  })
}

export interface FloodResult { opened: number, refused: number, reset: number, closed: number }

/** Opens up to `streams` job streams, each with a valid head (deadline 40 s ahead) and the first
 * `frameBytes` of a body frame that would be 1 MiB: the memory attack of issue 19. Waits (at most
 * `waitMs`) until the worker has ended every stream. */
export async function floodUnfinishedFrames (rogue: Libp2p, addr: Multiaddr, options: { streams: number, frameBytes: number, project: string, model: string, waitMs?: number }): Promise<FloodResult> {
  const result: FloodResult = { opened: 0, refused: 0, reset: 0, closed: 0 }
  // A body_chunk frame of MiB - 16 bytes: prefix, tag, length, then the bytes; we send only the start.
  const whole = encodeFrame({ body_chunk: new Uint8Array(MiB - 16) })
  const partial = whole.subarray(0, Math.min(options.frameBytes, whole.byteLength - 1))
  const ends: Array<Promise<'reset' | 'closed'>> = []
  for (let i = 0; i < options.streams; i++) {
    let stream: Stream
    try {
      stream = await rogue.dialProtocol(addr, JOB_PROTOCOL, { signal: AbortSignal.timeout(5_000), maxOutboundStreams: 4096 })
    } catch {
      result.refused++
      continue
    }
    result.opened++
    ends.push(whenClosed(stream))
    const head = requestHeadFrame({ requestId: `hostile-${i}`, project: options.project, model: options.model, cid: '', kind: JobKind.CHAT, contentType: 'application/json', stream: false, deadline: Date.now() + 40_000 })
    try {
      stream.send(encodeFrame(head))
      stream.send(partial)
    } catch {
      // refused at once: the stream is already reset
    }
  }
  const outcomes = await within(Promise.all(ends), options.waitMs ?? 30_000)
  for (const outcome of outcomes ?? []) result[outcome]++
  return result
}

export interface BodyResult { streams: number, answered: number, reset: number, sentBytes: number }

/** Opens `streams` chat-proxy streams, each announcing a chat body (Content-Length `declared`, or
 * chunked when undefined) and sending up to `bytes` of it without ever finishing; the body of issue 19
 * that a worker held for over 60 s. Stops sending on a stream once the worker answered or reset it. */
export async function chatProxyBodies (rogue: Libp2p, addr: Multiaddr, options: { streams: number, bytes: number, declared?: number, project: string, model: string, waitMs?: number }): Promise<BodyResult> {
  const result: BodyResult = { streams: 0, answered: 0, reset: 0, sentBytes: 0 }
  const piece = Buffer.alloc(64 * KiB, 0x61)
  const one = async (): Promise<void> => {
    let stream: Stream
    try {
      stream = await rogue.dialProtocol(addr, CHAT_PROXY_PROTOCOL, { signal: AbortSignal.timeout(5_000), maxOutboundStreams: 4096 })
    } catch {
      result.reset++
      return
    }
    result.streams++
    let answered = false
    stream.addEventListener('message', () => { answered = true })
    const done = whenClosed(stream)
    const framing = options.declared === undefined ? 'Transfer-Encoding: chunked' : `Content-Length: ${options.declared}`
    const send = (bytes: Uint8Array): boolean => {
      try {
        return stream.send(bytes)
      } catch {
        return true // the stream is gone; the loop sees its status
      }
    }
    send(Buffer.from(`POST /api/v0/chat/completion?cid=&model=${options.model}&project=${options.project} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n${framing}\r\nContent-Type: application/json\r\n\r\n{"messages":"`))
    const chunk = options.declared === undefined ? Buffer.concat([Buffer.from(`${piece.byteLength.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece
    for (let sent = 0; sent + piece.byteLength <= options.bytes && stream.status === 'open' && !answered;) {
      if (!send(chunk)) {
        const drained = await within(new Promise<boolean>((resolve) => {
          stream.addEventListener('drain', () => { resolve(true) }, { once: true })
          stream.addEventListener('close', () => { resolve(false) }, { once: true })
        }), 15_000)
        if (drained !== true) break
      }
      sent += piece.byteLength
      result.sentBytes += piece.byteLength
    }
    // Never finish the body: wait for the worker to give up on it (or to have answered), then leave.
    const outcome = await within(done, options.waitMs ?? 30_000)
    if (answered) result.answered++
    else if (outcome === 'reset') result.reset++
    stream.abort(new Error('the hostile peer leaves'))
  }
  await Promise.all(Array.from({ length: options.streams }, one))
  return result
}

async function within<T> (promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

// ---- hostile peers on the topic

export interface TopicRogue { node: Libp2p, publish: (data: Uint8Array) => Promise<void>, stop: () => Promise<void> }

/** An in-process gossipsub node with the network's key, connected to `addr` and subscribed to `topic`;
 * resolves once the node at `addr` is a subscriber of the topic as this node sees it (at most 20 s). */
export async function startTopicRogue (psk: string, addr: Multiaddr, topic: string): Promise<TopicRogue> {
  const node = await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionProtector: preSharedKey({ psk: swarmKeyFromHex(psk) }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      pubsub: gossipsub({ globalSignaturePolicy: StrictSign, allowPublishToZeroTopicPeers: true, floodPublish: true, msgIdFn: goMessageId, scoreParams: { IPColocationFactorWeight: 0 } })
    }
  })
  const pubsub = node.services.pubsub as unknown as { subscribe: (t: string) => void, getSubscribers: (t: string) => Array<{ toString: () => string }>, publish: (t: string, d: Uint8Array) => Promise<unknown> }
  pubsub.subscribe(topic)
  const stop = async (): Promise<void> => { try { await node.stop() } catch {} }
  try {
    // A node refuses more than 5 inbound connections a second from one IP (libp2p's default): a crowd of
    // identities on one machine retries, at most 20 times.
    for (let attempt = 1; ; attempt++) {
      try {
        await node.dial(addr, { signal: AbortSignal.timeout(10_000) })
        break
      } catch (err) {
        if (attempt >= 20) throw err
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    }
    const peer = addr.getComponents().find((c) => c.name === 'p2p')?.value
    for (let i = 0; i < 200 && !pubsub.getSubscribers(topic).some((p) => p.toString() === peer); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  } catch (err) {
    await stop()
    throw err
  }
  return { node, publish: async (data) => { await pubsub.publish(topic, data) }, stop }
}

/** Encoded heartbeat bodies by (models, project, tag): the body does not name its author, and encoding
 * 60,000 models takes this process's event loop for about 100 ms, which would show up in the latency
 * this process measures (scripts/bench/hostile.ts). Bounded: the oldest goes past 16. */
const bodies = new Map<string, Uint8Array>()

/** A heartbeat of `author` announcing `models` chat models in project `project`, tagged `tag` so that
 * each one differs. Names are short, as in issue 19's Sybil heartbeats (60,000 models in 654 KB). */
export function rogueHeartbeat (author: string, options: { models: number, project?: string, tag?: number }): Uint8Array {
  const project = options.project ?? 'Flood'
  const key = `${options.models}|${project}|${options.tag ?? 0}`
  let body = bodies.get(key)
  if (body === undefined) {
    const models = Array.from({ length: options.models }, (_, i) => ({ model: `m${i}`, cid: '', type: 0, busy: options.tag ?? 0, available: true }))
    // The body of encodeHeartbeat (src/protocols/heartbeat-codec.ts), with another author in the header.
    const template = protocol.Message.decode(encodeHeartbeat({ nodeId: author, version: 'hostile/0.0.1', nodeType: NODE_TYPE.MODEL, projects: [{ project, models }], leaving: false, intervalMs: 180_000 }))
    body = template.body
    bodies.set(key, body)
    if (bodies.size > 16) bodies.delete(bodies.keys().next().value as string)
  }
  return protocol.Message.encode({
    header: { client_version: 'hostile/0.0.1', timestamp: Math.floor(Date.now() / 1000), id: '', node_id: author, receiver: '' },
    type: protocol.MessageType.AI_PROJECT,
    body,
    result_message: 'heartbeat'
  }).finish()
}

export interface HeartbeatFloodResult { published: number, failed: number, seconds: number }

/** Publishes up to `perSecond` × `seconds` heartbeats of the rogue itself, paced every 10 ms: the flood
 * of issue 19 (160–300 a second from one identity). */
export async function floodHeartbeats (rogue: TopicRogue, options: { perSecond: number, seconds: number, models?: number }): Promise<HeartbeatFloodResult> {
  const author = rogue.node.peerId.toString()
  const total = options.perSecond * options.seconds
  const started = performance.now()
  let published = 0
  let failed = 0
  for (let i = 0; i < total && performance.now() - started < (options.seconds + 10) * 1000; i++) {
    // Behind schedule: no wait; ahead of it: wait for the schedule (10 ms steps).
    const due = started + i * 1000 / options.perSecond
    if (due > performance.now() + 10) await new Promise((resolve) => setTimeout(resolve, due - performance.now()))
    try {
      await rogue.publish(rogueHeartbeat(author, { models: options.models ?? 4, tag: i }))
      published++
    } catch {
      failed++
    }
  }
  return { published, failed, seconds: Math.round((performance.now() - started) / 100) / 10 }
}

export interface SybilResult { identities: number, published: number, overCap: number, oversize: number, failed: number }

/** `identities` fresh identities, each connected to `addr`, each publishing `rounds` heartbeats of
 * `models` models 100 ms apart (up to the view's cap of 1024 is accepted), then one of `overCapModels`
 * (60,000 in 769 KB, as in issue 19: over the cap, refused) and one over the topic's 1 MiB (refused). */
export async function sybilHeartbeats (psk: string, addr: Multiaddr, topic: string, options: { identities: number, models: number, rounds: number, overCapModels?: number, oversizeModels?: number, whileConnected?: () => Promise<void> }): Promise<SybilResult> {
  const result: SybilResult = { identities: 0, published: 0, overCap: 0, oversize: 0, failed: 0 }
  const rogues: TopicRogue[] = []
  try {
    for (let i = 0; i < options.identities; i++) {
      rogues.push(await startTopicRogue(psk, addr, topic))
      result.identities++
    }
    const one = async (rogue: TopicRogue): Promise<void> => {
      const author = rogue.node.peerId.toString()
      const send = async (data: Uint8Array, count: 'published' | 'overCap' | 'oversize'): Promise<void> => {
        try {
          await rogue.publish(data)
          result[count]++
        } catch {
          result.failed++
        }
      }
      for (let round = 0; round < options.rounds; round++) {
        await send(rogueHeartbeat(author, { models: options.models, project: 'Sybil', tag: round }), 'published')
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      await send(rogueHeartbeat(author, { models: options.overCapModels ?? 60_000, project: 'SybilOverCap' }), 'overCap')
      // Long names: well over 1 MiB.
      await send(rogueHeartbeat(author, { models: options.oversizeModels ?? 100_000, project: `Sybil-${'x'.repeat(200)}` }), 'oversize')
    }
    await Promise.all(rogues.map(one))
    // Let the node take in what was sent before the identities leave (a node takes a peer that
    // disconnected out of routing: src/registry/liveness/index.ts).
    await new Promise((resolve) => setTimeout(resolve, 1000))
    await options.whileConnected?.()
  } finally {
    await Promise.all(rogues.map(async (r) => { await r.stop() }))
  }
  return result
}

export interface ViewSyncFloodResult { asked: number, served: number, refused: number, entries: number }

/** Asks the node at `addr` for its whole view `count` times, one after another (at most 10 s each). */
export async function floodViewSyncs (rogue: Libp2p, addr: Multiaddr, count: number): Promise<ViewSyncFloodResult> {
  const result: ViewSyncFloodResult = { asked: 0, served: 0, refused: 0, entries: 0 }
  for (let i = 0; i < count; i++) {
    result.asked++
    let stream: Stream | undefined
    try {
      const signal = AbortSignal.timeout(10_000)
      stream = await rogue.dialProtocol(addr, VIEW_PROTOCOL, { signal, negotiateFully: true })
      let ended = false
      for await (const frame of lp.decode(stream, { maxDataLength: 2 * MiB })) {
        if (frame.byteLength === 0) { ended = true; break }
        result.entries++
      }
      if (ended) result.served++
      else result.refused++
      await stream.close({ signal }).catch(() => {})
    } catch {
      result.refused++
      stream?.abort(new Error('the hostile peer leaves'))
    }
  }
  return result
}

// ---- hostile model servers

export interface HostileModel {
  url: string
  /** bytes the server wrote, over all answers */
  readonly written: number
  close: () => Promise<void>
}

/** A model server with two bad answers, each bounded by `maxBytes`:
 * - POST /giant-sse: a 200 text/event-stream answer that is one event without a blank line
 *   ("data: aaaa…"), the 20 MB event of issue 19;
 * - POST /endless: a 200 application/json answer that never ends ('{"x":"aaaa…'), until maxBytes or the
 *   client goes away. */
export async function startHostileModel (options: { maxBytes?: number } = {}): Promise<HostileModel> {
  const maxBytes = options.maxBytes ?? 20 * 1000 * 1000
  let written = 0
  const piece = Buffer.alloc(64 * KiB, 0x61)
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const sse = req.url === '/giant-sse'
      res.writeHead(200, { 'content-type': sse ? 'text/event-stream' : 'application/json' })
      let sent = 0
      const pump = (): void => {
        if (sent === 0) { res.write(sse ? 'data: ' : '{"x":"'); sent = 6 }
        while (sent < maxBytes && !res.destroyed) {
          sent += piece.byteLength
          written += piece.byteLength
          if (!res.write(piece)) { res.once('drain', pump); return }
        }
        if (!res.destroyed) res.end()
      }
      pump()
    })
  })
  server.keepAliveTimeout = 1000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}`,
    get written () { return written },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
