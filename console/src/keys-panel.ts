// "Keys and usage": the gateway's access keys (list, create with the secret shown once, top up, revoke)
// and what each key spent on which model. Only shown where the admin endpoints answer (callers on the
// node's machine); the panel never keeps a secret after it is dismissed.
import { call, errorText } from './api.ts'
import { fill, h, head, setText, syncChildren } from './dom.ts'
import { plural, usd } from './format.ts'
import type { KeyInfo, UsageRow } from './types.ts'

export interface KeysPanel { refresh: () => Promise<void> }

export function mountKeysPanel (root: HTMLElement): KeysPanel {
  const rows = h('tbody')
  const usageRows = h('tbody')
  const spend = h('p', { class: 'summary', id: 'usage-total' })
  const noKeys = h('p', { class: 'muted' }, 'No keys yet.')
  const message = h('p', { class: 'muted', role: 'status', id: 'keys-status' })
  const secretBox = h('div', { class: 'secret', id: 'new-secret', hidden: true, role: 'alert' })
  const field = (id: string, label: string, attrs: Record<string, string | number | boolean>): HTMLLabelElement =>
    h('label', { for: id }, label, h('input', { id, name: id, ...attrs }))
  const form = h('form', { class: 'key-form', 'aria-labelledby': 'h-new-key' },
    h('div', { class: 'fields' },
      field('key-name', 'Name', { required: true, maxlength: 128, autocomplete: 'off' }),
      field('key-models', 'Models', { placeholder: 'all, or a, b, …', autocomplete: 'off' }),
      field('key-rpm', 'Requests/min', { type: 'number', min: 0, step: 1, placeholder: '∞' }),
      field('key-concurrency', 'At once', { type: 'number', min: 0, step: 1, placeholder: '∞' }),
      field('key-daily', 'Per day', { type: 'number', min: 0, step: 1, placeholder: '∞' }),
      field('key-balance', 'Balance (USD)', { type: 'number', min: 0, step: 'any', placeholder: 'unmetered' })),
    h('div', { class: 'row actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create key'), message))
  fill(root,
    h('h2', { id: 'h-keys' }, 'Keys and usage'),
    h('section', { class: 'card', 'aria-labelledby': 'h-new-key' }, h('h3', { id: 'h-new-key' }, 'New key'), form, secretBox),
    h('section', { class: 'card', 'aria-labelledby': 'h-key-list' },
      h('h3', { id: 'h-key-list' }, 'Keys'),
      h('div', { class: 'table-wrap' }, h('table', { id: 'keys-table' },
        head(['Name', 'Key', 'Models', 'Limits', 'Balance', 'Status', 'Created', 'Actions'], ['Balance']),
        rows)), noKeys),
    h('section', { class: 'card', 'aria-labelledby': 'h-usage' },
      h('h3', { id: 'h-usage' }, 'Usage'),
      spend,
      h('div', { class: 'table-wrap' }, h('table', { id: 'usage-table' },
        head(['Key', 'Model', 'Requests', 'Tokens in', 'Tokens out', 'Spend'], ['Requests', 'Tokens in', 'Tokens out', 'Spend']),
        usageRows)))
  )
  let names = new Map<string, string>()

  form.addEventListener('submit', (e) => {
    e.preventDefault()
    void create()
  })

  async function create (): Promise<void> {
    const value = (id: string): string => (form.querySelector<HTMLInputElement>(`#${id}`)?.value ?? '').trim()
    const number = (id: string): number | undefined => value(id) === '' ? undefined : Number(value(id))
    const models = value('key-models').split(',').map((m) => m.trim()).filter((m) => m !== '')
    const body = { name: value('key-name'), models, rpm: number('key-rpm'), concurrency: number('key-concurrency'), daily: number('key-daily'), balance_usd: number('key-balance') }
    try {
      const created = await call<{ secret: string, key: KeyInfo }>('/api/v0/keys/create', body)
      form.reset()
      showSecret(created.key, created.secret)
      setText(message, `Key "${created.key.name}" created.`)
      await refresh()
    } catch (err) {
      setText(message, `Could not create the key: ${errorText(err)}`)
    }
  }

  function showSecret (key: KeyInfo, secret: string): void {
    const code = h('code', { class: 'mono', id: 'new-secret-value' }, secret)
    const copy = h('button', { type: 'button', class: 'small' }, 'Copy')
    copy.addEventListener('click', () => {
      navigator.clipboard?.writeText(secret).then(() => { setText(copy, 'Copied') }, () => { setText(copy, 'Select and copy it') })
    })
    const dismiss = h('button', { type: 'button', class: 'small' }, 'Done')
    dismiss.addEventListener('click', () => { secretBox.hidden = true; secretBox.replaceChildren() })
    fill(secretBox, h('p', {}, `The secret of "${key.name}" — shown only now, the node keeps only its hash:`), h('div', { class: 'row' }, code, copy, dismiss))
    secretBox.hidden = false
  }

  async function act (path: string, body: unknown, done: string): Promise<void> {
    try {
      await call(path, body)
      setText(message, done)
      await refresh()
    } catch (err) {
      setText(message, errorText(err))
    }
  }

  function createRow (k: KeyInfo): HTMLTableRowElement {
    const amount = h('input', { type: 'number', min: 0.01, step: 'any', class: 'amount', 'aria-label': `Top-up amount in USD for ${k.name}`, placeholder: 'USD' })
    const topup = h('button', { type: 'button', class: 'small' }, 'Top up')
    topup.addEventListener('click', () => {
      const usdValue = Number(amount.value)
      if (!(usdValue > 0)) { amount.focus(); setText(message, 'Enter an amount in USD above 0.'); return }
      amount.value = ''
      void act('/api/v0/keys/topup', { id: k.id, usd: usdValue }, `Added ${usd(usdValue)} to "${k.name}".`)
    })
    const revoke = h('button', { type: 'button', class: 'small danger' }, 'Revoke')
    revoke.addEventListener('click', () => {
      // A second click confirms: a revoked key cannot be restored.
      if (revoke.dataset.confirm !== 'yes') { revoke.dataset.confirm = 'yes'; setText(revoke, 'Confirm revoke'); return }
      void act('/api/v0/keys/revoke', { id: k.id }, `Key "${k.name}" revoked.`)
    })
    revoke.addEventListener('blur', () => { revoke.dataset.confirm = ''; setText(revoke, 'Revoke') })
    return h('tr', {}, h('th', { scope: 'row' }), h('td', { class: 'mono' }), h('td'), h('td'), h('td', { class: 'num' }), h('td'), h('td'),
      h('td', { class: 'actions' }, h('span', { class: 'topup' }, amount, topup), revoke))
  }

  function updateRow (tr: HTMLTableRowElement, k: KeyInfo): void {
    const c = tr.children
    setText(c[0], k.name)
    setText(c[1], `${k.prefix}… ${k.id}`)
    setText(c[2], k.models.length === 0 ? 'all' : k.models.join(', '))
    setText(c[3], [k.rpm > 0 ? `${k.rpm}/min` : '', k.concurrency > 0 ? `${k.concurrency} at once` : '', k.daily > 0 ? `${k.daily}/day` : ''].filter((x) => x !== '').join(', ') || 'none')
    setText(c[4], usd(k.balanceUsd))
    setText(c[5], k.revoked ? 'revoked' : 'active')
    c[5].className = k.revoked ? 'bad-text' : 'ok-text'
    setText(c[6], k.created.slice(0, 10))
    for (const control of Array.from(c[7].querySelectorAll('button, input'))) (control as HTMLButtonElement).disabled = k.revoked
  }

  async function refresh (): Promise<void> {
    try {
      const [keys, usage] = await Promise.all([call<KeyInfo[]>('/api/v0/keys/list'), call<UsageRow[]>('/api/v0/usage')])
      names = new Map(keys.map((k) => [k.id, k.name]))
      syncChildren(rows, keys, (k) => k.id, createRow, updateRow)
      noKeys.hidden = keys.length > 0
      rows.closest('.table-wrap')!.toggleAttribute('hidden', keys.length === 0)
      usageRows.closest('.table-wrap')!.toggleAttribute('hidden', usage.length === 0)
      syncChildren(usageRows, usage, (u) => `${u.keyId}\u0000${u.model}`, () => h('tr', {}, h('td'), h('td'), h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', { class: 'num' })), (tr, u) => {
        const c = tr.children
        setText(c[0], u.keyId === '' ? 'no key (local)' : names.get(u.keyId) ?? u.keyId)
        setText(c[1], u.model)
        setText(c[2], String(u.requests))
        setText(c[3], String(u.promptTokens))
        setText(c[4], String(u.completionTokens))
        setText(c[5], usd(u.costMicroUsd / 1e6))
      })
      const total = usage.reduce((sum, u) => sum + u.costMicroUsd, 0) / 1e6
      setText(spend, usage.length === 0 ? 'No requests yet.' : `${plural(usage.reduce((n, u) => n + u.requests, 0), 'request')}, ${usd(total)} spent in all.`)
    } catch (err) {
      setText(message, `Could not load the keys: ${errorText(err)}`)
    }
  }

  return { refresh }
}
