// Heartbeat messages in the Go node's format (docs/protocols.md, "Heartbeats"): a `Message` of type AI_PROJECT with empty
// `id` and `receiver`, body `AIProjectBody{res}`, published unencrypted on the topic. Unlike the Go node we
// leave each model's `api` empty (other nodes never need a model server's internal URL) and add our
// extensions in high field numbers that Go nodes skip.
import $protobuf from 'protobufjs/minimal.js'
import { protocol } from '../proto/index.ts'
import type { ViewProject } from '../registry/view-types.ts'

export const HEARTBEAT_MESSAGE = 'heartbeat'
/** result_message of the empty heartbeat a node sends when it stops, so others drop it at once. */
export const LEAVING_MESSAGE = 'leaving'

export const NODE_TYPE = { PUBLIC_IP: 0x01, PEERS_COLLECT: 0x02, MODEL: 0x04 } as const

export interface Heartbeat {
  nodeId: string
  version: string
  nodeType: number
  projects: ViewProject[]
  leaving: boolean
  timestamp: number
  /** the sender's HeartbeatInterval in ms, from our extension field; undefined from a Go node */
  intervalMs?: number
}

export function encodeHeartbeat (heartbeat: Omit<Heartbeat, 'timestamp'>): Uint8Array {
  const body = protocol.AIProjectBody.encode({
    res: {
      projects: heartbeat.projects.map((p) => ({
        project: p.project,
        models: p.models.map((m) => ({ model: m.model, api: '', type: m.type, idle: m.busy, cid: m.cid, available: m.available }))
      })),
      node_type: heartbeat.nodeType,
      version: heartbeat.version,
      heartbeat_interval_ms: heartbeat.intervalMs ?? 0
    }
  }).finish()
  return protocol.Message.encode({
    header: { client_version: heartbeat.version, timestamp: Math.floor(Date.now() / 1000), id: '', node_id: heartbeat.nodeId, receiver: '' },
    type: protocol.MessageType.AI_PROJECT,
    body,
    result_message: heartbeat.leaving ? LEAVING_MESSAGE : HEARTBEAT_MESSAGE
  }).finish()
}

/** Decodes a heartbeat; throws on anything that is not a well-formed one. */
export function decodeHeartbeat (message: protocol.Message): Heartbeat {
  if (message.type !== protocol.MessageType.AI_PROJECT) throw new Error(`broadcast of type ${message.type} is not a heartbeat`)
  const nodeId = message.header?.node_id ?? ''
  if (nodeId === '') throw new Error('heartbeat without node_id')
  const res = protocol.AIProjectBody.decode(message.body).res
  if (res == null) throw new Error('heartbeat without AIProjectResponse')
  const intervalMs = res.heartbeat_interval_ms ?? 0
  return {
    nodeId,
    version: (res.version ?? '') !== '' ? res.version ?? '' : message.header?.client_version ?? '',
    nodeType: res.node_type ?? 0,
    leaving: message.result_message === LEAVING_MESSAGE,
    timestamp: Number(message.header?.timestamp ?? 0),
    projects: projectsOf(res),
    // Go nodes do not send it (0): receivers learn their interval instead (src/registry/rhythm.ts).
    ...(intervalMs > 0 ? { intervalMs } : {})
  }
}

/** The projects of an AIProjectResponse (a heartbeat's, or the answer to an AI_PROJECT query) as the view
 * keeps them. */
export function projectsOf (res: protocol.AIProjectResponse.$Properties): ViewProject[] {
  return (res.projects ?? []).map((p) => ({
    project: p.project ?? '',
    models: (p.models ?? []).map((m) => ({
      model: m.model ?? '',
      cid: m.cid ?? '',
      type: m.type ?? 0,
      busy: m.idle ?? 0,
      // Go nodes do not send the field: their models count as available.
      available: m.available ?? true
    }))
  }))
}

const LEN = 2
/**
 * How many models the AIProjectBody `body` announces, counted on the wire without decoding them
 * (AIProjectBody.res = 2 → AIProjectResponse.projects = 1 → AIProjectOfNode.models = 2, proto/aicn.proto).
 * Decoding a heartbeat of 60,000 models makes 60,000 objects (about 10 MB) before anything can look at
 * them; this lets the topic validator refuse one over the view's cap first (src/protocols/heartbeat/heartbeats.ts).
 * Throws on malformed input.
 */
export function countAnnouncedModels (body: Uint8Array): number {
  const reader = $protobuf.Reader.create(body)
  let count = 0
  const inside = (end: number, field: number, visit: (end: number) => void): void => {
    while (reader.pos < end) {
      const tag = reader.uint32()
      if (tag >>> 3 === field && (tag & 7) === LEN) {
        const length = reader.uint32()
        const stop = reader.pos + length
        if (stop > end) throw new Error('truncated heartbeat')
        visit(stop)
        reader.pos = stop
      } else {
        reader.skipType(tag & 7)
      }
    }
  }
  inside(reader.len, 2, (resEnd) => {
    inside(resEnd, 1, (projectEnd) => {
      inside(projectEnd, 2, () => { count++ })
    })
  })
  return count
}
