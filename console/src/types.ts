// The shapes the console reads from the node (README "API" and "Console").

export interface LocalModel { project: string, model: string, type: number, cid: string, busy: number, available: boolean, api?: string, reason: string }

export interface NodeStatus {
  peer_id: string
  version: string
  started: string
  uptime_s: number
  role: 'input' | 'worker'
  psk: boolean
  connections: number
  keys_required: boolean
  admin: boolean
  models: LocalModel[]
}

export interface PeerInfo { peer_id: string, agent_version: string, addresses: string[], protocols: string[] }

export interface ViewModel { model: string, cid: string, type: number, busy: number, available: boolean }
export interface ViewProject { project: string, models: ViewModel[] }

export interface ViewNode {
  node_id: string
  self: boolean
  role: 'input' | 'worker' | 'unknown'
  connectivity: number
  latency_us: number
  busy: number
  last_heard_ms: number | null
  fresh: boolean
  version: string
  projects: ViewProject[]
}

export interface Connection { peer: string, addr: string, direction: 'inbound' | 'outbound', limited: boolean, latency_us: number }

export interface NetworkSnapshot { self: string, nodes: ViewNode[], more: number, connections: Connection[] }

export interface KeyInfo {
  id: string
  name: string
  prefix: string
  models: string[]
  rpm: number
  concurrency: number
  daily: number
  balanceUsd: number | null
  revoked: boolean
  created: string
}

export interface UsageRow { keyId: string, model: string, requests: number, promptTokens: number, completionTokens: number, costMicroUsd: number }

export interface HostInfo {
  os: { os: string, platform: string, platform_version: string, kernel_version: string, kernel_arch: string }
  cpu: Array<{ model_name: string, total_cores: number, total_threads: number }>
  memory: { total_physical_bytes: number, total_usable_bytes: number }
  disk: Array<{ drive_type: string, size_bytes: number, model: string }>
  gpu: Array<{ vendor: string, product: string, memory_bytes?: number, driver_version?: string, utilization_percent?: number, memory_used_bytes?: number }>
  errors?: string[]
}

export interface OpenAiModel { id: string, project: string, model: string, type: number, nodes: number }

export const MODEL_TYPES = ['chat', 'image generation', 'image edit', 'embedding', 'completion']
