// When a job must end: the requester's deadline from its kind's timeout (src/config/job-timeouts.ts reads
// the operator's `Jobs.Timeouts`), and the deadline a worker enforces on what a requester asked for.
import { DEFAULT_TIMEOUT_MS, JobKind, MAX_JOB_MS, type JobKindValue, type JobTimeouts } from './job-types.ts'

/** The absolute deadline of a job of `kind` that starts now. */
export function deadlineFor (kind: JobKindValue, timeouts: JobTimeouts = DEFAULT_TIMEOUT_MS, now = Date.now()): number {
  return now + timeouts[kind]
}

/** The deadline a worker enforces: the requester's, unless it is unset or already past (then the kind's
 * default), and never more than MAX_JOB_MS away. */
export function jobDeadline (requested: number, kind: JobKindValue, now = Date.now()): number {
  const deadline = requested > now ? requested : now + (DEFAULT_TIMEOUT_MS[kind] ?? DEFAULT_TIMEOUT_MS[JobKind.CHAT])
  return Math.min(deadline, now + MAX_JOB_MS)
}
