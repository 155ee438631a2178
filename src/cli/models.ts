// `aicn models register|list|unregister`: the model servers beside this node, through the running
// node's admin API (the node saves them in its config and tells the network). The register answer
// says when the model's server does not answer yet (src/api/routes/registry.ts).
import { UsageError } from '../core/errors.ts'
import { requireDaemon } from './client.ts'
import type { Output } from './daemon.ts'
import { table } from './table.ts'

const TYPES: Record<string, number> = { chat: 0, 'text-to-image': 1, image: 1, 'image-edit': 2, embeddings: 3, embedding: 3, completion: 4 }
const TYPE_NAMES = ['chat', 'text-to-image', 'image-edit', 'embeddings', 'completion']

export interface RegisterOptions { project: string, model: string, api: string, type?: string, cid?: string }

/** "chat", "embeddings", … or the number 0–4. */
export function modelType (text: string | undefined): number {
  if (text === undefined) return 0
  if (/^[0-4]$/.test(text)) return Number(text)
  const type = TYPES[text.toLowerCase()]
  if (type === undefined) throw new UsageError(`--type must be one of ${TYPE_NAMES.join(', ')} (or 0–4), not "${text}"`)
  return type
}

export async function runModelsRegister (configPath: string, options: RegisterOptions, out: Output): Promise<void> {
  const data = await requireDaemon(configPath, '/api/v0/ai/model/register', {
    project: options.project, model: options.model, api: options.api, type: modelType(options.type), cid: options.cid ?? ''
  }).then((answer) => answer.data as { warning?: string } | undefined)
  out.line(`Registered ${options.project}/${options.model} at ${options.api}`)
  if (data?.warning !== undefined) out.line(`Warning: ${data.warning}`)
}

export async function runModelsUnregister (configPath: string, options: { project: string, model: string, cid?: string }, out: Output): Promise<void> {
  const answer = await requireDaemon(configPath, '/api/v0/ai/model/unregister', { project: options.project, model: options.model, cid: options.cid ?? '' })
  // The node answers "ok" or "not existed" in the message.
  if (answer.message === 'not existed') throw new UsageError(`${options.project}/${options.model}${options.cid === undefined || options.cid === '' ? '' : ` with cid "${options.cid}"`} is not registered; "aicn models list" shows what is`)
  out.line(`Unregistered ${options.project}/${options.model}${options.cid === undefined || options.cid === '' ? '' : ` (${options.cid})`}`)
}

export async function runModelsList (configPath: string, out: Output, options: { json?: boolean } = {}): Promise<void> {
  const status = (await requireDaemon(configPath, '/api/v0/node/overview')).data as { models: Array<{ project: string, model: string, cid: string, api: string, type: number, busy: number, available: boolean, reason: string }> }
  if (options.json === true) { out.line(JSON.stringify(status.models, null, 2)); return }
  if (status.models.length === 0) { out.line('No models registered; "aicn models register --project P --model M --api URL" adds one.'); return }
  for (const line of table(['PROJECT', 'MODEL', 'CID', 'TYPE', 'HEALTH', 'BUSY', 'API'],
    status.models.map((m) => [m.project, m.model, m.cid === '' ? '-' : m.cid, TYPE_NAMES[m.type] ?? String(m.type), m.available ? 'up' : `DOWN: ${m.reason === '' ? 'no answer' : m.reason}`, m.busy, m.api]))) out.line(line)
}
