// Bounded label values. A label value that comes from a request (a model name) could otherwise create
// one time series per value an attacker sends; here the first `max` distinct values keep their name and
// every later one is counted as "other". Callers pass only names the network knows (src/jobs/dispatcher.ts
// labels a job with its model only once a node served it), so "other" is rare in practice.
export const OTHER = 'other'

export class BoundedLabels {
  private readonly max: number
  private readonly known = new Set<string>()

  constructor (max: number) {
    this.max = max
  }

  value (name: string): string {
    if (this.known.has(name)) return name
    // Long names would make each series expensive; a model name longer than this is not one we serve.
    if (name === '' || name.length > 128 || this.known.size >= this.max) return OTHER
    this.known.add(name)
    return name
  }
}
