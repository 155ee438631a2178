// A node's machine (OS, CPUs, memory, disks, GPUs with memory and utilisation), asked through this node
// (`/api/v0/host/info`, which queries other nodes over the network), in a modal dialog.
import { call, errorText } from './api.ts'
import { byId, fill, h, head } from './dom.ts'
import { bytes, shortId } from './format.ts'
import type { HostInfo } from './types.ts'

let current: AbortController | undefined

export function showHostInfo (nodeId: string): void {
  const dialog = byId<HTMLDialogElement>('host-dialog')
  const title = byId('host-title')
  const body = byId('host-body')
  current?.abort()
  const controller = new AbortController()
  current = controller
  fill(title, 'Host of node ', h('span', { class: 'mono', title: nodeId }, shortId(nodeId)))
  fill(body, h('p', { class: 'muted', role: 'status' }, 'Asking the node…'))
  if (!dialog.open) dialog.showModal()
  dialog.addEventListener('close', () => { controller.abort() }, { once: true })
  call<HostInfo>(`/api/v0/host/info?node_id=${encodeURIComponent(nodeId)}`, undefined, controller.signal)
    .then((info) => { if (!controller.signal.aborted) fill(body, ...renderHost(nodeId, info)) })
    .catch((err: unknown) => { if (!controller.signal.aborted) fill(body, h('p', { class: 'error', role: 'alert' }, `Could not get the host information: ${errorText(err)}`)) })
}

function renderHost (nodeId: string, info: HostInfo): Node[] {
  const list = <T>(items: T[] | undefined): T[] => Array.isArray(items) ? items : []
  const os = info.os ?? {}
  const out: Node[] = [
    h('p', { class: 'mono small' }, nodeId),
    h('dl', { class: 'facts' },
      fact('System', [os.platform, os.platform_version, os.kernel_arch].filter((x) => typeof x === 'string' && x !== '').join(' ') || '—'),
      fact('Kernel', os.kernel_version || '—'),
      fact('Memory', `${bytes(info.memory?.total_physical_bytes)} installed, ${bytes(info.memory?.total_usable_bytes)} usable`)),
    h('h3', {}, 'CPUs'),
    h('ul', { class: 'list' }, ...list(info.cpu).map((c) => h('li', {}, `${c.model_name} — ${c.total_cores} cores, ${c.total_threads} threads`))),
    h('h3', {}, 'GPUs'),
    list(info.gpu).length === 0
      ? h('p', { class: 'muted' }, 'No GPU reported.')
      : h('div', { class: 'table-wrap' }, h('table', {},
        head(['GPU', 'Memory', 'Used', 'Utilisation', 'Driver'], ['Memory', 'Used']),
        h('tbody', {}, ...list(info.gpu).map((g) => h('tr', {},
          h('td', {}, `${g.vendor} ${g.product}`.trim()),
          h('td', { class: 'num' }, bytes(g.memory_bytes)),
          h('td', { class: 'num' }, bytes(g.memory_used_bytes)),
          h('td', {}, utilisation(g.utilization_percent)),
          h('td', {}, g.driver_version ?? '—')))))),
    h('h3', {}, 'Disks'),
    h('ul', { class: 'list' }, ...list(info.disk).map((d) => h('li', {}, `${d.model || 'disk'} (${d.drive_type}) — ${bytes(d.size_bytes)}`)))
  ]
  if (list(info.errors).length > 0) out.push(h('p', { class: 'muted small' }, `Not reported: ${list(info.errors).join('; ')}`))
  return out
}

function fact (name: string, value: string): HTMLElement {
  return h('div', { class: 'fact' }, h('dt', {}, name), h('dd', {}, value))
}

function utilisation (percent: number | undefined): Node {
  if (typeof percent !== 'number' || !Number.isFinite(percent)) return document.createTextNode('—')
  const clamped = Math.max(0, Math.min(100, percent))
  return h('span', { class: 'meter-wrap' }, h('meter', { min: 0, max: 100, value: clamped, 'aria-label': 'GPU utilisation' }), ` ${Math.round(clamped)} %`)
}
