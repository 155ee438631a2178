// "Models": by project, which nodes serve each model and whether they can take jobs; a node opens its
// host information. Built from the same network view the Network panel shows.
import { fill, h, head, setText, syncChildren } from './dom.ts'
import { shortId } from './format.ts'
import { showHostInfo } from './host-dialog.ts'
import type { Poller, Snapshot } from './state.ts'
import { MODEL_TYPES, type NetworkSnapshot } from './types.ts'

interface Server { nodeId: string, available: boolean, fresh: boolean, busy: number }
interface ModelRow { project: string, model: string, type: number, servers: Server[] }

export function mountModelsPanel (root: HTMLElement, poller: Poller): void {
  const projects = h('div', { class: 'projects' })
  const empty = h('p', { class: 'muted' }, 'No node in the network serves a model yet.')
  fill(root, h('h2', { id: 'h-models' }, 'Models'), empty, projects)
  poller.subscribe((s) => { render(s) })

  function render (s: Snapshot): void {
    if (s.network === undefined) return
    const byProject = group(s.network)
    empty.hidden = byProject.size > 0
    syncChildren(projects, [...byProject], ([project]) => project, ([project]) => h('section', { class: 'card project', 'aria-label': `Project ${project}` },
      h('h3', {}, project),
      h('div', { class: 'table-wrap' }, h('table', {},
        head(['Model', 'Type', 'Availability', 'Served by']),
        h('tbody')))), (section, [, models]) => {
      syncChildren(section.querySelector('tbody')!, models, (m) => m.model, (m) => h('tr', {},
        h('th', { scope: 'row', class: 'strong' }, m.model), h('td'), h('td'), h('td', { class: 'servers' })), (tr, m) => {
        const c = tr.children
        setText(c[1], MODEL_TYPES[m.type] ?? String(m.type))
        const up = m.servers.filter((x) => x.available && x.fresh).length
        fill(c[2], h('span', { class: `badge ${up > 0 ? 'ok' : 'bad'}` }, up > 0 ? 'available' : 'unavailable'), ` ${up} of ${m.servers.length} node${m.servers.length === 1 ? '' : 's'}`)
        syncChildren(c[3], m.servers, (x) => x.nodeId, (x) => h('button', { type: 'button', class: 'chip', title: x.nodeId, 'aria-label': `Host information of node ${x.nodeId}`, onclick: () => { showHostInfo(x.nodeId) } }, shortId(x.nodeId)), (button, x) => {
          button.classList.toggle('down', !x.available || !x.fresh)
        })
      })
    })
  }
}

function group (network: NetworkSnapshot): Map<string, ModelRow[]> {
  const rows = new Map<string, Map<string, ModelRow>>()
  for (const node of network.nodes) {
    for (const p of node.projects) {
      let models = rows.get(p.project)
      if (models === undefined) { models = new Map(); rows.set(p.project, models) }
      for (const m of p.models) {
        let row = models.get(m.model)
        if (row === undefined) { row = { project: p.project, model: m.model, type: m.type, servers: [] }; models.set(m.model, row) }
        const existing = row.servers.find((x) => x.nodeId === node.node_id)
        if (existing !== undefined) existing.available ||= m.available
        else row.servers.push({ nodeId: node.node_id, available: m.available, fresh: node.fresh || node.self, busy: m.busy })
      }
    }
  }
  return new Map([...rows].sort(([a], [b]) => a.localeCompare(b)).map(([project, models]) => [project, [...models.values()].sort((a, b) => a.model.localeCompare(b.model))]))
}
