// What both sides of the job protocol share: its names and the small helpers of an answer.
import type { AicnError } from '../../core/errors.ts'
import type { JobResponse } from '../../core/job-types.ts'

/** One job after another on a kept-open stream (proto/job.proto). */
export const JOB_PROTOCOL = '/aicn/job/1.1.0'
/** One job per stream; still served, and used with nodes that know nothing newer. */
export const JOB_PROTOCOL_1_0 = '/aicn/job/1.0.0'
/** What a requester asks for, best first. */
export const JOB_PROTOCOLS = [JOB_PROTOCOL, JOB_PROTOCOL_1_0]

/** Error texts are clipped to this many characters on the wire. */
const MAX_ERROR_TEXT = 4096

export function clip (text: string): string {
  return text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}…` : text
}

export async function * nothing (): AsyncGenerator<Uint8Array> {}

/** A JobResponse for a job that failed before the model answered. */
export function failed (err: AicnError): JobResponse {
  return { status: err.status, contentType: '', nodeId: '', cid: '', error: { code: err.code, message: err.message }, body: nothing() }
}
