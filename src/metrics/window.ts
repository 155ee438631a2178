// Counts over the last minute, for `aicn status` and the log summary: 12 buckets of 5 s, so memory is
// fixed however many events arrive.
const BUCKET_MS = 5_000
const BUCKETS = 12

export class MinuteWindow {
  private readonly counts = new Array<number>(BUCKETS).fill(0)
  private readonly starts = new Array<number>(BUCKETS).fill(-Infinity)
  private readonly now: () => number

  constructor (now: () => number = () => performance.now()) {
    this.now = now
  }

  add (n = 1): void {
    const t = this.now()
    const start = Math.floor(t / BUCKET_MS) * BUCKET_MS
    const i = Math.floor(t / BUCKET_MS) % BUCKETS
    if (this.starts[i] !== start) {
      this.starts[i] = start
      this.counts[i] = 0
    }
    this.counts[i] += n
  }

  /** Events in the last 60 s (to the bucket). */
  total (): number {
    const oldest = Math.floor(this.now() / BUCKET_MS) * BUCKET_MS - (BUCKETS - 1) * BUCKET_MS
    let sum = 0
    for (let i = 0; i < BUCKETS; i++) if (this.starts[i] >= oldest) sum += this.counts[i]
    return sum
  }
}
