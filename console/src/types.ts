// The shapes the console reads from the node (README "API" and "Console").

// The answers of `node/status` and `network/view` are defined once, beside the route that builds them.
export type { Connection, LocalModel, NetworkSnapshot, NodeStatus, ViewModel, ViewNode, ViewProject } from '../../src/web/console-types.ts'

export interface PeerInfo { peer_id: string, agent_version: string, addresses: string[], protocols: string[] }

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
