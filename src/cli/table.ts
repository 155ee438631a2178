// Plain-text tables for the CLI: columns padded to their widest cell, cells cut at 60 characters.
const MAX_CELL = 60

export function table (headers: string[], rows: Array<Array<string | number>>): string[] {
  const cells = [headers, ...rows.map((row) => row.map((cell) => {
    const text = String(cell).replace(/[\r\n\t]+/g, ' ')
    return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text
  }))]
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)))
  return cells.map((row) => row.map((cell, i) => i === row.length - 1 ? cell : (cell ?? '').padEnd(widths[i])).join('  ').trimEnd())
}
