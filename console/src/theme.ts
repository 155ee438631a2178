// Light or dark: the system's preference until the operator picks one with the toggle (remembered).
const KEY = 'aicn-theme'

export function initTheme (button: HTMLButtonElement): void {
  const stored = readStored()
  if (stored !== undefined) document.documentElement.dataset.theme = stored
  const effective = (): 'light' | 'dark' => (document.documentElement.dataset.theme as 'light' | 'dark' | undefined) ??
    (window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light')
  const label = (): void => {
    const next = effective() === 'dark' ? 'light' : 'dark'
    button.setAttribute('aria-label', `Switch to the ${next} theme`)
    button.title = `Switch to the ${next} theme`
  }
  label()
  button.addEventListener('click', () => {
    const next = effective() === 'dark' ? 'light' : 'dark'
    document.documentElement.dataset.theme = next
    try { localStorage.setItem(KEY, next) } catch {}
    label()
  })
}

function readStored (): 'light' | 'dark' | undefined {
  try {
    const value = localStorage.getItem(KEY)
    return value === 'light' || value === 'dark' ? value : undefined
  } catch {
    return undefined
  }
}
