// The top functions and packages by self time in a V8 .cpuprofile (used by idle.ts and startup.ts).
import { readFile } from 'node:fs/promises'

/** Top functions by self time in a .cpuprofile (V8's format: nodes with hitCount, samples). */
export async function topFunctions (file: string, count: number): Promise<string[]> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as { nodes: Array<{ id: number, hitCount: number, callFrame: { functionName: string, url: string, lineNumber: number } }>, startTime: number, endTime: number }
  const total = profile.nodes.reduce((s, n) => s + n.hitCount, 0)
  const byFunction = new Map<string, number>()
  for (const n of profile.nodes) {
    const url = n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')
    const key = `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + n.hitCount)
  }
  const byPackage = new Map<string, number>()
  for (const n of profile.nodes) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(n.callFrame.url)
    const pkg = m?.[1] ?? (n.callFrame.url === '' ? n.callFrame.functionName : n.callFrame.url.includes('/dist/') ? 'aicn' : 'node')
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + n.hitCount)
  }
  const pct = (h: number): string => `${(100 * h / total).toFixed(1)}%`
  return [
    `samples ${total} over ${((profile.endTime - profile.startTime) / 1e6).toFixed(0)} s`,
    'by package: ' + [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, h]) => `${k} ${pct(h)}`).join(', '),
    ...[...byFunction].sort((a, b) => b[1] - a[1]).slice(0, count).map(([k, h]) => `  ${pct(h)} ${k}`)
  ]
}
