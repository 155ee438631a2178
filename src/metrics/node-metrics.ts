// What the node does, as Prometheus metrics next to libp2p's and the HTTP layer's (issue 15): jobs by
// kind, model, outcome and where they ran, time to first byte, failovers, cooldowns, tokens, the view's
// size, peers, models up and down. docs/metrics.md is the table. Label values are fixed sets, except the
// model, which is bounded (src/metrics/labels.ts). The same numbers over the last minute feed
// `aicn status` and the log's one-line summary.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { ErrorCode, isAicnError } from '../core/errors.ts'
import type { JobHead, JobResponse, JobRunner } from '../core/job-types.ts'
import { BoundedLabels, OTHER } from './labels.ts'
import { MinuteWindow } from './window.ts'

export const KIND_LABELS = ['chat', 'image_gen', 'image_edit', 'embedding', 'completion'] as const
/** ok: the answer ended well; model_error: the model answered 4xx/5xx; no_node: nobody serves it;
 * timeout; cancelled: the client left; failed: anything else (unreachable node, broken stream). */
export type JobOutcome = 'ok' | 'model_error' | 'no_node' | 'timeout' | 'cancelled' | 'failed'
/** local: this node's model ran a job asked here; remote: another node ran it; none: no node did;
 * for_peer: this node's model ran a job another node sent. */
export type JobWhere = 'local' | 'remote' | 'none' | 'for_peer'

/** At most this many model names as label values; the rest are "other". */
const MAX_MODELS = 100

export interface MetricSources {
  viewNodes: () => number
  connectedPeers: () => number
  localModels: () => { up: number, down: number }
}

/** One job, from the moment a node is looked for until its answer's last byte. */
export interface JobRecord {
  /** The answer arrived: its body is wrapped to see the first byte and the end. */
  answered: (response: JobResponse, where: JobWhere) => JobResponse
  /** It failed before any answer. `known`: the model is one the network serves (it may be a label). */
  failed: (err: unknown, aborted: boolean, known: boolean) => void
  failover: () => void
}

export class NodeMetrics {
  private readonly jobs: Counter<'kind' | 'model' | 'outcome' | 'where'>
  private readonly firstByte: Histogram<'kind' | 'where'>
  private readonly failovers: Counter<'kind'>
  private readonly cooldowns: Counter
  private readonly tokens: Counter<'direction' | 'model'>
  private readonly models = new BoundedLabels(MAX_MODELS)
  readonly jobsLastMinute = new MinuteWindow()
  readonly errorsLastMinute = new MinuteWindow()

  constructor (registry: Registry, sources: MetricSources) {
    const registers = [registry]
    this.jobs = new Counter({ name: 'aicn_jobs_total', help: 'Jobs finished, by kind, model, outcome and where they ran', labelNames: ['kind', 'model', 'outcome', 'where'], registers })
    this.firstByte = new Histogram({
      name: 'aicn_job_first_byte_seconds',
      help: 'Time from a job\'s start until the first byte of its answer',
      labelNames: ['kind', 'where'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers
    })
    this.failovers = new Counter({ name: 'aicn_job_failovers_total', help: 'Times a job went on to another node after one failed before answering', labelNames: ['kind'], registers })
    this.cooldowns = new Counter({ name: 'aicn_node_cooldowns_total', help: 'Times a node was put to cool down after a failure', registers })
    this.tokens = new Counter({ name: 'aicn_tokens_total', help: 'Tokens the models reported (usage), in = prompt, out = completion', labelNames: ['direction', 'model'], registers })
    new Gauge({ name: 'aicn_view_nodes', help: 'Nodes in this node\'s view of the network', registers, collect () { this.set(sources.viewNodes()) } })
    new Gauge({ name: 'aicn_peers_connected', help: 'Peers with an open connection', registers, collect () { this.set(sources.connectedPeers()) } })
    new Gauge({
      name: 'aicn_local_models',
      help: 'Models registered on this node, by whether their server answers',
      labelNames: ['state'],
      registers,
      collect () {
        const { up, down } = sources.localModels()
        this.set({ state: 'up' }, up)
        this.set({ state: 'down' }, down)
      }
    })
  }

  /** Starts following a job. */
  begin (head: JobHead): JobRecord {
    const started = performance.now()
    const kind = KIND_LABELS[head.kind] ?? OTHER
    let ended = false
    const end = (outcome: JobOutcome, where: JobWhere, model: string): void => {
      if (ended) return
      ended = true
      this.jobs.inc({ kind, model, outcome, where })
      this.jobsLastMinute.add()
      if (outcome !== 'ok' && outcome !== 'cancelled') this.errorsLastMinute.add()
    }
    return {
      answered: (response, where) => {
        // A node served it (or answered for it): the name is one the network knows.
        const model = response.error === undefined ? this.models.value(head.model) : OTHER
        const answered = response.error !== undefined || response.status >= 400 ? 'model_error' : 'ok'
        const body = observeBody(response.body, () => {
          this.firstByte.observe({ kind, where }, (performance.now() - started) / 1000)
        }, (how, err) => {
          end(how === 'done' ? answered : how === 'left' ? 'cancelled' : classify(err, false), where, model)
        })
        return { ...response, body }
      },
      failed: (err, aborted, known) => {
        end(classify(err, aborted), 'none', known ? this.models.value(head.model) : OTHER)
      },
      failover: () => { this.failovers.inc({ kind }) }
    }
  }

  cooldown (): void {
    this.cooldowns.inc()
  }

  /** Usage a model reported (the gateway reads it from every answer). */
  usage (model: string, promptTokens: number, completionTokens: number): void {
    const label = this.models.value(model)
    if (Number.isFinite(promptTokens) && promptTokens > 0) this.tokens.inc({ direction: 'in', model: label }, promptTokens)
    if (Number.isFinite(completionTokens) && completionTokens > 0) this.tokens.inc({ direction: 'out', model: label }, completionTokens)
  }

  /** Wraps a job runner (jobs other nodes send here) so that those jobs are counted too. */
  served (run: JobRunner): JobRunner {
    return async (request, signal) => {
      const record = this.begin(request.head)
      try {
        return record.answered(await run(request, signal), 'for_peer')
      } catch (err) {
        record.failed(err, signal.aborted, false)
        throw err
      }
    }
  }
}

function classify (err: unknown, aborted: boolean): JobOutcome {
  if (isAicnError(err)) {
    if (err.code === ErrorCode.TIMEOUT) return 'timeout'
    if (err.code === ErrorCode.NO_NODE) return 'no_node'
  }
  if (aborted) return 'cancelled'
  return 'failed'
}

/** The body as it was, telling when its first chunk arrives and how it ended: 'done', 'error' or 'left'
 * (the reader stopped early). */
function observeBody (source: AsyncIterable<Uint8Array>, onFirst: () => void, onEnd: (how: 'done' | 'error' | 'left', err?: unknown) => void): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator] () {
      const inner = source[Symbol.asyncIterator]()
      let first = true
      let finished = false
      const finish = (how: 'done' | 'error' | 'left', err?: unknown): void => {
        if (finished) return
        finished = true
        onEnd(how, err)
      }
      return {
        async next () {
          try {
            const result = await inner.next()
            if (result.done === true) finish('done')
            else if (first) {
              first = false
              onFirst()
            }
            return result
          } catch (err) {
            finish('error', err)
            throw err
          }
        },
        async return (value?: unknown) {
          finish('left')
          // As src/core/iterables.ts finishing(): a pending next() of the source must not block return().
          inner.return?.(value).catch(() => {})
          return { done: true, value: value as Uint8Array }
        }
      }
    }
  }
}
