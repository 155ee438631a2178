// "Node": this node's identity, addresses, uptime, connections, PSK, role, and its own models with their health.
import { fill, h, head, setText, syncChildren } from './dom.ts'
import { duration } from './format.ts'
import type { Poller, Snapshot } from './state.ts'
import { MODEL_TYPES, type LocalModel } from './types.ts'

export function mountNodePanel (root: HTMLElement, poller: Poller): void {
  const facts = h('dl', { class: 'facts' })
  const addresses = h('ul', { class: 'mono list', 'aria-label': 'Listen addresses' })
  const models = h('tbody')
  const noModels = h('p', { class: 'muted' }, 'This node serves no models. Register one with ', h('code', {}, 'POST /api/v0/ai/model/register'), '.')
  fill(root,
    h('h2', { id: 'h-node' }, 'This node'),
    h('div', { class: 'grid two' },
      h('section', { class: 'card', 'aria-labelledby': 'h-facts' }, h('h3', { id: 'h-facts' }, 'Identity and state'), facts),
      h('section', { class: 'card', 'aria-labelledby': 'h-addrs' }, h('h3', { id: 'h-addrs' }, 'Addresses'), addresses)
    ),
    h('section', { class: 'card', 'aria-labelledby': 'h-local-models' },
      h('h3', { id: 'h-local-models' }, 'Registered models'),
      h('div', { class: 'table-wrap', id: 'local-models-wrap' }, h('table', { id: 'local-models' },
        head(['Project', 'Model', 'Type', 'CID', 'Busy', 'Health'], ['Busy']),
        models)),
      noModels)
  )
  poller.subscribe((s) => { render(s) })

  function render (s: Snapshot): void {
    const status = s.status
    if (status === undefined) return
    const rows: Array<[string, string, string?]> = [
      ['Peer ID', status.peer_id, 'mono'],
      ['Version', status.version],
      ['Role', status.role === 'input' ? 'input (entry node: DHT server, relay, peers collect)' : 'worker (serves models)'],
      ['Uptime', duration(status.uptime_s)],
      ['Connections', String(status.connections)],
      ['Private network (PSK)', status.psk ? 'on' : 'off'],
      ['Gateway keys', status.keys_required ? 'required on /v1' : 'not required (local use)']
    ]
    syncChildren(facts, rows, (r) => r[0], (r) => h('div', { class: 'fact' }, h('dt', {}, r[0]), h('dd', { class: r[2] ?? '' })), (el, r) => {
      setText(el.querySelector('dd')!, r[1])
    })
    const addrs = s.id?.addresses ?? []
    syncChildren(addresses, addrs, (a) => a, (a) => h('li', {}, a), () => {})
    syncChildren(models, status.models, (m) => `${m.project}\u0000${m.model}\u0000${m.cid}`, createModelRow, updateModelRow)
    noModels.hidden = status.models.length > 0
    models.closest('.table-wrap')!.toggleAttribute('hidden', status.models.length === 0)
  }
}

function createModelRow (m: LocalModel): HTMLTableRowElement {
  return h('tr', {},
    h('td', {}, m.project), h('td', { class: 'strong' }, m.model), h('td', {}, MODEL_TYPES[m.type] ?? String(m.type)),
    h('td', { class: 'mono' }, m.cid === '' ? '—' : m.cid), h('td', { class: 'num' }), h('td', {}, h('span', { class: 'badge' }), h('span', { class: 'reason muted' })))
}

function updateModelRow (tr: HTMLTableRowElement, m: LocalModel): void {
  const cells = tr.children
  setText(cells[4], String(m.busy))
  const badge = cells[5].querySelector('.badge')!
  setText(badge, m.available ? 'up' : 'down')
  badge.className = `badge ${m.available ? 'ok' : 'bad'}`
  setText(cells[5].querySelector('.reason')!, m.available ? '' : ` ${m.reason}${m.api !== undefined ? ` (${m.api})` : ''}`)
}
